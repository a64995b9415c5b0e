"""End-to-end training on real LA cases at smoke sizes: run folder, exact resume, errors, DDP."""

import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import warnings

import pytest
import torch

from camlkit.config import PRESETS, make_config
from camlkit.data import case_path, read_case, read_list
from camlkit.errors import CamlkitError
from camlkit.evaluation import final_eval
from camlkit.evaluation.inference import predict_volume
from camlkit.evaluation.metrics import case_metrics
from camlkit.evaluation.report import report
from camlkit.paper import METRICS
from camlkit.runtime.trained import InputSettings, load_inference_model
from camlkit.train import learning_rate, make_optimizer, train

FAST = dict(progress=False, eval_cases=1)


def _cli(*args, **kwargs):
    return [sys.executable, "-m", "camlkit.cli", "train", "--preset", "smoke", *args]


def test_presets_hold_the_released_configuration():
    paper = PRESETS["paper"]
    assert (paper.batch_size, paper.labeled_bs, paper.patch_size) == (4, 2, (112, 112, 80))
    assert (paper.lr, paper.momentum, paper.weight_decay, paper.iterations) == (0.01, 0.9, 1e-4, 15000)
    assert (paper.step.beta_o, paper.step.j, paper.step.top_i) == (0.05, 256, 12800)
    assert [make_config("paper", labeled=n).step.ramp_length for n in (4, 8, 16)] == [40, 20, 15]
    flags = {m: make_config("paper", method=m) for m in ("supervised", "mcnet", "mcnet+occ", "mcnet+cma", "caml")}
    assert [(f.model.use_cma, f.step.use_occ) for f in flags.values()] == [
        (False, False), (False, False), (False, True), (True, False), (True, True)]
    assert flags["supervised"].step.supervised_only


def test_quick_and_smoke_presets_warm_up_before_eq1():
    quick = PRESETS["quick"]
    assert (quick.labeled, quick.scale, quick.patch_size, quick.model.n_filters) == (16, 0.4, (48, 48, 32), 8)
    assert quick.zscore_case and not PRESETS["paper"].zscore_case
    assert 0 < quick.step.warmup < quick.iterations
    assert make_config("quick").step.warmup == quick.step.warmup
    assert make_config("quick", method="supervised").step.warmup == 0  # nothing to warm
    assert PRESETS["paper"].step.warmup == 0  # as released
    assert 0 < PRESETS["smoke"].step.warmup < PRESETS["smoke"].iterations  # smoke runs both code paths


def test_learning_rate_schedules():
    constant = make_config("paper")
    assert {learning_rate(constant, it) for it in (0, 7000, 14999)} == {0.01}
    cosine = make_config("paper", lr=0.1, lr_schedule="cosine", iterations=400)
    assert learning_rate(cosine, 0) == 0.1
    assert abs(learning_rate(cosine, 200) - 0.05) < 1e-12
    assert abs(learning_rate(cosine, 400)) < 1e-12
    with pytest.raises(CamlkitError, match="lr_schedule 'step'"):
        learning_rate(make_config("paper", lr_schedule="step"), 0)


def test_optimizers():
    net = torch.nn.Linear(2, 2)
    sgd = make_optimizer(make_config("paper"), net)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["momentum"] == 0.9
    assert isinstance(make_optimizer(make_config("paper", optimizer="adam", lr=1e-3), net), torch.optim.Adam)
    with pytest.raises(CamlkitError, match="optimizer 'lbfgs'"):
        make_optimizer(make_config("paper", optimizer="lbfgs"), net)


