"""Checkpoints: the authors' released weights and camlkit's own files.

**Released checkpoints.** The authors' ``iter_15000.pth`` files are plain state_dicts of their
``CAML3d_v1`` (keys listed in shared/reference/caml_state_dict_keys.tsv). Their names map one to
one onto camlkit's: ``encoder1``/``decoder1`` are f_v, ``encoder2``/``decoder2`` f_a,
``block_one`` ... ``block_nine`` the V-Net stages, ``intra_attention``/``inter_attention`` CMA's
two layers, ``projection_head1``/``prediction_head1`` the heads of f_v (``...2`` of f_a).
:func:`load_released_checkpoint` maps every key, checks every shape and refuses anything missing
or extra.

**camlkit checkpoints** are dicts ``{"format": "camlkit", "version", "model", "config", ...}``
written by camlkit.train (which adds optimizer, memory bank and RNG states for ``--resume``).
:func:`load_inference_model` reads either kind and returns f_v ready for inference.
All loading uses ``torch.load(..., weights_only=True)``.
"""

import dataclasses
import os
import re
from pathlib import Path

import torch

from camlkit.caml import CAMLConfig, CAMLNet
from camlkit.errors import CamlkitError

FORMAT = "camlkit"
VERSION = 1

RELEASED_BLOCKS = {
    "block_one": "stage1", "block_one_dw": "down1", "block_two": "stage2", "block_two_dw": "down2",
    "block_three": "stage3", "block_three_dw": "down3", "block_four": "stage4",
    "block_four_dw": "down4", "block_five": "stage5", "block_five_up": "up4", "block_six": "dec4",
    "block_six_up": "up3", "block_seven": "dec3", "block_seven_up": "up2", "block_eight": "dec2",
    "block_eight_up": "up1", "block_nine": "dec1", "out_conv": "out_conv",
}
RELEASED_PREFIXES = {
    "encoder1": "f_v.encoder", "decoder1": "f_v.decoder",
    "encoder2": "f_a.encoder", "decoder2": "f_a.decoder",
    "projection_head1": "proj_v", "prediction_head1": "pred_v",
    "projection_head2": "proj_a", "prediction_head2": "pred_a",
}


def released_to_camlkit_key(key: str) -> str:
    """Map one released state_dict key to camlkit's name (KeyError if it has no counterpart)."""
    prefix, rest = key.split(".", 1)
    new_prefix = RELEASED_PREFIXES[prefix]
    if prefix.startswith(("projection", "prediction")):
        return f"{new_prefix}.{rest}"
    attention = re.fullmatch(r"(intra|inter)_attention\.encoder_layers\.(.+)", rest)
    if attention:
        return f"{new_prefix}.cma.{attention.group(1)}.{attention.group(2)}"
    block, rest = rest.split(".", 1)
    rest = rest.removeprefix("conv.")  # the release wraps each block's layers in `.conv`
    return f"{new_prefix}.{RELEASED_BLOCKS[block]}.{rest}"


