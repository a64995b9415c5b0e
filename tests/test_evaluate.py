"""camlkit/evaluation/evaluate.py: per-case evaluation, summary, CSV / markdown output, ``camlkit evaluate``."""

import csv
import json
import os
import shutil

import h5py
import numpy as np
import pytest
import torch
from medpy.metric import binary as medpy_binary
from torch import nn

from camlkit.data import case_path, read_case
from camlkit.evaluation.evaluate import evaluate_cases, format_table, summarize, write_csv
from camlkit.evaluation.inference import predict_volume
from camlkit.runtime.trained import InputSettings

WINDOW = InputSettings(patch_size=(32, 32, 16), stride=(16, 16, 8))


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
    rows = evaluate_cases(Threshold(), paths(data_dir), WINDOW, progress=False)
    assert [r["case"] for r in rows] == (data_dir / "test.list").read_text().split()
    for row, path in zip(rows, paths(data_dir)):
        image, label = read_case(path)
        pred = (image > 0).astype(np.uint8)
        assert row["dice"] == pytest.approx(medpy_binary.dc(pred, label))
        assert row["hd95"] == pytest.approx(medpy_binary.hd95(pred, label))
        assert row["asd"] == pytest.approx(medpy_binary.asd(pred, label))
        assert 0.9 < row["dice"] < 1.0


def test_evaluate_cases_at_half_scale_scores_the_original_grid(data_dir):
    half = InputSettings(scale=0.5, patch_size=(32, 32, 16), stride=(16, 16, 8))
    rows = evaluate_cases(Threshold(), paths(data_dir), half, progress=False)
    for row, path in zip(rows, paths(data_dir)):
        image, label = read_case(path)
        pred, prob = predict_volume(Threshold(), image, half)
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
    """A checkpoint written as camlkit.train writes one: its inputs and its run's config tree."""
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.config import make_config, to_dict
    from camlkit.runtime.checkpoint import save_inference_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    cfg = make_config("paper", method="caml", labeled=4, scale=0.5, patch_size=(16, 16, 16),
                      eval_stride=(16, 16, 8), zscore_case=True, **{"model.n_filters": 2})
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)), path, inputs=InputSettings.of(cfg),
                         train=to_dict(cfg))
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
    evaluated = json.loads((out / "summary.json").read_text())["evaluated"]  # --scale changed one field
    assert {k: evaluated[k] for k in ("scale", "zscore_case", "patch_size", "stride")} == {
        "scale": 0.25, "zscore_case": True, "patch_size": [16, 16, 16], "stride": [16, 16, 8]}


@pytest.mark.filterwarnings("ignore:case .*empty prediction")
def test_evaluate_cli_reads_a_checkpoint_holding_only_its_run_tree(tmp_path, data_dir, capsys):
    """A file whose config holds only the run's tree (``config["train"]``, written by torch.save
    as an older camlkit did) is evaluated with the tree's inputs, its eval_stride included."""
    import dataclasses

    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.config import make_config, to_dict

    cfg = make_config("paper", method="mcnet", labeled=8, scale=0.5, patch_size=(16, 16, 16),
                      eval_stride=(8, 8, 4), zscore_case=True, **{"model.n_filters": 2})
    net = CAMLNet(CAMLConfig(n_filters=2))
    path = tmp_path / "tree.pth"
    torch.save({"format": "camlkit", "version": 1, "model": net.state_dict(),
                "config": {"model": dataclasses.asdict(net.config), "train": to_dict(cfg)}}, path)
    out = tmp_path / "eval"
    code, _, err = run_cli(["evaluate", path, "--data", data_dir, "--out", out, "--quiet", "--cases", 1,
                            "--device", "cpu"], capsys)
    assert code == 0, err
    evaluated = json.loads((out / "summary.json").read_text())["evaluated"]
    assert {k: evaluated[k] for k in ("method", "labeled", "scale", "zscore_case", "patch_size", "stride")} == {
        "method": "mcnet", "labeled": 8, "scale": 0.5, "zscore_case": True, "patch_size": [16, 16, 16],
        "stride": [8, 8, 4]}


