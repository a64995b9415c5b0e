"""python -m bench.bench_train --versus-release and its release-equivalent loop (bench.release_loop),
on real LA cases: the bench runs end to end at a tiny size and prints every figure; one batch of
the release's loader has the release's shapes, label values and labeled-first order."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bench.release_loop import release_loader  # bench/ is a package of the repository root (pytest's pythonpath)

REPO = Path(__file__).resolve().parents[1]

NUMBER = r"([0-9]+\.[0-9]+)"


@pytest.mark.slow
def test_versus_release_prints_both_timings_and_the_occ_part(la_dir):
    env = {**os.environ, "CAMLKIT_DATA": str(la_dir), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "bench.bench_train", "--versus-release",
               "--labeled", "2", "--patch-size", "32,32,16", "--n-filters", "2", "--iterations", "2"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    figures = {
        "release s/it": rf"^release-equivalent loop: {NUMBER} s/it",
        "camlkit s/it": rf"^camlkit train iteration: {NUMBER} s/it",
        "ratio": rf"^release / camlkit: x{NUMBER}$",
        "release OCC": rf"^OCC release: {NUMBER} s",
        "camlkit OCC": rf"^OCC camlkit: {NUMBER} s",
        "OCC ratio": rf"^OCC release / camlkit: x{NUMBER}$",
    }
    values = {}
    for name, pattern in figures.items():
        found = re.search(pattern, out, flags=re.MULTILINE)
        assert found, f"{name} missing from:\n{out}"
        values[name] = float(found.group(1))
    assert all(v > 0 for v in values.values()), values
    assert "labeled 2, patch (32, 32, 16), filters 2" in out
    agreeing = re.search(r"heads on all ([0-9]+) agreeing unlabeled voxels", out)
    assert agreeing and 0 < int(agreeing.group(1)) <= 2 * 32 * 32 * 16, out


def test_a_release_loader_batch_has_the_released_shapes(la_dir):
    torch.manual_seed(0)
    loader = release_loader(la_dir, labeled=4, patch_size=(112, 112, 80), num_workers=0, seed=1)
    batch = next(iter(loader))
    image, label, idx = batch["image"], batch["label"], batch["idx"]
    assert image.shape == (4, 1, 112, 112, 80) and image.dtype == torch.float32
    assert label.shape == (4, 112, 112, 80) and label.dtype == torch.long
    assert set(label.unique().tolist()) <= {0, 1}
    assert all(0 <= i < 4 for i in idx[:2].tolist())  # 2 labeled first (train.list's first 4)
    assert all(4 <= i < 80 for i in idx[2:].tolist())  # then 2 unlabeled
    assert len(set(idx.tolist())) == 4
    assert all(float(im.std()) > 0.1 for im in image)  # real scans, not padding