def _read(path_or_state_dict, what):
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict
    path = Path(path_or_state_dict)
    if not path.is_file():
        raise CamlkitError(f"{path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and weights_only errors all mean "not a checkpoint"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CamlkitError(f"{path}: cannot read as a {what}: {first_line}") from None


def load_released_checkpoint(path_or_state_dict, config: CAMLConfig | None = None,
                             name=None) -> CAMLNet:
    """Build a CAMLNet (released defaults) holding the authors' weights, strictly.

    Every released key must map onto a camlkit parameter or buffer with the same shape, and
    every camlkit parameter must be given; otherwise a one-line CamlkitError names the key.
    """
    state = _read(path_or_state_dict, "released CAML checkpoint")
    if name is None and not isinstance(path_or_state_dict, dict):
        name = path_or_state_dict
    source = f"{name}: " if name is not None else ""
    net = CAMLNet(config)
    expected = net.state_dict()
    mapped = {}
    for key, value in state.items():
        try:
            mapped[released_to_camlkit_key(key)] = value
        except (KeyError, ValueError):
            raise CamlkitError(f"{source}unexpected key {key!r} in a released CAML checkpoint") from None
    for key, value in mapped.items():
        if key not in expected:
            raise CamlkitError(f"{source}unexpected key {camlkit_to_released_key(key)!r} "
                               f"in a released CAML checkpoint")
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CamlkitError(f"{source}{camlkit_to_released_key(key)!r} has shape "
                               f"{tuple(value.shape)}, expected {tuple(expected[key].shape)}")
    missing = [k for k in expected if k not in mapped]
    if missing:
        raise CamlkitError(f"{source}missing {len(missing)} released key(s), e.g. "
                           f"{camlkit_to_released_key(missing[0])!r}")
    net.load_state_dict(mapped, strict=True)
    return net


def camlkit_to_released_key(key: str) -> str:
    """Inverse of :func:`released_to_camlkit_key`."""
    prefix_map = {v: k for k, v in RELEASED_PREFIXES.items()}
    block_map = {v: k for k, v in RELEASED_BLOCKS.items()}
    for new_prefix, old_prefix in prefix_map.items():
        if key.startswith(new_prefix + "."):
            rest = key[len(new_prefix) + 1 :]
            break
    else:
        raise KeyError(key)
    if old_prefix.startswith(("projection", "prediction")):
        return f"{old_prefix}.{rest}"
    cma = re.fullmatch(r"cma\.(intra|inter)\.(.+)", rest)
    if cma:
        return f"{old_prefix}.{cma.group(1)}_attention.encoder_layers.{cma.group(2)}"
    block, rest = rest.split(".", 1)
    inner = rest if block == "out_conv" else f"conv.{rest}"
    return f"{old_prefix}.{block_map[block]}.{inner}"


def save_checkpoint(payload: dict, path) -> None:
    """Write ``payload`` atomically: a temporary file in the same folder, then a rename."""
    path = Path(path)
    if not path.parent.is_dir():
        raise CamlkitError(f"{path}: folder {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_inference_model(net: CAMLNet, path, **extra) -> None:
    """Save a camlkit checkpoint holding just the network and its config (plus ``extra`` data)."""
    save_checkpoint({"format": FORMAT, "version": VERSION, "model": net.state_dict(),
                     "config": {"model": dataclasses.asdict(net.config), **extra}}, path)


def read_camlkit_checkpoint(path) -> dict:
    """A camlkit checkpoint dict; a clear error for anything else."""
    ckpt = _read(path, "camlkit checkpoint")
    if not (isinstance(ckpt, dict) and ckpt.get("format") == FORMAT):
        raise CamlkitError(f"{path}: not a camlkit checkpoint (no 'format': 'camlkit' entry)")
    if ckpt.get("version") != VERSION:
        raise CamlkitError(f"{path}: camlkit checkpoint version {ckpt.get('version')}, "
                           f"this camlkit reads version {VERSION}")
    return ckpt


def net_from_checkpoint(ckpt: dict, path="checkpoint") -> CAMLNet:
    """Rebuild the CAMLNet a camlkit checkpoint describes and load its weights strictly."""
    try:
        net = CAMLNet(CAMLConfig(**ckpt["config"]["model"]))
    except TypeError as err:
        raise CamlkitError(f"{path}: its model config does not fit this camlkit: {err}") from None
    try:
        net.load_state_dict(ckpt["model"], strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CamlkitError(f"{path}: weights do not fit the architecture in its config: {first}") from None
    return net


def load_inference_model(path, map_location="cpu"):
    """f_v in eval mode, from a camlkit checkpoint or an authors' released state_dict."""
    state = _read(path, "checkpoint")
    if isinstance(state, dict) and state.get("format") == FORMAT:
        net = net_from_checkpoint(read_camlkit_checkpoint(path), path)
    else:
        net = load_released_checkpoint(state, name=path)
    return net.f_v.to(map_location).eval()


def checkpoint_config(path) -> dict:
    """The config stored in a camlkit checkpoint ({} for the authors' released weights)."""
    state = _read(path, "checkpoint")
    if isinstance(state, dict) and state.get("format") == FORMAT:
        return read_camlkit_checkpoint(path)["config"]
    return {}
