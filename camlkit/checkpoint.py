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
All loading uses ``torch.load(..., weights_only=True)`` and checks what it read: a file that is
not a PyTorch file, one whose pickle asks to run code (refused by that safety check; never to be
loaded unsafely), one that holds something else than a dict of tensors, weights that are NaN
or infinite, a checkpoint of the wrong kind (``checkpoints/last.pth``, the *training* checkpoint
that ``--resume`` needs, against ``model_final.pth``, the *inference* checkpoint of a finished
run) and weights that do not fit the architecture each give one line naming the file.

**Damage.** torch's zip reader does not check the CRCs of its entries, so bytes changed inside a
tensor load without a word. camlkit checkpoints therefore carry ``"sha256"``, a SHA-256 over every
tensor and value of the dict in key order (:func:`content_digest`), written by
:func:`save_checkpoint` and compared on every load (about 0.4 s for the paper-size network and
its optimizer state on a 2-core CPU). The authors' released files are plain
state_dicts without a digest: they (and camlkit checkpoints written before the digest existed)
are checked the weaker way there is, every weight finite and below :data:`MAX_ABS_WEIGHT` in
magnitude, which catches flipped exponent bits but not a small change of a value.
"""

import dataclasses
import hashlib
import io
import pickle
import re
from pathlib import Path

import torch

from camlkit.caml import CAMLConfig, CAMLNet
from camlkit.errors import CamlkitError
from camlkit.files import write_bytes

FORMAT = "camlkit"
VERSION = 1
DIGEST = "sha256"  # the key of a camlkit checkpoint's content digest
MAX_ABS_WEIGHT = 1e6  # no trained CAML weight or BatchNorm statistic comes near it

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


# the first bytes of the two formats torch.save writes: a zip archive, or a legacy pickle
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def _read(path_or_state_dict, what):
    """What a checkpoint file holds, which must be a dict; one line naming the file otherwise."""
    if isinstance(path_or_state_dict, dict):
        return path_or_state_dict
    path = Path(path_or_state_dict)
    if not path.is_file():
        raise CamlkitError(f"{path}: no such checkpoint file")
    with open(path, "rb") as f:
        head = f.read(16)
    if not head:
        raise CamlkitError(f"{path}: empty file, expected a {what}")
    if not head.startswith(TORCH_MAGIC):
        shown = head.decode("latin-1")[:12]
        raise CamlkitError(f"{path}: not a PyTorch file (it starts with {shown!r}); expected a {what}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise CamlkitError(f"{path}: cannot read as a {what}: {_first_line(err)}") from None
        # PyTorch's text advises rerunning with weights_only=False: for this file, never do that
        asked = re.search(r"GLOBAL (\S+)", str(err))
        what_it_asks = f" (its pickle asks for {asked.group(1)})" if asked else ""
        raise CamlkitError(f"{path}: refused, the file failed the safety check for checkpoints"
                           f"{what_it_asks}: a file of weights never needs to run code; do not "
                           f"load it unsafely (weights_only=False), delete it or ask its author "
                           f"for a plain state_dict") from None
    except Exception as err:  # zip and other read errors all mean "not a checkpoint"
        raise CamlkitError(f"{path}: cannot read as a {what}: {_first_line(err)}") from None
    if not isinstance(state, dict):
        raise CamlkitError(f"{path}: holds a {type(state).__name__}, expected a {what} "
                           f"(a dict of weights)")
    if state.get("format") == FORMAT and DIGEST in state:
        check_digest(state, path)
    return state


def _first_line(err):
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


# ----------------------------------------------------------------------------- integrity

def _leaves(value, name=""):
    """(key path, leaf) of every tensor and plain value in a nested dict/list, in key order."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not (name == "" and key == DIGEST):
                yield from _leaves(item, f"{name}/{key}")
    elif isinstance(value, (list, tuple)):
        for k, item in enumerate(value):
            yield from _leaves(item, f"{name}/{k}")
    else:
        yield name, value