def test_evaluate_cli_reports_missing_case(tmp_path, data_dir, checkpoint, capsys):
    broken = tmp_path / "la"
    broken.mkdir()
    (broken / "test.list").write_text("NOSUCHCASE\n")
    code, _, err = run_cli(["evaluate", checkpoint, "--data", broken, "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "NOSUCHCASE" in err and "test.list" in err
    assert not (tmp_path / "o").exists()


def test_written_results_are_readable_by_everyone(tmp_path):
    from camlkit.files import write_text

    write_text("x\n", tmp_path / "summary.md")
    assert (tmp_path / "summary.md").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


# ----------------------------------------------------------------------------- checks before the first case

@pytest.fixture
def no_case_computed(monkeypatch):
    """Fail the test if any case reaches the sliding window: the checks must come first."""
    import camlkit.evaluation.evaluate

    def refuse(*args, **kwargs):
        raise AssertionError("a case was computed before the input was checked")

    monkeypatch.setattr(camlkit.evaluation.evaluate, "predict_volume", refuse)


def copy_of(data_dir, tmp_path):
    import shutil

    copy = tmp_path / "la"
    shutil.copytree(data_dir, copy)
    return copy


def spoil(path, kind):
    image, label = read_case(path)
    if kind == "nan":
        image[1, 2, 3] = np.nan
    elif kind == "constant":
        image[:] = 0.5
    elif kind == "label":
        label[0, 0, 0] = 7
    with h5py.File(path, "w") as f:
        f["image"], f["label"] = image, label


@pytest.mark.parametrize("kind,expected", [("nan", "NaN"), ("constant", "constant (0.5 everywhere)"),
                                           ("label", "label has values")])
def test_evaluate_cli_checks_every_test_case_first(tmp_path, data_dir, checkpoint, capsys, no_case_computed,
                                                   kind, expected):
    la = copy_of(data_dir, tmp_path)
    last = paths(la)[-1]  # the last case is bad: nothing may be computed before finding it
    spoil(last, kind)
    code, _, err = run_cli(["evaluate", checkpoint, "--data", la, "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(last) in err and expected in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv,expected", [
    (["--cases", 0], "--cases 0: expected at least 1"),
    (["--scale", -1], "--scale -1.0: expected a positive number"),
    (["--scale", 0], "--scale 0.0"),
    (["--patch", 30, 30, 30], "--patch 30 30 30: each side must be a positive multiple of 16"),
    (["--stride", 0, 4, 4], "--stride 0 4 4"),
    (["--batch-size", 0], "--batch-size 0"),
    (["--device", "gpu0"], "--device gpu0: expected auto, cpu, cuda or cuda:N"),
    pytest.param(["--device", "cuda"], "--device cuda: this PyTorch", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="about a machine without CUDA")),
])
def test_evaluate_cli_rejects_bad_settings_first(tmp_path, data_dir, checkpoint, capsys, no_case_computed,
                                                 argv, expected):
    code, _, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", tmp_path / "o", "--quiet",
                            *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err
    assert not (tmp_path / "o").exists()


def test_evaluate_cli_rejects_an_empty_test_list(tmp_path, data_dir, checkpoint, capsys, no_case_computed):
    la = copy_of(data_dir, tmp_path)
    (la / "test.list").write_text("\n\n")
    code, _, err = run_cli(["evaluate", checkpoint, "--data", la, "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "test.list: no test cases listed" in err


def test_evaluate_cli_rejects_an_out_that_is_a_file(tmp_path, data_dir, checkpoint, capsys, no_case_computed):
    (tmp_path / "results").write_text("precious")
    for out in (tmp_path / "results", tmp_path / "results" / "sub"):
        code, _, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", out, "--quiet"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert "is a file" in err or "is an existing file" in err
    assert (tmp_path / "results").read_text() == "precious"
    (tmp_path / "o" / "cases.csv").mkdir(parents=True)
    code, _, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", tmp_path / "o", "--quiet"], capsys)
    assert code == 2 and "cases.csv there is a folder" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_evaluate_cli_rejects_an_unwritable_out(tmp_path, data_dir, checkpoint, capsys, no_case_computed):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code, _, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", locked / "o", "--quiet"], capsys)
    assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1


@pytest.mark.filterwarnings("ignore:case .*empty prediction")
def test_evaluate_cli_creates_nested_out_and_replaces_its_own_results(tmp_path, data_dir, checkpoint, capsys):
    out = tmp_path / "runs" / "evaluate"
    for _ in range(2):  # the second run replaces cases.csv and summary.md: the expected overwrite
        code, _, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", out, "--quiet",
                                "--cases", 1], capsys)
        assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == [".lock", "cases.csv", "summary.json", "summary.md"]


def test_check_test_set_for_training(data_dir, tmp_path):
    from camlkit.errors import CamlkitError
    from camlkit.runtime.preflight import check_test_set

    assert check_test_set(data_dir, 1) == paths(data_dir)[:1]
    assert check_test_set(data_dir) == paths(data_dir)
    with pytest.raises(CamlkitError, match="--eval-cases 0: expected at least 1"):
        check_test_set(data_dir, 0)
    with pytest.raises(CamlkitError, match="test.list: list file not found"):
        check_test_set(tmp_path, 2)


def test_check_output_dir(tmp_path):
    from camlkit.errors import CamlkitError
    from camlkit.runtime.preflight import check_output_dir

    assert check_output_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert not (tmp_path / "a").exists()  # nothing created by the check
    (tmp_path / "f").write_text("x")
    with pytest.raises(CamlkitError, match="--out .*f: is an existing file"):
        check_output_dir(tmp_path / "f")


def test_failed_end_of_run_evaluation_message():
    from camlkit.evaluation.evaluate import evaluation_failed_message

    message = evaluation_failed_message("runs/caml", "runs/caml/x.h5: image contains NaN")
    assert message == ("the training ended and runs/caml/model_final.pth is saved, but its evaluation failed: "
                       "runs/caml/x.h5: image contains NaN. Fix this and run the same command again with "
                       "--resume: it redoes only the evaluation")


def test_one_case_shows_no_spread_and_says_case():
    from camlkit.evaluation.evaluate import format_table

    one = {"cases": 1, "dice": (0.9, 0.0), "jaccard": (0.8, 0.0), "hd95": (5.0, 0.0), "asd": (1.5, 0.0)}
    ours = format_table(one).splitlines()[2]
    assert "camlkit (1 case)" in ours and "±" not in ours and "90.00" in ours
    two = format_table({**one, "cases": 2, "dice": (0.9, 0.05)}).splitlines()[2]
    assert "2 cases, mean ± std over cases" in two and "90.00 ± 5.00" in two


# ----------------------------------------------------------------------------- into a run folder

def _finished_run(folder):
    """A run folder as camlkit train leaves it, with results that no evaluation here gives."""
    import json

    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"method": "caml", "labeled": 4, "seed": 1, "preset": "quick",
                                                    "out": str(folder)}))
    old = {"cases.csv": "case,dice,jaccard,hd95,asd\nX,0.5,0.4,9.0,3.0\n", "summary.md": "old\n",
           "summary.json": json.dumps({"dice": [0.5, 0.0], "jaccard": [0.4, 0.0], "hd95": [9.0, 0.0],
                                       "asd": [3.0, 0.0], "cases": 1})}
    for name, text in old.items():
        (folder / name).write_text(text)
    return old