@pytest.mark.slow
def test_smoke_run_writes_a_complete_run_folder(tmp_path, la_dir):
    cfg = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), **{**FAST, "eval_cases": 2})
    run = train(cfg)
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == list(range(cfg.iterations))
    assert set(rows[0]) >= {"L", "L_s", "l_c", "l_o", "lambda_c"}
    assert json.loads((run / "config.json").read_text())["method"] == "caml"
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the summary is the mean of the per-case rows, and each row the metrics of model_final's
    # f_v on that case (the evaluation protocol run again here, from the saved weights)
    summary = json.loads((run / "summary.json").read_text())
    cases = list(csv.DictReader(open(run / "cases.csv")))
    assert summary["cases"] == len(cases) == 2
    assert [c["case"] for c in cases] == read_list(la_dir / "test.list")[:2]
    for name in METRICS:
        values = [float(c[name]) for c in cases]
        assert summary[name][0] == pytest.approx(statistics.fmean(values), abs=1e-9), name
        assert summary[name][1] == pytest.approx(statistics.stdev(values), abs=1e-9), name
    f_v = load_inference_model(run / "model_final.pth")
    for row in cases:
        image, label = read_case(case_path(la_dir, row["case"]))
        pred, _ = predict_volume(f_v, image, InputSettings.of(cfg))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty prediction scores 0, with a warning
            expected = case_metrics(pred, label, case=row["case"])
        assert {k: float(row[k]) for k in METRICS} == pytest.approx(expected, abs=1e-6), row["case"]
    ckpt = torch.load(run / "checkpoints" / "last.pth", weights_only=True)
    assert ckpt["iteration"] == cfg.iterations and ckpt["bank"]["counts"].shape == (cfg.labeled, 2)
    assert "caml" in report([run]) and "87.34" in report([run])  # the paper's row beside ours


@pytest.mark.slow
def test_killed_and_resumed_run_is_bit_identical(tmp_path, la_dir):
    # a fixed thread count (the bits of a step depend on it: camlkit.runtime.threads)
    common = ["--data", str(la_dir), "--iterations", "14", "--checkpoint-every", "2", "--no-eval", "--quiet",
              "--no-share-threads"]
    whole = tmp_path / "whole"
    subprocess.run(_cli(*common, "--out", str(whole)), check=True, timeout=300)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(_cli(*common, "--out", str(cut)))
    last = cut / "checkpoints" / "last.pth"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert not (cut / "model_final.pth").exists()
    stopped_at = torch.load(last, weights_only=True)["iteration"]
    assert 0 < stopped_at < 14
    subprocess.run(_cli(*common, "--out", str(cut), "--resume"), check=True, timeout=300)

    a = torch.load(whole / "model_final.pth", weights_only=True)["model"]
    b = torch.load(cut / "model_final.pth", weights_only=True)["model"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    logged = [int(r["iteration"]) for r in csv.DictReader(open(cut / "log.csv"))]
    assert logged == list(range(14))


def test_resume_refuses_another_configuration(tmp_path, la_dir):
    cfg = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), iterations=2, **FAST)
    train(cfg, evaluate=False)
    with pytest.raises(CamlkitError, match="already holds a run"):
        train(cfg, evaluate=False)
    other = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), method="mcnet",
                        iterations=4, **FAST)
    with pytest.raises(CamlkitError, match="cannot resume.*method='caml'.*method='mcnet'"):
        train(other, resume=True, evaluate=False)
    with pytest.raises(CamlkitError, match="nothing to resume"):
        train(make_config("smoke", data=str(la_dir), out=str(tmp_path / "none"), **FAST), resume=True)


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, la_dir):
    cfg = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), iterations=40,
                      lr=1e12, checkpoint_every=1, log_every=1, **FAST)
    with pytest.raises(CamlkitError, match="non-finite by iteration (\\d+).*last good checkpoint"):
        train(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())
    assert not (tmp_path / "run" / "model_final.pth").exists()