def content_digest(checkpoint: dict) -> str:
    """SHA-256 over every tensor (key path, dtype, shape, bytes) and plain value of a checkpoint."""
    digest = hashlib.sha256()
    for name, value in _leaves(checkpoint):
        if torch.is_tensor(value):
            digest.update(f"{name} {value.dtype} {tuple(value.shape)}\n".encode())
            flat = value.detach().cpu().contiguous().reshape(-1)  # logical order, any layout
            digest.update(flat.view(torch.uint8).numpy())
        else:
            digest.update(f"{name}={value!r}\n".encode())
    return digest.hexdigest()


def check_digest(checkpoint: dict, path) -> None:
    """The checkpoint's contents still match the digest written with it; one line otherwise."""
    if content_digest(checkpoint) != checkpoint[DIGEST]:
        raise CamlkitError(f"{path}: damaged checkpoint, its contents do not match the SHA-256 "
                           f"digest written with it (the file was changed or corrupted after "
                           f"it was saved); use another copy or an earlier checkpoint")


def check_finite(state: dict, source, bound=None) -> None:
    """Every floating-point tensor of a state_dict is finite (and, with ``bound``, below it in
    magnitude: the check of a file without a digest); else one line naming the tensor."""
    for key, value in state.items():
        if not (torch.is_tensor(value) and value.is_floating_point()):
            continue
        if not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise CamlkitError(f"{source}: weight {key!r} holds {bad} NaN or infinite value(s) of "
                               f"{value.numel()}; this checkpoint cannot be used (take one written "
                               f"before the training diverged)")
        if bound is not None and value.numel() and float(value.abs().max()) >= bound:
            raise CamlkitError(f"{source}: weight {key!r} holds {float(value.abs().max()):.3g}, "
                               f"beyond any trained weight (|w| < {bound:g}): the file looks "
                               f"damaged; download or copy it again")


def released_config(state: dict) -> CAMLConfig:
    """The architecture of a released state_dict: its width read from the first convolution.

    ``encoder1.block_one.conv.0.weight`` is (n_filters, in_channels, 3, 3, 3) and
    ``decoder1.out_conv.weight`` (n_classes, n_filters, 1, 1, 1); every other setting is the
    released default. The authors' files give the released network (16 filters); a narrower
    file in the same layout (a test's) gives its own width. A file whose other shapes differ
    still fails on the first such key, named.
    """
    found = {}
    first = state.get("encoder1.block_one.conv.0.weight")
    if torch.is_tensor(first) and first.dim() == 5:
        found.update(n_filters=first.shape[0], in_channels=first.shape[1])
    out = state.get("decoder1.out_conv.weight")
    if torch.is_tensor(out) and out.dim() == 5:
        found["n_classes"] = out.shape[0]
    return CAMLConfig(**found)


def load_released_checkpoint(path_or_state_dict, config: CAMLConfig | None = None,
                             name=None) -> CAMLNet:
    """Build a CAMLNet holding the authors' weights, strictly.

    The architecture is ``config``, else the one the file's shapes describe
    (:func:`released_config`; the released defaults for the authors' files). Every released key
    must map onto a camlkit parameter or buffer with the same shape, and every camlkit
    parameter must be given; otherwise a one-line CamlkitError names the key.
    """
    state = _read(path_or_state_dict, "released CAML checkpoint")
    if name is None and not isinstance(path_or_state_dict, dict):
        name = path_or_state_dict
    source = f"{name}: " if name is not None else ""
    net = CAMLNet(config if config is not None else released_config(state))
    expected = net.state_dict()
    mapped = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            raise CamlkitError(f"{source}{key!r} is a {type(value).__name__}, expected a tensor "
                               f"(not a released CAML checkpoint)")
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
    # no digest to compare: finite and of a sane magnitude is the check there is
    check_finite(state, name if name is not None else "released checkpoint", bound=MAX_ABS_WEIGHT)
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
    """Write ``payload`` with its content digest (``"sha256"``, checked by every load) atomically
    (camlkit.files.write_bytes: a temporary file, then a rename).

    The payload is serialised in memory first: torch.save reports a full disk with a cryptic
    "unexpected pos" error, a plain write with ENOSPC, which becomes one line
    (camlkit.files.DiskFullError) while ``path`` keeps the previous checkpoint.
    """
    buffer = io.BytesIO()
    torch.save({**payload, DIGEST: content_digest(payload)}, buffer)
    write_bytes(buffer.getbuffer(), path)


