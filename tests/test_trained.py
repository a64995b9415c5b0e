"""camlkit/runtime/trained.py: InputSettings, the one record of how a network's inputs were
prepared, read back from every checkpoint layout camlkit wrote (real files, written with
torch.save as each camlkit wrote them) and overridden field by field by the command line."""

import argparse
import dataclasses

import pytest
import torch

from camlkit.caml import CAMLNet
from camlkit.config import make_config, to_dict
from camlkit.errors import CamlkitError
from camlkit.evaluation.inference import window_inputs
from camlkit.runtime.checkpoint import checkpoint_config, save_inference_model
from camlkit.runtime.trained import InputSettings, TrainedSettings, stored_setting


def old_checkpoint(path, **config):
    """A camlkit inference checkpoint as an older camlkit wrote it: the dict torch.save'd as it
    is, without a content digest, its config holding ``config`` beside the model's."""
    net = CAMLNet(n_filters=2, proj_dim=8)
    torch.save({"format": "camlkit", "version": 1, "model": net.state_dict(),
                "config": {"model": dataclasses.asdict(net.config), **config}}, path)
    return path


def read(path) -> InputSettings:
    """What `camlkit predict` / `camlkit evaluate` read, and what the notebooks read: the same."""
    inputs = InputSettings.from_config(checkpoint_config(path))
    assert TrainedSettings.from_checkpoint(path).inputs == inputs
    return inputs


def test_the_camlkit_before_top_level_keys_beside_the_run_tree(tmp_path):
    """As camlkit.train wrote model_final.pth before InputSettings: the inputs twice."""
    cfg = make_config("smoke")
    path = old_checkpoint(tmp_path / "model_final.pth", train=to_dict(cfg), scale=cfg.scale,
                          patch_size=list(cfg.patch_size), stride=list(cfg.eval_stride),
                          method=cfg.method, labeled=cfg.labeled, zscore_case=cfg.zscore_case)
    assert read(path) == InputSettings(scale=0.25, zscore_case=True, patch_size=(32, 32, 16),
                                       stride=(16, 16, 8))
    settings = TrainedSettings.from_checkpoint(path)
    assert (settings.method, settings.labeled, settings.preset, settings.step) == ("caml", 4, "smoke", cfg.step)


def test_top_level_keys_alone(tmp_path):
    path = old_checkpoint(tmp_path / "m.pth", scale=0.5, patch_size=[48, 48, 32], stride=[7, 7, 2],
                          zscore_case=True, method="mcnet", labeled=8, val_cases=5)
    assert read(path) == InputSettings(scale=0.5, zscore_case=True, patch_size=(48, 48, 32), stride=(7, 7, 2))
    settings = TrainedSettings.from_checkpoint(path)
    assert (settings.method, settings.labeled, settings.val_cases, settings.preset) == ("mcnet", 8, 5, None)


def test_the_run_tree_alone_gives_its_eval_stride(tmp_path):
    """Only ``config["train"]``: the stride is the tree's ``eval_stride``, not the released one."""
    cfg = make_config("quick", val_cases=6)
    path = old_checkpoint(tmp_path / "m.pth", train=to_dict(cfg))
    assert read(path) == InputSettings(scale=0.4, zscore_case=True, patch_size=(48, 48, 32), stride=(7, 7, 2))
    config = checkpoint_config(path)
    assert [stored_setting(config, k) for k in ("method", "labeled", "val_cases")] == ["caml", 16, 6]


def test_the_oldest_patch_key(tmp_path):
    path = old_checkpoint(tmp_path / "m.pth", patch=[32, 32, 16], scale=0.25)
    assert read(path) == InputSettings(scale=0.25, zscore_case=False, patch_size=(32, 32, 16), stride=(18, 18, 4))


def test_the_authors_files_store_nothing_and_get_the_released_inputs(tmp_path):
    from camlkit.runtime.released import camlkit_to_released_key

    net = CAMLNet(n_filters=2)
    torch.save({camlkit_to_released_key(k): v for k, v in net.state_dict().items()}, tmp_path / "iter_15000.pth")
    assert checkpoint_config(tmp_path / "iter_15000.pth") == {}
    assert read(tmp_path / "iter_15000.pth") == InputSettings(
        scale=1.0, zscore_case=False, patch_size=(112, 112, 80), stride=(18, 18, 4))


def test_this_camlkit_writes_the_inputs_once(tmp_path):
    cfg = make_config("quick", labeled=16)
    save_inference_model(CAMLNet(n_filters=2, proj_dim=8), tmp_path / "m.pth", inputs=InputSettings.of(cfg),
                         train=to_dict(cfg))
    config = checkpoint_config(tmp_path / "m.pth")
    assert sorted(config) == ["inputs", "model", "train"]  # no top-level copies
    assert config["inputs"] == {"scale": 0.4, "zscore_case": True, "patch_size": [48, 48, 32], "stride": [7, 7, 2]}
    assert read(tmp_path / "m.pth") == InputSettings.of(cfg)
    assert TrainedSettings.from_checkpoint(tmp_path / "m.pth").labeled == 16


def test_first_stored_place_wins():
    """``"inputs"``, then the top-level keys, then the run tree, field by field."""
    config = {"inputs": {"scale": 0.5, "stride": None}, "scale": 0.25, "patch": [64, 64, 64],
              "train": {"patch_size": [32, 32, 32], "eval_stride": [4, 4, 4], "zscore_case": True}}
    assert InputSettings.from_config(config) == InputSettings(
        scale=0.5, zscore_case=True, patch_size=(64, 64, 64), stride=(4, 4, 4))
    assert InputSettings.from_config({"train": "not a tree"}) == InputSettings()


def test_fields_are_normalised_and_bad_ones_named():
    inputs = dataclasses.replace(InputSettings(), patch_size=[32, 32, 16], scale=1, zscore_case=1)
    assert (inputs.patch_size, inputs.scale, inputs.zscore_case) == ((32, 32, 16), 1.0, True)
    assert inputs == InputSettings(scale=1.0, zscore_case=True, patch_size=(32, 32, 16))
    with pytest.raises(CamlkitError, match=r"patch_size \(32, 32\), expected three sides"):
        InputSettings(patch_size=[32, 32])
    with pytest.raises(CamlkitError, match="expected a number scale"):
        InputSettings.from_config({"inputs": {"scale": "half"}})


def flags(patch=None, stride=None, scale=None, batch_size=4):
    return argparse.Namespace(patch=patch, stride=stride, scale=scale, batch_size=batch_size)


def test_a_flag_overrides_its_field_and_keeps_the_rest():
    stored = InputSettings(scale=0.4, zscore_case=True, patch_size=(48, 48, 32), stride=(7, 7, 2))
    assert window_inputs(flags(), stored) == stored
    assert window_inputs(flags(stride=[16, 16, 8]), stored) == InputSettings(
        scale=0.4, zscore_case=True, patch_size=(48, 48, 32), stride=(16, 16, 8))
    assert window_inputs(flags(patch=[32, 32, 16], scale=1.0), stored) == InputSettings(
        scale=1.0, zscore_case=True, patch_size=(32, 32, 16), stride=(7, 7, 2))
    with pytest.raises(CamlkitError, match="--patch 30 30 30: each side must be a positive multiple of 16"):
        window_inputs(flags(patch=[30, 30, 30]), stored)
