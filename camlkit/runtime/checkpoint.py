"""camlkit's checkpoint files: written with a content digest, read safely, loaded strictly.

(The authors' released state_dicts: camlkit.runtime.released.)

**camlkit checkpoints** are dicts ``{"format": "camlkit", "version", "model", "config", ...}``
written by camlkit.train (which adds optimizer, memory bank and RNG states for ``--resume``).
:func:`camlkit.runtime.trained.load_inference_model` reads either kind (or an authors' file) and returns f_v ready for
inference.
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
magnitude, which catches flipped exponent bits but not a small change of a value. Which camlkit
files may lack the digest is told by the format version: version 1 files were written before
it existed (or with it, then it is checked); from version 2 on the digest is always written,
so a file without one was edited and is refused.
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
VERSION = 2  # 2: the content digest is always there (1: written before it existed)
READ_VERSIONS = (1, 2)
DIGEST = "sha256"  # the key of a camlkit checkpoint's content digest
MAX_ABS_WEIGHT = 1e6  # no trained CAML weight or BatchNorm statistic comes near it


# the first bytes of the two formats torch.save writes: a zip archive, or a legacy pickle
TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def read_dict(path_or_state_dict, what):
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
    elif state.get("format") == FORMAT and state.get("version") != 1:
        raise CamlkitError(f"{path}: camlkit checkpoint version {state.get('version')} without its "
                           f"{DIGEST!r} digest, which every such file is written with: the file was "
                           f"edited, its contents cannot be checked; use another copy")
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


def save_inference_model(net: CAMLNet, path, inputs=None, train=None, split=None) -> None:
    """Save a camlkit checkpoint holding the network and its config: ``{"model": CAMLConfig
    fields, "inputs": how its inputs were prepared, "train": the run's config tree, "split":
    its validation cases by id}``.

    ``inputs`` is a camlkit.runtime.trained.InputSettings (read back by its ``from_config``);
    ``train`` the run's camlkit.config.to_dict; ``split`` camlkit.runtime.resume.run_split. Any
    may be left out (a bare network)."""
    config = {"model": dataclasses.asdict(net.config)}
    if inputs is not None:
        config["inputs"] = inputs.to_dict()
    if train is not None:
        config["train"] = train
    if split is not None:
        config["split"] = split
    save_checkpoint({"format": FORMAT, "version": VERSION, "model": net.state_dict(), "config": config}, path)


def checkpoint_kind(ckpt: dict) -> str:
    """"training" for a checkpoint that can resume a run (optimizer and iteration), else "inference"."""
    return "training" if "optimizer" in ckpt and "iteration" in ckpt else "inference"


def read_camlkit_checkpoint(path, kind="training") -> dict:
    """A camlkit checkpoint dict, by default one that can resume a run; a clear error otherwise.

    ``kind="training"`` (``--resume``) refuses an inference checkpoint, saying which file to use;
    ``kind="inference"`` or None accept both (a training checkpoint holds the model too).
    """
    return _check_camlkit(read_dict(path, "camlkit checkpoint"), path, kind)


def _check_camlkit(ckpt, path, kind):
    if ckpt.get("format") != FORMAT:
        raise CamlkitError(f"{path}: not a camlkit checkpoint (no 'format': 'camlkit' entry)")
    if ckpt.get("version") not in READ_VERSIONS:
        raise CamlkitError(f"{path}: camlkit checkpoint version {ckpt.get('version')}, "
                           f"this camlkit reads versions {', '.join(map(str, READ_VERSIONS))}")
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


def checkpoint_config(path) -> dict:
    """The config stored in a camlkit checkpoint ({} for the authors' released weights)."""
    state = read_dict(path, "checkpoint")
    if state.get("format") == FORMAT:
        return _check_camlkit(state, path, None)["config"]
    return {}