@pytest.mark.filterwarnings("ignore:case .*empty prediction")
def test_evaluate_refuses_a_run_folder_a_training_holds(tmp_path, data_dir, checkpoint, capsys):
    import json
    import subprocess
    import sys

    from camlkit.evaluation.report import report

    run = tmp_path / "run"
    old = _finished_run(run)
    own = run / "model_final.pth"  # the run's own network: the only one whose results go there
    shutil.copyfile(checkpoint, own)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom camlkit.runtime.runfolder import RunLock\n"
        "RunLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(120)"), str(run)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = run_cli(["evaluate", own, "--data", data_dir, "--out", run, "--quiet"], capsys)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"{run} is in use by process {holder.pid}" in err
        assert {name: (run / name).read_text() for name in old} == old  # nothing replaced mid-run
    finally:
        holder.kill()
        holder.wait()
    # the training ended: evaluating its network again replaces all three together
    code, _, err = run_cli(["evaluate", own, "--data", data_dir, "--out", run, "--quiet"], capsys)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["cases"] == 2 and summary["evaluated"]["checkpoint"] == str(own.resolve())
    with open(run / "cases.csv") as f:
        dice = [float(row["dice"]) for row in csv.DictReader(f)]
    assert summary["dice"][0] == pytest.approx(sum(dice) / 2)
    assert "Evaluation on LA" in (run / "summary.md").read_text()
    assert f"| {100 * summary['dice'][0]:.2f} |" in report([run])  # what report reads is the new result


