"""The validation split (camlkit.data.cases.load_split's ``val``, ``--val-cases K`` / ``--eval-split val``):
the last K cases of train.list, never trained on, scored instead of the test set and reported apart
from it."""

import csv
import json
import math

import pytest

from camlkit.config import make_config
from camlkit.data import load_split, read_list
from camlkit.diagnostics import health
from camlkit.errors import CamlkitError
from camlkit.runtime.checkpoint import checkpoint_config
from camlkit.train import train


def test_validation_cases_are_the_last_of_train_list(la_dir):
    names = read_list(la_dir / "train.list")
    split = load_split(la_dir, 4, val=8)
    assert [p.parent.name for p in split.val] == names[-8:]
    assert len(split.unlabeled) == len(names) - 4 - 8
    assert not set(split.val) & set(split.unlabeled) and split.labeled == load_split(la_dir, 4).labeled
    assert split.test == load_split(la_dir, 4).test
    with pytest.raises(CamlkitError, match="val_cases="):
        load_split(la_dir, 4, val=len(names))


@pytest.mark.slow
def test_a_run_scores_its_validation_cases_and_logs_health(la_dir, tmp_path, capsys):
    cfg = make_config("smoke", method="caml", data=str(la_dir), out=str(tmp_path / "run"),
                      val_cases=3, eval_split="val", eval_cases=1, progress=False)
    folder = train(cfg)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["split"] == "val"
    with open(folder / "cases.csv") as f:
        case = next(csv.DictReader(f))["case"]
    assert case == read_list(la_dir / "train.list")[-3]  # the first validation case
    # the run names its validation cases in both checkpoints (what evaluate --split val scores)
    for path in (folder / "model_final.pth", folder / "checkpoints" / "last.pth"):
        assert checkpoint_config(path)["split"]["val"] == read_list(la_dir / "train.list")[-3:]
    with open(folder / "log.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(health.HEALTH_KEYS) <= set(rows[0])
    after = [r for r in rows if int(r["iteration"]) >= cfg.step.warmup]
    assert any(math.isfinite(float(r["occ_norm_zv"])) for r in after)
    assert "Validation cases" in (folder / "summary.md").read_text()

    # the report keeps validation scores away from the test-set table and the paper's numbers
    from camlkit.cli import main
    from camlkit.evaluation.report import report

    text = report([folder])
    assert text.startswith("## Validation cases") and "paper" not in text.split("\n", 1)[1]
    # camlkit evaluate --split val scores the run's own validation cases (K from its config)
    out = tmp_path / "val_eval"
    assert main(["evaluate", str(folder / "model_final.pth"), "--split", "val", "--cases", "1",
                 "--data", str(la_dir), "--out", str(out), "--quiet"]) == 0
    evaluated = json.loads((out / "summary.json").read_text())
    assert evaluated["split"] == "val" and evaluated["dice"] == summary["dice"]
    assert "1 validation case" in report([out])
    assert "paper" not in (out / "summary.md").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(folder / "model_final.pth"), "--split", "val", "--val-cases", "0",
                 "--data", str(la_dir), "--out", str(tmp_path / "none"), "--quiet"]) == 2
    assert "--split val" in capsys.readouterr().err and not (tmp_path / "none").exists()
