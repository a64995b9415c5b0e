"""camlkit/evaluate.py: per-case evaluation, summary, CSV / markdown output, ``camlkit evaluate``."""

import csv

import h5py
import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy_binary
from torch import nn

from camlkit.data import case_path, read_case
from camlkit.evaluate import evaluate_cases, format_table, summarize, write_csv
from camlkit.inference import predict_volume


class Threshold(nn.Module):
    """Foreground logit = 8 x intensity: predicts the atrium wherever the image is positive."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(8.0))

    def forward(self, x):  # (b, 1, h, w, d) -> (b, 2, h, w, d)
        return torch.cat([torch.zeros_like(x), self.scale * x], dim=1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, la_case_paths):
    """An LA-layout folder of two test cases made from real labels (cropped), image = label + noise."""
    root = tmp_path_factory.mktemp("la")
    names = []
    for i, path in enumerate(la_case_paths):
        _, label = read_case(path)
        nz = np.nonzero(label)
        box = tuple(slice(max(int(a.min()) - 3, 0), int(a.max()) + 4) for a in nz)
        label = label[box][:, :, ::2].copy()
        image = (label * 2.0 - 1.0 + np.random.default_rng(i).normal(0, 0.3, label.shape)).astype(np.float32)
        name = path.parent.name
        target = case_path(root, name)
        target.parent.mkdir(parents=True)
        with h5py.File(target, "w") as f:
            f["image"], f["label"] = image, label
        names.append(name)
    (root / "test.list").write_text("\n".join(names) + "\n")
    (root / "train.list").write_text("")
    return root


def paths(data_dir):
    return [case_path(data_dir, n) for n in (data_dir / "test.list").read_text().split()]


def test_evaluate_cases_full_scale(data_dir):
    rows = evaluate_cases(Threshold(), paths(data_dir), (32, 32, 16), (16, 16, 8), progress=False)
    assert [r["case"] for r in rows] == (data_dir / "test.list").read_text().split()
    for row, path in zip(rows, paths(data_dir)):
        image, label = read_case(path)
        pred = (image > 0).astype(np.uint8)
        assert row["dice"] == pytest.approx(medpy_binary.dc(pred, label))
        assert row["hd95"] == pytest.approx(medpy_binary.hd95(pred, label))
        assert row["asd"] == pytest.approx(medpy_binary.asd(pred, label))
        assert 0.9 < row["dice"] < 1.0


def test_evaluate_cases_at_half_scale_scores_the_original_grid(data_dir):
    rows = evaluate_cases(Threshold(), paths(data_dir), (32, 32, 16), (16, 16, 8), scale=0.5, progress=False)
    for row, path in zip(rows, paths(data_dir)):
        image, label = read_case(path)
        pred, prob = predict_volume(Threshold(), image, (32, 32, 16), (16, 16, 8), scale=0.5)
        assert pred.shape == label.shape
        assert row["dice"] == pytest.approx(medpy_binary.dc(pred, label))
        assert row["dice"] > 0.8  # the atrium survives the round trip through half resolution


def test_summarize_by_hand():
    rows = [{"case": "a", "dice": 0.8, "jaccard": 0.6, "hd95": 4.0, "asd": 1.0},
            {"case": "b", "dice": 0.9, "jaccard": 0.8, "hd95": 2.0, "asd": 3.0}]
    summary = summarize(rows)
    assert summary["dice"] == pytest.approx((0.85, np.std([0.8, 0.9], ddof=1)))
    assert summary["hd95"] == pytest.approx((3.0, np.sqrt(2.0)))
    assert summary["cases"] == 2


def test_write_csv_roundtrip(tmp_path):
    rows = [{"case": "a", "dice": 0.8, "jaccard": 0.6, "hd95": 4.0, "asd": 1.0}]
    write_csv(rows, tmp_path / "cases.csv")
    with open(tmp_path / "cases.csv") as f:
        read = list(csv.DictReader(f))
    assert read == [{"case": "a", "dice": "0.8", "jaccard": "0.6", "hd95": "4.0", "asd": "1.0"}]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cases.csv"]


def test_format_table_puts_the_paper_row_beside():
    summary = {"dice": (0.8512, 0.01), "jaccard": (0.75, 0.02), "hd95": (9.5, 1.25), "asd": (2.5, 0.5), "cases": 20}
    table = format_table(summary, "caml", 4)
    lines = table.strip().splitlines()
    assert len(lines) == 4
    assert "85.12 ± 1.00" in lines[2] and "9.50 ± 1.25" in lines[2]
    assert "87.34 ± 0.05" in lines[3] and "77.65 ± 0.08" in lines[3] and "Table 1" in lines[3]
    assert len(format_table(summary).strip().splitlines()) == 3
    assert "no row" in format_table(summary, "caml", 80)


# ----------------------------------------------------------------------------- camlkit evaluate

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.checkpoint import save_inference_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)), path, scale=0.5, patch_size=[16, 16, 16],
                         stride=[16, 16, 8], method="caml", labeled=4)
    return path


def run_cli(argv, capsys):
    from camlkit.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.filterwarnings("ignore:case .*empty prediction")
def test_evaluate_cli_uses_the_checkpoint_settings(tmp_path, data_dir, checkpoint, capsys):
    out = tmp_path / "eval"
    code, stdout, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", out, "--quiet",
                                 "--device", "cpu"], capsys)
    assert code == 0, err
    with open(out / "cases.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["case"] for r in rows] == (data_dir / "test.list").read_text().split()
    summary = (out / "summary.md").read_text()
    assert "scale 0.5" in summary and "(16, 16, 16)" in summary
    assert "87.34 ± 0.05" in summary and "87.34" in stdout


@pytest.mark.filterwarnings("ignore:case .*empty prediction")
def test_evaluate_cli_limits_cases_and_overrides(tmp_path, data_dir, checkpoint, capsys):
    out = tmp_path / "eval"
    code, _, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", out, "--quiet", "--cases", 1,
                            "--scale", 0.25, "--method", "supervised", "--labeled", 16], capsys)
    assert code == 0, err
    assert len((out / "cases.csv").read_text().strip().splitlines()) == 2
    summary = (out / "summary.md").read_text()
    assert "scale 0.25" in summary and "85.94 ± 0.48" in summary


def test_evaluate_cli_reports_missing_case(tmp_path, data_dir, checkpoint, capsys):
    broken = tmp_path / "la"
    broken.mkdir()
    (broken / "test.list").write_text("NOSUCHCASE\n")
    code, _, err = run_cli(["evaluate", checkpoint, "--data", broken, "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "NOSUCHCASE" in err and "test.list" in err
    assert not (tmp_path / "o").exists()


def test_written_results_are_readable_by_everyone(tmp_path):
    from camlkit.evaluate import write_text_atomic

    write_text_atomic("x\n", tmp_path / "summary.md")
    assert (tmp_path / "summary.md").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]