def test_evaluate_needs_a_checkpoint_or_weights(tmp_path, data_dir, checkpoint, capsys, no_case_computed):
    code, _, err = run_cli(["evaluate", "--data", data_dir, "--out", tmp_path / "o"], capsys)
    assert code == 2 and "nothing to evaluate: give a checkpoint file, or --weights 4|8|16" in err
    code, _, err = run_cli(["evaluate", checkpoint, "--weights", 16, "--data", data_dir, "--out", tmp_path / "o"],
                           capsys)
    assert code == 2 and f"{checkpoint} and --weights 16: give one of them" in err
    assert not (tmp_path / "o").exists()


# ----------------------------------------------------------------------------- the authors' weights

@pytest.mark.slow  # a full-size released network on a real case
def test_evaluate_weights_from_the_cache_as_the_authors_trained(tmp_path, la_dir, capsys, monkeypatch):
    """A synthetic released-layout file in the cache ($TORCH_HOME) stands for the authors' 16-labeled
    network: every voxel atrium, so Dice is 2|G| / (|V| + |G|) of the real test case's label."""
    import json

    from test_weights import git_blob, released_bytes

    import camlkit.runtime.weights
    from camlkit.data import case_path, read_list
    from camlkit.evaluation.report import report
    from camlkit.runtime.weights import ReleasedWeights, fetch_weights

    data, _ = released_bytes(atrium_bias=1e4)
    registry = {16: ReleasedWeights(16, camlkit.runtime.weights.RELEASED[16].path, git_blob(data))}
    monkeypatch.setattr(camlkit.runtime.weights, "RELEASED", registry)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    out = tmp_path / "authors16"
    code, _, err = run_cli(["evaluate", "--weights", 16, "--data", la_dir, "--out", out, "--cases", 1], capsys)
    assert code == 2 and err.strip().endswith("`camlkit download --weights 16` fetches it")
    (tmp_path / "src" / "caml_la_16labeled_iter15000.pth").parent.mkdir()
    (tmp_path / "src" / "caml_la_16labeled_iter15000.pth").write_bytes(data)
    path, _ = fetch_weights(16, source=tmp_path / "src")  # into the cache, verified

    code, stdout, err = run_cli(["evaluate", "--weights", 16, "--data", la_dir, "--out", out, "--cases", 1,
                                 "--device", "cpu"], capsys)
    assert code == 0, err
    assert "evaluate: 100%" in err  # the progress bar over cases
    summary = json.loads((out / "summary.json").read_text())
    _, label = read_case(case_path(la_dir, read_list(la_dir / "test.list")[0]))
    assert summary["dice"][0] == pytest.approx(2 * label.sum() / (label.size + label.sum()))
    assert summary["evaluated"] == {
        "checkpoint": str(path), "blob_id": registry[16].blob, "kind": "released", "pinned_labeled": 16,
        "method": "caml", "labeled": 16, "patch_size": [112, 112, 80], "stride": [18, 18, 4], "scale": 1.0,
        "zscore_case": False, "data": str(la_dir.resolve())}
    assert "90.78 ± 0.11" in stdout  # the paper's row for CAML at 16 labeled
    assert f"git blob {registry[16].blob}" in (out / "summary.md").read_text()
    text = report([out])
    assert (f"| 16 | caml (authors' weights, evaluated by camlkit: caml_la_16labeled_iter15000.pth, git blob "
            f"{registry[16].blob[:12]}, the pinned file; 1 test case) | 3407 (authors') | "
            f"{100 * summary['dice'][0]:.2f} |") in text
    # the file changed in the cache after its download: refused, not evaluated
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    code, _, err = run_cli(["evaluate", "--weights", 16, "--data", la_dir, "--out", out, "--cases", 1], capsys)
    assert code == 2 and "not the pinned file any more" in err


