"""camlkit.lab.runs on real smoke-trained checkpoints: finding one, its settings, matched inputs."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from camlkit.config import make_config
from camlkit.data import LADataset, load_split
from camlkit.errors import CamlkitError
from camlkit.lab import runs
from camlkit.lab.process import child_env
from camlkit.runtime.checkpoint import save_inference_model
from camlkit.runtime.trained import InputSettings, TrainedSettings, load_trained, matched_crops, random_twin
from camlkit.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory, la_dir):
    """Two finished smoke runs under one root: caml (older) then supervised (newer). It trains:
    the tests that use it are marked slow."""
    root = tmp_path_factory.mktemp("runs")
    caml = train(make_config("smoke", data=str(la_dir), out=str(root / "smoke-caml-4L-seed1"),
                             seed=1, progress=False), evaluate=False)
    supervised = train(make_config("smoke", method="supervised", data=str(la_dir), seed=1,
                                   out=str(root / "smoke-supervised-4L-seed1"), progress=False),
                       evaluate=False)
    now = time.time()
    os.utime(caml / runs.FINAL, (now - 60, now - 60))  # caml is the older run
    os.utime(supervised / runs.FINAL, (now, now))
    return root, caml, supervised


@pytest.mark.slow
def test_list_runs_newest_first_and_unfinished_ignored(trained):
    root, caml, supervised = trained
    (root / "unfinished").mkdir(exist_ok=True)
    (root / "unfinished" / "config.json").write_text("{}")
    assert runs.list_runs(root) == [supervised, caml]
    assert runs.list_runs(root / "nothing-here") == []


@pytest.mark.slow
def test_find_checkpoint_prefers_caml_then_newest(trained, monkeypatch):
    root, caml, supervised = trained
    monkeypatch.delenv(runs.CHECKPOINT_ENV, raising=False)
    assert runs.find_checkpoint(root=root) == caml / runs.FINAL  # caml, though older
    assert runs.find_checkpoint(root=root, method=None) == supervised / runs.FINAL
    assert runs.find_checkpoint(root=root, method="mcnet") == supervised / runs.FINAL  # fallback
    assert runs.find_checkpoint(root=root, where={"step.similarity": "dot"}) == caml / runs.FINAL
    assert runs.find_checkpoint(root=root, where={"step.similarity": "cosine"}) is None
    assert runs.find_checkpoint(root=root, method=None, where={"model.use_cma": True}) == caml / runs.FINAL
    assert runs.find_checkpoint(root=root / "empty") is None


@pytest.mark.slow
def test_explicit_checkpoint_wins_and_must_exist(trained, monkeypatch):
    root, caml, supervised = trained
    chosen = supervised / runs.FINAL
    assert runs.find_checkpoint(chosen, root=root) == chosen
    monkeypatch.setenv(runs.CHECKPOINT_ENV, str(chosen))
    assert runs.find_checkpoint(root=root) == chosen
    assert runs.find_checkpoint(root=root, env=False) == caml / runs.FINAL
    with pytest.raises(CamlkitError, match="no-such.pth: no such checkpoint"):
        runs.find_checkpoint(root / "no-such.pth", root=root)


@pytest.mark.slow
def test_settings_read_from_the_stored_config(trained):
    _, caml, _ = trained
    smoke = make_config("smoke")
    settings = TrainedSettings.from_checkpoint(caml / runs.FINAL)
    assert settings.inputs == InputSettings(scale=0.25, zscore_case=True, patch_size=(32, 32, 16),
                                            stride=(16, 16, 8)) == InputSettings.of(smoke)
    assert (settings.n_filters, settings.proj_dim) == (smoke.model.n_filters, smoke.model.proj_dim)
    assert (settings.method, settings.labeled, settings.preset, settings.val_cases) == ("caml", 4, "smoke", 0)
    assert settings.iterations == smoke.iterations
    assert settings.step == smoke.step  # every field of the Eq. 1 step: OCC as it was trained
    stored = runs.stored_config(caml / runs.FINAL)  # the run's whole config tree
    assert (stored.seed, stored.out, stored.model, stored.step) == (1, str(caml), smoke.model, smoke.step)
    line = runs.describe(caml / runs.FINAL)
    assert str(caml) in line and "method caml" in line and "preset smoke" in line
    assert "OCC dot / t 0.1" in line


@pytest.mark.slow  # the trained fixture: a smoke training run
def test_a_smoke_run_is_evaluated_with_the_inputs_it_stored(trained, la_dir, tmp_path, capsys):
    """model_final.pth holds the run's inputs once (``config["inputs"]``); `camlkit evaluate`
    predicts with them: the smoke preset's scale, per-case z-score, patch and stride."""
    import json

    from camlkit.cli import main
    from camlkit.runtime.checkpoint import checkpoint_config

    _, caml, _ = trained
    config = checkpoint_config(caml / runs.FINAL)
    assert sorted(config) == ["inputs", "model", "split", "train"]  # split: its validation cases by id
    assert config["split"] == {"val": []}
    assert config["inputs"] == {"scale": 0.25, "zscore_case": True, "patch_size": [32, 32, 16],
                                "stride": [16, 16, 8]}
    out = tmp_path / "eval"
    code = main(["evaluate", str(caml / runs.FINAL), "--data", str(la_dir), "--out", str(out), "--cases", "1",
                 "--quiet", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    evaluated = json.loads((out / "summary.json").read_text())["evaluated"]
    assert {k: evaluated[k] for k in ("method", "labeled", *config["inputs"])} == {
        "method": "caml", "labeled": 4, **config["inputs"]}


@pytest.mark.slow  # short training runs
def test_settings_restore_every_step_field_the_run_stored(la_dir, tmp_path):
    """A run trained with non-default OCC options gets them back (heads_on, bank_fa_rows, ...)."""
    from camlkit.step import StepConfig

    fields = {"step.heads_on": "picked", "step.bank_fa_rows": "per_voxel", "step.occ_log": "log_softmax",
              "step.similarity": "cosine", "step.occ_temperature": 0.2, "step.j": 4, "step.top_i": 16}
    run = train(make_config("smoke", data=str(la_dir), out=str(tmp_path / "run"), iterations=3,
                            progress=False, **fields), evaluate=False)
    step = TrainedSettings.from_checkpoint(run / runs.FINAL).step
    assert isinstance(step, StepConfig)
    assert (step.heads_on, step.bank_fa_rows, step.occ_log, step.similarity) == (
        "picked", "per_voxel", "log_softmax", "cosine")
    assert (step.occ_temperature, step.j, step.top_i) == (0.2, 4, 16)


@pytest.mark.slow
def test_load_trained_gives_the_checkpoint_weights(trained):
    _, caml, _ = trained
    net, settings = load_trained(caml / runs.FINAL)
    stored = torch.load(caml / runs.FINAL, weights_only=True)["model"]
    assert not net.training and net.config.n_filters == settings.n_filters
    assert all(torch.equal(v, stored[k]) for k, v in net.state_dict().items())
    twin = random_twin(net)
    assert twin.config == net.config
    assert not torch.equal(twin.state_dict()["f_v.decoder.out_conv.weight"], stored["f_v.decoder.out_conv.weight"])


@pytest.mark.slow
def test_matched_crops_equal_the_training_dataset(trained, la_dir):
    _, caml, _ = trained
    settings = TrainedSettings.from_checkpoint(caml / runs.FINAL)
    paths = load_split(la_dir, 4).labeled[:2]
    batch = matched_crops(paths, settings, seed=0)
    assert batch["image"].shape == (2, 1, *settings.inputs.patch_size)
    assert batch["label"].shape == (2, *settings.inputs.patch_size)
    assert batch["label"].flatten(1).any(1).all()  # each crop holds atrium
    # every crop is a window of the volume the training run saw (scaled, z-scored per case)
    train_view = LADataset(paths, scale=settings.inputs.scale, zscore_case=settings.inputs.zscore_case)
    for k in range(2):
        volume, _ = train_view.load(k)
        crop = batch["image"][k, 0].numpy()
        windows = np.lib.stride_tricks.sliding_window_view(volume, crop.shape)
        assert (np.abs(windows - crop).max(axis=(-3, -2, -1)) == 0).any()
    assert batch["cases"] == [p.parent.name for p in paths]
    again = matched_crops(paths, settings, seed=0)
    assert torch.equal(again["image"], batch["image"])  # seeded


def test_released_weights_get_the_released_settings(tmp_path):
    from camlkit.caml import CAMLNet
    from camlkit.runtime.released import camlkit_to_released_key

    torch.manual_seed(0)
    net = CAMLNet(n_filters=16)
    released = {camlkit_to_released_key(k): v for k, v in net.state_dict().items()}
    path = tmp_path / "iter_15000.pth"
    torch.save(released, path)
    assert TrainedSettings.from_checkpoint(path) == TrainedSettings()
    step = TrainedSettings().step  # the released step: j 256, i 12800, dot / 0.1, as released
    assert (step.j, step.top_i, step.similarity, step.occ_temperature) == (256, 12800, "dot", 0.1)
    assert (step.bank_fa_rows, step.heads_on, step.occ_log) == ("scrambled", "agreeing", "eps")
    loaded, _ = load_trained(path)
    key = "f_v.decoder.out_conv.weight"
    assert torch.equal(loaded.state_dict()[key], net.state_dict()[key])


def test_a_camlkit_inference_file_without_train_settings(tmp_path):
    from camlkit.caml import CAMLNet

    save_inference_model(CAMLNet(n_filters=2, proj_dim=8), tmp_path / "m.pth")
    settings = TrainedSettings.from_checkpoint(tmp_path / "m.pth")
    assert (settings.n_filters, settings.proj_dim, settings.inputs) == (2, 8, InputSettings())


@pytest.mark.slow  # short training runs
def test_train_short_names_its_folder_and_is_found(la_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(runs.CHECKPOINT_ENV, raising=False)
    assert runs.find_checkpoint(root=tmp_path) is None
    short = {"iterations": 4, "step.warmup": 2}
    cfg = runs.short_config("smoke", la_dir, root=tmp_path, **short)
    assert cfg.out == str(tmp_path / "short" / "smoke-caml-4L-seed3407")
    final = runs.train_short("smoke", la_dir, root=tmp_path, progress=False, **short)
    assert final == tmp_path / "short" / "smoke-caml-4L-seed3407" / runs.FINAL and final.is_file()
    assert runs.find_checkpoint(root=tmp_path) == final
    assert TrainedSettings.from_checkpoint(final).n_filters == 4
    stamp = final.stat().st_mtime_ns
    assert runs.train_short("smoke", la_dir, root=tmp_path, **short) == final
    assert final.stat().st_mtime_ns == stamp  # a finished short run is reused, not retrained
    with pytest.raises(CamlkitError, match="unknown short-run size 'huge'"):
        runs.short_config("huge", la_dir)


def test_find_network_order_checkpoint_authors_run(tmp_path, monkeypatch):
    """CHECKPOINT, then the authors' network in the cache, then the newest run, then none."""
    from standins import write_standin

    from camlkit.runtime.weights import cached

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("CAMLKIT_CHECKPOINT", raising=False)
    empty = tmp_path / "runs"
    empty.mkdir()
    assert runs.find_network(root=empty) == (None, "none")
    assert cached(16) is None
    from camlkit.runtime import weights
    from camlkit.runtime.weights import default_dest, entry

    standin = write_standin(default_dest() / entry(16).name)
    assert runs.find_network(root=empty) == (standin, runs.NOT_PINNED)  # a stand-in is not their file
    # the pinned file (here: a registry pinning the stand-in's own blob id) is the authors'
    pinned = weights.ReleasedWeights(16, entry(16).path, weights.blob_id(standin))
    monkeypatch.setitem(weights.RELEASED, 16, pinned)
    assert runs.find_network(root=empty) == (standin, "authors")
    monkeypatch.setitem(weights.RELEASED, 16, entry(16, {16: weights.ReleasedWeights(16, pinned.path, "0" * 40)}))
    assert runs.find_network(root=empty) == (standin, runs.NOT_PINNED)
    assert runs.find_network(root=empty, labeled=4) == (None, "none")  # only the 16-labeled file
    mine = tmp_path / "mine.pth"
    mine.write_bytes(standin.read_bytes())
    assert runs.find_network(mine, root=empty) == (mine, "CHECKPOINT")
    monkeypatch.setenv("CAMLKIT_CHECKPOINT", str(mine))
    assert runs.find_network(root=empty) == (mine, "CHECKPOINT")
    with pytest.raises(CamlkitError, match="no such checkpoint"):
        runs.find_network(tmp_path / "nope.pth", root=empty)
    net, settings = load_trained(standin)  # the authors' layout: width read from the file
    assert settings.n_filters == net.config.n_filters == 2
    assert settings.inputs == InputSettings(scale=1.0, zscore_case=False, patch_size=(112, 112, 80),
                                            stride=(18, 18, 4))


# ----------------------------------------------------------------------------- where runs go

def test_runs_root_follows_one_rule(tmp_path, monkeypatch):
    monkeypatch.delenv(runs.RUNS_ENV, raising=False)
    notebooks = tmp_path / "course" / "notebooks"
    notebooks.mkdir(parents=True)
    monkeypatch.chdir(notebooks)  # a notebook's kernel: runs/ beside notebooks/, existing or not
    assert runs.runs_root() == tmp_path / "course" / "runs"
    (notebooks / "runs").mkdir()  # a folder appearing elsewhere changes nothing
    assert runs.runs_root() == tmp_path / "course" / "runs"
    monkeypatch.chdir(tmp_path)  # anywhere else: runs/ of the working folder
    assert runs.runs_root() == tmp_path / "runs"
    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path / "elsewhere"))
    assert runs.runs_root() == tmp_path / "elsewhere"
    assert runs.runs_root(tmp_path / "given") == tmp_path / "given"  # an explicit root wins


def test_the_launched_child_never_has_the_package_folder_on_its_path():
    package = Path(runs.__file__).resolve().parents[1]
    env = child_env({"PYTHONPATH": "/somewhere"})
    entries = env["PYTHONPATH"].split(os.pathsep)
    assert str(package) not in entries
    assert entries[-1] == "/somewhere"  # what the caller had is kept
    assert entries[:-1] in ([], [str(package.parent)])  # at most the folder holding camlkit/


@pytest.mark.slow
def test_a_read_only_camlkit_writes_runs_where_the_rule_says(la_dir, tmp_path):
    """camlkit as an installed copy nobody may write to: the short run of notebooks 4/5 and
    ``camlkit train`` land in runs/ beside notebooks/ (or of the working folder), and notebook 5
    finds notebook 4's short run after runs/ holds another run."""
    site_dir, course_dir = tmp_path / "site", tmp_path / "course"
    shutil.copytree(Path(runs.__file__).resolve().parents[1], site_dir / "camlkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (course_dir / "notebooks").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k not in (runs.RUNS_ENV, runs.CHECKPOINT_ENV)}
    env.update(PYTHONPATH=str(site_dir), PYTHONDONTWRITEBYTECODE="1", TORCH_HOME=str(tmp_path / "torch"))
    short = ("from camlkit.lab import runs; import camlkit; assert camlkit.__file__.startswith({site!r});"
             "final = runs.train_short('smoke', {data!r}, progress=False, iterations=4, **{{'step.warmup': 2}});"
             "print(final); print(runs.find_network(labeled=None)[0])")
    read_only = [p for p in (site_dir / "camlkit").rglob("*")] + [site_dir / "camlkit"]
    for path in read_only:
        path.chmod(path.stat().st_mode & ~0o222)
    try:
        code = short.format(site=str(site_dir), data=str(la_dir))
        nb4 = subprocess.run([sys.executable, "-c", code], cwd=course_dir / "notebooks", env=env,
                             capture_output=True, text=True, timeout=600)
        assert nb4.returncode == 0, nb4.stderr
        final = Path(nb4.stdout.split()[0])
        assert final.is_relative_to(course_dir / "runs" / "short") and final.is_file()
        train_cli = subprocess.run([sys.executable, "-m", "camlkit.cli", "train", "--preset", "smoke",
                                    "--iterations", "2", "--data", str(la_dir), "--no-progress"],
                                   cwd=course_dir, env=env, capture_output=True, text=True, timeout=600)
        assert train_cli.returncode == 0, train_cli.stderr
        assert (course_dir / "runs" / "smoke-caml-4L-seed3407" / runs.FINAL).is_file()
        nb5 = subprocess.run([sys.executable, "-c", code], cwd=course_dir / "notebooks", env=env,
                             capture_output=True, text=True, timeout=600)
        assert nb5.returncode == 0, nb5.stderr
        assert nb5.stdout.split()[0] == str(final)  # the same short run, not trained again
    finally:
        for path in read_only:
            path.chmod(path.stat().st_mode | 0o200)
    assert not any(p.name == "runs" for p in (site_dir / "camlkit").rglob("*"))