def save_inference_model(net: CAMLNet, path, **extra) -> None:
    """Save a camlkit checkpoint holding just the network and its config (plus ``extra`` data)."""
    save_checkpoint({"format": FORMAT, "version": VERSION, "model": net.state_dict(),
                     "config": {"model": dataclasses.asdict(net.config), **extra}}, path)


def checkpoint_kind(ckpt: dict) -> str:
    """"training" for a checkpoint that can resume a run (optimizer and iteration), else "inference"."""
    return "training" if "optimizer" in ckpt and "iteration" in ckpt else "inference"


def read_camlkit_checkpoint(path, kind="training") -> dict:
    """A camlkit checkpoint dict, by default one that can resume a run; a clear error otherwise.

    ``kind="training"`` (``--resume``) refuses an inference checkpoint, saying which file to use;
    ``kind="inference"`` or None accept both (a training checkpoint holds the model too).
    """
    return _check_camlkit(_read(path, "camlkit checkpoint"), path, kind)


def _check_camlkit(ckpt, path, kind):
    if ckpt.get("format") != FORMAT:
        raise CamlkitError(f"{path}: not a camlkit checkpoint (no 'format': 'camlkit' entry)")
    if ckpt.get("version") != VERSION:
        raise CamlkitError(f"{path}: camlkit checkpoint version {ckpt.get('version')}, "
                           f"this camlkit reads version {VERSION}")
    for key in ("model", "config"):
        if not isinstance(ckpt.get(key), dict):
            raise CamlkitError(f"{path}: camlkit checkpoint without its {key!r} entry")
    if kind == "training" and checkpoint_kind(ckpt) != "training":
        raise CamlkitError(f"{path}: is an inference checkpoint (weights only, like <run>/model_final.pth); "
                           f"--resume needs the training checkpoint <run>/checkpoints/last.pth")
    return ckpt


def _architecture_mismatch(net, state) -> str:
    """Everything that differs between a state_dict and a network, in one line."""
    expected = net.state_dict()
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[0]!r})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[0]!r})")
    if shapes:
        k = shapes[0]
        parts.append(f"{len(shapes)} of another shape (e.g. {k!r}: {tuple(state[k].shape)} in the file, "
                     f"{tuple(expected[k].shape)} in the architecture)")
    return ", ".join(parts)


def net_from_checkpoint(ckpt: dict, path="checkpoint") -> CAMLNet:
    """Rebuild the CAMLNet a camlkit checkpoint describes and load its weights strictly."""
    try:
        net = CAMLNet(CAMLConfig(**ckpt["config"]["model"]))
    except (TypeError, KeyError) as err:
        raise CamlkitError(f"{path}: its model config does not fit this camlkit: {err}") from None
    state = ckpt["model"]
    mismatch = _architecture_mismatch(net, state)
    if mismatch:
        raise CamlkitError(f"{path}: weights do not fit the architecture in its config: {mismatch}")
    check_finite(state, path, bound=None if DIGEST in ckpt else MAX_ABS_WEIGHT)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        text = " ".join(str(err).split())  # the whole message, on one line
        raise CamlkitError(f"{path}: weights do not fit the architecture in its config: {text}") from None
    return net


def load_inference_model(path, map_location="cpu"):
    """f_v in eval mode, from a camlkit checkpoint (either kind) or an authors' released state_dict."""
    state = _read(path, "checkpoint")
    if state.get("format") == FORMAT:
        net = net_from_checkpoint(_check_camlkit(state, path, "inference"), path)
    else:
        net = load_released_checkpoint(state, name=path)
    return net.f_v.to(map_location).eval()


def checkpoint_config(path) -> dict:
    """The config stored in a camlkit checkpoint ({} for the authors' released weights)."""
    state = _read(path, "checkpoint")
    if state.get("format") == FORMAT:
        return _check_camlkit(state, path, None)["config"]
    return {}
