"""bench.gpu_reproduce at smoke size on CPU: a subset of LA, the release's first logged iterations, the table."""

import os
from pathlib import Path

import pytest

from bench import gpu_reproduce as gr
from camlkit.data import CASES_FOLDER, read_list

# the release's 4-labeled log, iterations 1-6, and its best-Dice lines (tests/data/README.md)
LOGS = Path(__file__).resolve().parent / "data" / "release_logs"


def _subset(la_dir, root, n_train, n_test):
    """A data folder with the full lists but only some cases present (symlinks)."""
    (root / CASES_FOLDER).mkdir(parents=True)
    for name in ("train.list", "test.list"):
        (root / name).write_text((la_dir / name).read_text())
    train, test = read_list(la_dir / "train.list"), read_list(la_dir / "test.list")
    for case in train[:n_train] + test[:n_test]:
        os.symlink(la_dir / CASES_FOLDER / case, root / CASES_FOLDER / case)
    return root


def test_windows_and_best_so_far():
    assert gr.windows(120, 50) == [(1, 50), (51, 100), (101, 120)]
    best = [(800, 0.8), (1000, 0.84), (1400, 0.85)]
    assert gr.best_so_far(best, 799) is None and gr.best_so_far(best, 1200) == 0.84


def test_subset_view_needs_the_labeled_set(la_dir, tmp_path):
    data = _subset(la_dir, tmp_path / "LA", n_train=3, n_test=1)
    with pytest.raises(gr.CamlkitError, match="labeled set"):
        gr.present_cases_view(data, 4, tmp_path / "run")
    view = gr.present_cases_view(data, 1, tmp_path / "run")
    assert len(read_list(view / "train.list")) == 3 and len(read_list(view / "test.list")) == 1


@pytest.mark.slow
def test_smoke_run_writes_the_comparison(la_dir, tmp_path, capsys):
    data = _subset(la_dir, tmp_path / "LA", n_train=6, n_test=1)
    table = tmp_path / "table.md"
    assert gr.main(["--smoke", "--data", str(data), "--out", str(tmp_path / "run"), "--logs", str(LOGS),
                    "--eval-cases", "1", "--table", str(table)]) == 0
    text = table.read_text()
    assert "| 1-6 |" in text and "loss_o release" in text and "iteration 6" in text
    assert "14.7244" in text  # the release's mean loss_o over its iterations 1-6 (4 labeled)
    assert gr.main(["--smoke", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r2")]) == 1
