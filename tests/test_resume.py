"""camlkit/runtime/resume.py: the data a run resumes on is the data it was trained on, file by file, and a
checkpoint written before a config field existed resumes as the version that wrote it behaved."""

import subprocess
import sys

import h5py
import pytest
import torch

from camlkit.config import make_config
from camlkit.data import CASES_FOLDER, case_path, read_list
from camlkit.errors import CamlkitError
from camlkit.runtime.checkpoint import save_checkpoint
from camlkit.runtime.resume import ADDED_LATER, data_fingerprint
from camlkit.train import train

FAST = dict(progress=False, eval_cases=1)


def _train_cli(*args):
    return [sys.executable, "-m", "camlkit.cli", "train", "--preset", "smoke", *args]


def _data_with_own_first_case(tmp_path, la_dir):
    """An LA folder whose case folders link to the real ones, except the first labeled case,
    which is a real copy that a test may change; returns (data folder, that copy)."""
    data = tmp_path / "data"
    (data / CASES_FOLDER).mkdir(parents=True)
    for name in ("train.list", "test.list"):
        (data / name).write_bytes((la_dir / name).read_bytes())
    cases = read_list(la_dir / "train.list") + read_list(la_dir / "test.list")
    for case in cases[1:]:
        (data / CASES_FOLDER / case).symlink_to(case_path(la_dir, case).parent)
    own = case_path(data, cases[0])
    own.parent.mkdir()
    own.write_bytes(case_path(la_dir, cases[0]).read_bytes())
    return data, own


# ----------------------------------------------------------------------------- data by content

def test_fingerprint_holds_a_sha256_per_list_and_case(la_dir):
    found = data_fingerprint(la_dir)
    cases = set(read_list(la_dir / "train.list") + read_list(la_dir / "test.list"))
    assert len(found) == 2 + len(cases) == 102
    first = case_path(la_dir, read_list(la_dir / "train.list")[0])
    import hashlib

    assert found[f"{CASES_FOLDER}/{first.parent.name}/{first.name}"] == hashlib.sha256(first.read_bytes()).hexdigest()


@pytest.mark.slow  # two training processes
def test_labels_zeroed_in_place_stop_the_resume_naming_the_file(tmp_path, la_dir):
    data, own = _data_with_own_first_case(tmp_path, la_dir)
    run = tmp_path / "run"
    common = ["--data", str(data), "--out", str(run), "--no-eval", "--quiet"]
    subprocess.run(_train_cli(*common, "--iterations", "2"), check=True, timeout=300)
    size = own.stat().st_size
    with h5py.File(own, "r+") as f:  # the labeled case loses its labels, in place
        assert f["label"][()].any()
        f["label"][...] = 0
    assert own.stat().st_size == size  # what a size-only fingerprint cannot see
    out = subprocess.run(_train_cli(*common, "--iterations", "4", "--resume"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"{own} changed since the checkpoint was written" in out.stderr
    assert torch.load(run / "checkpoints" / "last.pth", weights_only=True)["iteration"] == 2


@pytest.mark.slow  # short training runs
def test_an_older_size_only_fingerprint_still_resumes_and_says_so(tmp_path, la_dir, capfd):
    import hashlib

    run = tmp_path / "run"
    cfg = dict(data=str(la_dir), out=str(run), **FAST)
    train(make_config("smoke", iterations=2, **cfg), evaluate=False)
    last = run / "checkpoints" / "last.pth"
    ckpt = torch.load(last, weights_only=True)
    sizes = [f"{c} {case_path(la_dir, c).stat().st_size}"
             for name in ("train.list", "test.list") for c in read_list(la_dir / name)]
    ckpt["data"] = {name: hashlib.sha256((la_dir / name).read_bytes()).hexdigest()[:16]
                    for name in ("train.list", "test.list")}  # as camlkit wrote it before
    ckpt["data"]["case sizes"] = hashlib.sha256("\n".join(sizes).encode()).hexdigest()[:16]
    save_checkpoint({k: v for k, v in ckpt.items() if k != "sha256"}, last)
    capfd.readouterr()
    train(make_config("smoke", iterations=4, **cfg), resume=True, evaluate=False)
    notes = [line for line in capfd.readouterr().err.splitlines() if "note:" in line]
    assert len(notes) == 1 and "recorded the case files' sizes only" in notes[0]
    resumed = torch.load(last, weights_only=True)
    assert resumed["iteration"] == 4 and resumed["data"] == data_fingerprint(la_dir)


# ----------------------------------------------------------------------------- fields added later

def _without(last, field):
    """Rewrite a real training checkpoint as a camlkit before ``field`` existed wrote it."""
    ckpt = torch.load(last, weights_only=True)
    del ckpt["config"]["train"][field]
    save_checkpoint({k: v for k, v in ckpt.items() if k != "sha256"}, last)


@pytest.mark.slow  # short training runs
def test_a_field_added_later_is_taken_as_the_behaviour_of_the_version_that_wrote_it(tmp_path, la_dir):
    run = tmp_path / "run"
    common = ["--data", str(la_dir), "--out", str(run), "--no-eval", "--quiet"]
    subprocess.run(_train_cli(*common, "--iterations", "2", "--step.bank_fa_rows", "per_voxel"),
                   check=True, timeout=300)
    last = run / "checkpoints" / "last.pth"
    _without(last, "step.bank_fa_rows")
    assert ADDED_LATER["step.bank_fa_rows"] == "per_voxel"  # what camlkit did before the option
    # the plain command asks for the released default: refused, with the flag that continues it
    out = subprocess.run(_train_cli(*common, "--iterations", "4", "--resume"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert ("has no step.bank_fa_rows (written before it existed, when camlkit did 'per_voxel') "
            "but this run asks for step.bank_fa_rows='scrambled'; to continue it: "
            "--step.bank_fa_rows per_voxel") in out.stderr
    out = subprocess.run(_train_cli(*common, "--iterations", "4", "--resume", "--step.bank_fa_rows", "per_voxel"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == (f"camlkit: note: {last}: checkpoint has no step.bank_fa_rows (written "
                                  f"before it existed): taking 'per_voxel', the behaviour of that version")
    ckpt = torch.load(last, weights_only=True)
    assert ckpt["iteration"] == 4 and ckpt["config"]["train"]["step.bank_fa_rows"] == "per_voxel"


@pytest.mark.slow  # short training runs
def test_a_missing_field_whose_old_behaviour_is_the_default_resumes_as_asked(tmp_path, la_dir, monkeypatch, capfd):
    import camlkit.runtime.resume

    run = tmp_path / "run"
    cfg = dict(data=str(la_dir), out=str(run), **FAST)
    train(make_config("smoke", iterations=2, **cfg), evaluate=False)
    last = run / "checkpoints" / "last.pth"
    _without(last, "step.heads_on")
    # a field whose default equals what the older version did: the plain command resumes
    monkeypatch.setitem(camlkit.runtime.resume.ADDED_LATER, "step.heads_on", "agreeing")
    capfd.readouterr()
    train(make_config("smoke", iterations=4, **cfg), resume=True, evaluate=False)
    assert ("checkpoint has no step.heads_on (written before it existed): taking 'agreeing', "
            "the behaviour of that version") in capfd.readouterr().err
    assert torch.load(last, weights_only=True)["iteration"] == 4
    # a missing field not in the list still refuses
    _without(last, "step.similarity")
    with pytest.raises(CamlkitError, match="has no step.similarity .*not known to match any value"):
        train(make_config("smoke", iterations=6, **cfg), resume=True, evaluate=False)