def test_cli_errors_are_one_line(tmp_path, la_dir):
    out = subprocess.run(_cli("--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "nowhere" in out.stderr


@pytest.mark.slow
def test_ddp_two_processes_on_gloo(tmp_path, la_dir):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "camlkit.cli", "train", "--preset", "smoke", "--data", str(la_dir),
           "--out", str(tmp_path / "ddp"), "--iterations", "4", "--no-eval", "--quiet"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    ckpt = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pth", weights_only=True)
    assert ckpt["iteration"] == 4


# ----------------------------------------------------------------------------- checks before the work

@pytest.mark.parametrize("overrides, message", [
    (dict(iterations=0), "--iterations 0: expected a whole number >= 1"),
    (dict(iterations=-5), "--iterations -5: expected a whole number >= 1"),
    (dict(checkpoint_every=0), "--checkpoint-every 0: expected"),
    (dict(log_every=0), "--log-every 0: expected"),
    (dict(scale=0.0), "--scale 0.0: expected a finite number > 0"),
    (dict(scale=-1.0), "--scale -1.0: expected"),
    (dict(eval_cases=0), "--eval-cases 0: expected a whole number >= 1"),
    (dict(labeled=-1), "--labeled -1: expected a whole number >= 0"),
    (dict(labeled=1), "labeled=1: expected 2..78"),
    (dict(labeled=79), "labeled=79: expected 2..78"),
    (dict(labeled=81, method="supervised"), "labeled=81: expected 2..80"),
    (dict(device="gpu0"), "--device gpu0: expected auto, cpu, cuda or cuda:N"),
    # too many validation cases name --val-cases, not --labeled
    (dict(val_cases=75), r"--val-cases 75: expected 0..74 \(.*train.list has 80 cases, the first 4 labeled"),
    (dict(labeled=78, val_cases=1), r"--val-cases 1: expected 0..0 \(.*caml needs 2 unlabeled per batch\)"),
    (dict(val_cases=-2), "--val-cases -2: expected a whole number >= 0"),
])
def test_bad_arguments_stop_before_any_work(tmp_path, la_dir, overrides, message):
    cfg = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), **{**FAST, **overrides})
    with pytest.raises(CamlkitError, match=message):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing written


def test_patch_sides_must_be_multiples_of_16(tmp_path, la_dir):
    with pytest.raises(CamlkitError, match="patch size \\(30, 32, 16\\): every side must be a multiple of 16"):
        make_config("smoke", patch_size=(30, 32, 16))
    cfg = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), **FAST)
    cfg.patch_size = (30, 32, 16)  # built by hand past make_config
    with pytest.raises(CamlkitError, match="patch_size=\\(30, 32, 16\\): expected three sides"):
        train(cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="about a machine without CUDA")