# ----------------------------------------------------------------------------- whose cases, whose folder

def _run_checkpoint(path, labeled, val_ids, val_cases=None):
    """A model_final.pth as a camlkit run writes it: its config tree and its validation cases."""
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.config import make_config, to_dict
    from camlkit.runtime.checkpoint import save_inference_model

    cfg = make_config("paper", method="supervised", labeled=labeled, scale=0.5, patch_size=(16, 16, 16),
                      eval_stride=(16, 16, 8), zscore_case=True,
                      val_cases=len(val_ids) if val_cases is None else val_cases, **{"model.n_filters": 2})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    split = None if val_ids is None else {"val": list(val_ids)}
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)), path, inputs=InputSettings.of(cfg),
                         train=to_dict(cfg), split=split)
    return path


@pytest.fixture
def val_data(data_dir, tmp_path):
    """data_dir with a train.list of its two cases (the first labeled, the second held out)."""
    root = tmp_path / "la"
    root.mkdir()
    (root / "2018LA_Seg_Training Set").symlink_to(data_dir / "2018LA_Seg_Training Set")
    names = (data_dir / "test.list").read_text().split()
    (root / "test.list").write_text((data_dir / "test.list").read_text())
    (root / "train.list").write_text("\n".join(names) + "\n")
    return root, names


@pytest.mark.filterwarnings("ignore:case .*empty prediction")
def test_split_val_scores_the_cases_the_run_held_out_by_id(tmp_path, val_data, capsys):
    root, names = val_data
    ckpt = _run_checkpoint(tmp_path / "run" / "model_final.pth", labeled=1, val_ids=[names[1]])
    argv = ["evaluate", ckpt, "--split", "val", "--data", root, "--quiet"]
    # a count that differs from the run's: refused, naming the flag (it scored training cases)
    for count in (2, -2, 0):
        code, _, err = run_cli([*argv, "--val-cases", count, "--out", tmp_path / "e"], capsys)
        assert code == 2 and err == (f"camlkit evaluate: error: --val-cases {count}: the run of {ckpt} held "
                                     f"out 1 validation case(s); --split val scores exactly those (leave "
                                     f"--val-cases out)\n")
    assert not (tmp_path / "e").exists()
    # train.list reordered after training: the case held out is still the one scored
    (root / "train.list").write_text("\n".join(reversed(names)) + "\n")
    code, _, err = run_cli([*argv, "--out", tmp_path / "e"], capsys)
    assert code == 0, err
    with open(tmp_path / "e" / "cases.csv") as f:
        assert [row["case"] for row in csv.DictReader(f)] == [names[1]]


def test_split_val_of_a_run_without_validation_cases_is_refused(tmp_path, val_data, capsys, no_case_computed):
    root, names = val_data
    ckpt = _run_checkpoint(tmp_path / "run" / "model_final.pth", labeled=1, val_ids=[])
    code, _, err = run_cli(["evaluate", ckpt, "--split", "val", "--data", root, "--out", tmp_path / "e",
                            "--quiet"], capsys)
    assert code == 2 and err == (f"camlkit evaluate: error: --split val: the run of {ckpt} held out no "
                                 f"validation cases (it was trained on every case of train.list); score "
                                 f"the test cases instead (--split test)\n")


def test_the_results_of_a_run_are_written_only_by_its_own_checkpoint(tmp_path, data_dir, checkpoint, capsys,
                                                                     no_case_computed):
    run = tmp_path / "run"
    _run_checkpoint(run / "model_final.pth", labeled=1, val_ids=[])
    for name in ("summary.json", "summary.md", "cases.csv"):
        (run / name).write_text(f"the run's own {name}")
    code, _, err = run_cli(["evaluate", checkpoint, "--data", data_dir, "--out", run, "--cases", 1, "--quiet"],
                           capsys)
    assert code == 2 and err == (f"camlkit evaluate: error: --out {run} holds another run (model_final.pth): "
                                 f"its results are written only from its own checkpoint ({run / 'model_final.pth'}), "
                                 f"not from {checkpoint}; choose another --out\n")
    for name in ("summary.json", "summary.md", "cases.csv"):
        assert (run / name).read_text() == f"the run's own {name}"