def test_cuda_on_a_machine_without_it_is_one_line(tmp_path, la_dir):
    out = subprocess.run(_cli("--data", str(la_dir), "--out", str(tmp_path / "r"), "--device", "cuda"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "--device cuda: this PyTorch" in out.stderr and "use --device cpu or auto" in out.stderr
    assert not (tmp_path / "r").exists()


def test_an_empty_test_list_stops_before_training(tmp_path, la_dir):
    data = _data_copy(tmp_path, la_dir, test_lines=[])
    cfg = make_config("smoke", data=str(data), out=str(tmp_path / "run"), **FAST)
    with pytest.raises(CamlkitError, match="test.list: no test cases .*--no-eval"):
        train(cfg)


def _data_copy(tmp_path, la_dir, train_lines=None, test_lines=None):
    """An LA folder sharing the real case files, with its own (edited) lists."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "2018LA_Seg_Training Set").symlink_to(la_dir / "2018LA_Seg_Training Set")
    for name, lines in (("train.list", train_lines), ("test.list", test_lines)):
        text = (la_dir / name).read_text()
        (data / name).write_text(text if lines is None else "".join(f"{v}\n" for v in lines))
    return data


# ----------------------------------------------------------------------------- resume compares everything

@pytest.mark.slow
def test_resume_compares_the_whole_tree_and_the_data(tmp_path, la_dir):
    run = str(tmp_path / "run")
    train(make_config("smoke", data=str(la_dir), out=run, iterations=4, **FAST), evaluate=False)

    def resume(data=la_dir, **overrides):
        train(make_config("smoke", data=str(data), out=run, **{**FAST, "iterations": 4, **overrides}),
              resume=True, evaluate=False)

    with pytest.raises(CamlkitError, match="step.similarity='dot' but this run asks for step.similarity='cosine'"):
        resume(**{"step.similarity": "cosine"})
    with pytest.raises(CamlkitError, match="model.proj_dim=8 but this run asks for model.proj_dim=16"):
        resume(**{"model.proj_dim": 16})
    with pytest.raises(CamlkitError, match="checkpoint is at iteration 4 but this run asks for iterations=2"):
        resume(iterations=2)
    lines = (la_dir / "train.list").read_text().split()
    swapped = _data_copy(tmp_path, la_dir, train_lines=[lines[1], lines[0]] + lines[2:])
    with pytest.raises(CamlkitError, match="data/train.list changed since the checkpoint was written"):
        resume(data=swapped)
    # what may change: logging, device, workers, where the data lives (same content), more iterations
    (tmp_path / "moved").mkdir()
    moved = _data_copy(tmp_path / "moved", la_dir)
    resume(data=moved, iterations=6, log_every=2, checkpoint_every=3, device="cpu", num_workers=0)
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)["iteration"] == 6


@pytest.mark.slow
def test_an_inference_checkpoint_given_to_resume_is_one_line(tmp_path, la_dir):
    run = tmp_path / "run"
    subprocess.run(_cli("--data", str(la_dir), "--out", str(run), "--iterations", "2", "--no-eval",
                        "--quiet"), check=True, timeout=300)
    out = subprocess.run(_cli("--data", str(la_dir), "--resume", str(run / "model_final.pth")),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and out.stderr.count("\n") == 1
    assert "model_final.pth: is an inference checkpoint" in out.stderr and "checkpoints/last.pth" in out.stderr
    # the same checkpoint sitting where last.pth should be
    (run / "model_final.pth").replace(run / "checkpoints" / "last.pth")
    with pytest.raises(CamlkitError, match="last.pth: is an inference checkpoint .*--resume needs"):
        train(make_config("smoke", data=str(la_dir), out=str(run), iterations=2, **FAST), resume=True)


def test_a_folder_holding_run_files_is_refused_unless_overwriting(tmp_path, la_dir):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")  # a finished run whose last.pth was removed
    cfg = make_config("smoke", data=str(la_dir), out=str(run), iterations=2, **FAST)
    with pytest.raises(CamlkitError, match="already holds a run \\(summary.json\\).*--overwrite"):
        train(cfg, evaluate=False)
    train(cfg, evaluate=False, overwrite=True)
    assert (run / "checkpoints" / "last.pth").exists()


# ----------------------------------------------------------------------------- disk full, Ctrl-C

def test_a_full_disk_while_checkpointing_is_one_line_naming_the_good_checkpoint(tmp_path, la_dir, monkeypatch):
    import errno

    import camlkit.train

    real_save, calls = camlkit.train.save_checkpoint, []

    def save(payload, path):
        calls.append(payload["iteration"])
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(payload, path)

    monkeypatch.setattr(camlkit.train, "save_checkpoint", save)
    cfg = make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), iterations=6, **FAST)
    last = tmp_path / "run" / "checkpoints" / "last.pth"
    with pytest.raises(CamlkitError) as caught:
        train(cfg, evaluate=False)
    assert str(caught.value) == f"no space left writing {last}; the last good checkpoint is {last}"
    assert torch.load(last, weights_only=True)["iteration"] == calls[0]  # still the good one


@pytest.mark.slow
def test_ctrl_c_says_where_the_checkpoint_is_and_how_to_resume(tmp_path, la_dir):
    run = tmp_path / "run"
    args = ["--data", str(la_dir), "--out", str(run), "--iterations", "400", "--no-eval", "--quiet"]
    proc = subprocess.Popen(_cli(*args), stderr=subprocess.PIPE, text=True)
    last = run / "checkpoints" / "last.pth"
    deadline = time.time() + 240
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("camlkit train: interrupted: stopped at iteration")
    assert f"the last checkpoint is {last} (iteration " in line
    assert line.endswith("to continue: camlkit train --preset smoke " + " ".join(args) + " --resume")


def _data_with_own_case_folders(tmp_path, la_dir):
    """An LA copy whose case folders are links of their own, so one can be replaced; returns
    (data folder, path of the first test case's .h5 there, the real case's .h5)."""
    from camlkit.data import case_path, read_list

    data = _data_copy(tmp_path, la_dir)
    (data / "2018LA_Seg_Training Set").unlink()
    (data / "2018LA_Seg_Training Set").mkdir()
    for case in read_list(data / "train.list") + read_list(data / "test.list"):
        (data / "2018LA_Seg_Training Set" / case).symlink_to(case_path(la_dir, case).parent)
    first_test = read_list(data / "test.list")[0]
    real = case_path(la_dir, first_test)
    own = data / "2018LA_Seg_Training Set" / first_test
    own.unlink()
    own.mkdir()
    return data, own / real.name, real


@pytest.mark.slow
def test_a_damaged_test_case_stops_before_training(tmp_path, la_dir):
    import h5py

    data, copy, real = _data_with_own_case_folders(tmp_path, la_dir)
    with h5py.File(real, "r") as src, h5py.File(copy, "w") as dst:
        image = src["image"][:]
        image[0, 0, 0] = float("nan")
        dst["image"], dst["label"] = image, src["label"][:]
    run = tmp_path / "run"
    out = subprocess.run(_cli("--data", str(data), "--out", str(run), "--iterations", "2", "--quiet"),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert str(copy) in out.stderr and "NaN" in out.stderr
    assert not (run / "checkpoints").exists() and not (run / "log.csv").exists()
    for eval_cases in ("0", "-1"):
        out = subprocess.run(_cli("--data", str(la_dir), "--out", str(run), "--eval-cases", eval_cases),
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and f"--eval-cases {eval_cases}" in out.stderr
    assert not run.exists()


@pytest.mark.slow
def test_a_failed_evaluation_says_resume_redoes_only_it(tmp_path, la_dir, monkeypatch):
    import camlkit.train

    data, copy, real = _data_with_own_case_folders(tmp_path, la_dir)
    copy.symlink_to(real)  # sound when checked before training ...
    cfg = make_config("smoke", data=str(data), out=str(tmp_path / "run"), iterations=2, **FAST)

    def damaged_before(evaluate_run):  # ... and damaged by the time the run evaluates
        def damage_then_evaluate(*args, **kwargs):
            copy.unlink()
            copy.write_bytes(b"not an HDF5 file")
            return evaluate_run(*args, **kwargs)
        return damage_then_evaluate

    monkeypatch.setattr(camlkit.train, "evaluate_run", damaged_before(final_eval.evaluate_run))  # as train calls it
    with pytest.raises(CamlkitError, match="evaluation failed: .*with --resume: it redoes only the evaluation"):
        train(cfg)
    monkeypatch.undo()
    assert real.is_file()
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)
    assert ckpt["iteration"] == 2 and not (tmp_path / "run" / "summary.json").exists()
    copy.unlink()
    copy.symlink_to(real)  # fixed: --resume evaluates without training again
    train(cfg, resume=True)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["cases"] == 1
    assert torch.load(tmp_path / "run" / "checkpoints" / "last.pth", weights_only=True)["iteration"] == 2


# ----------------------------------------------------------------------------- one run per folder

@pytest.mark.slow
def test_two_trains_on_the_same_out_the_second_names_the_first(tmp_path, la_dir):
    run = tmp_path / "run"
    args = ["--data", str(la_dir), "--out", str(run), "--iterations", "400", "--no-eval", "--quiet"]
    first = subprocess.Popen(_cli(*args), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        while not (run / "checkpoints" / "last.pth").exists() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)  # the first run is in its loop
        assert first.poll() is None, "the first run ended before the second started"
        second = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
        assert f"is in use by process {first.pid}" in second.stderr
        assert first.poll() is None  # the first run goes on, undisturbed
    finally:
        first.send_signal(signal.SIGINT)
        first.communicate(timeout=120)
    assert first.returncode == 130
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["iteration"]) for r in rows] == list(range(len(rows)))  # one writer


def test_the_log_is_csv_when_tensorboard_is_not_installed(tmp_path, monkeypatch):
    from camlkit.runtime.runlog import RunLog, read_log

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    log = RunLog(tmp_path, resume=False, start=0)
    row = {"iteration": 0, "L": 1.0, "L_s": 0.5, "l_c": 0.1, "l_o": 0.0, "lambda_c": 0.0,
           "lambda_o": 0.0, "lr": 0.01, "seconds": 0.1}
    log.write(row)
    log.close()
    assert log.tb is None and read_log(tmp_path / "log.csv") == [row]
    assert not (tmp_path / "tb").exists()
