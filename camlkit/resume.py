"""Resume: what a training checkpoint holds, and the checks that a run may continue from it.

``checkpoints/last.pth`` holds the model, the optimizer, OCC's memory bank, the torch RNG state,
the whole config tree (camlkit.config.to_dict) and a fingerprint of the data split. A run resumes
only if it asks for the same thing: every config field must match except those in
:data:`MAY_CHANGE` (where the run is written, how it is logged, which device runs it), and
``iterations`` may grow but not fall below the checkpoint's iteration. The data split is compared
by content (the two list files and the case files' sizes), not by folder name, so moving the
data folder is fine and swapping its cases is not.
"""

import dataclasses
import hashlib
from contextlib import contextmanager
from pathlib import Path

import torch

from camlkit.checkpoint import (FORMAT, VERSION, net_from_checkpoint, read_camlkit_checkpoint)
from camlkit.config import to_dict
from camlkit.errors import CamlkitError
from camlkit.files import DiskFullError, is_disk_full
from camlkit.limits import limit_reached

# fields a resumed run may change (``data`` is compared by its fingerprint instead)
MAY_CHANGE = ("out", "data", "device", "num_workers", "checkpoint_every", "log_every", "progress")


def data_fingerprint(data_dir) -> dict:
    """{"train.list", "test.list", "case sizes"}: short digests of what the split contains."""
    from camlkit.data import case_path, read_list

    data_dir = Path(data_dir)
    found = {}
    sizes = []
    for name in ("train.list", "test.list"):
        found[name] = _digest((data_dir / name).read_bytes())
        for case in read_list(data_dir / name):
            sizes.append(f"{case} {case_path(data_dir, case).stat().st_size}")
    found["case sizes"] = _digest("\n".join(sizes).encode())
    return found


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def checkpoint_payload(cfg, net, optimizer, bank, iteration, fingerprint):
    """Everything an exact resume needs (see the module docstring)."""
    return {
        "format": FORMAT, "version": VERSION, "iteration": iteration,
        "config": {"model": dataclasses.asdict(net.config), "train": to_dict(cfg)},
        "data": fingerprint,
        "model": net.state_dict(), "optimizer": optimizer.state_dict(),
        "bank": bank.state_dict() if bank is not None else None,
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }


def check_resumable(ckpt, cfg, fingerprint, path):
    """One line naming the first field (or data file) where the run and the checkpoint differ.

    ``ckpt`` is a training checkpoint (camlkit.checkpoint.read_camlkit_checkpoint refuses the rest)."""
    stored, asked = ckpt["config"].get("train", {}), to_dict(cfg)
    for key in [k for k in asked if k not in MAY_CHANGE] + [k for k in stored if k not in asked]:
        theirs, mine = stored.get(key, "<not stored>"), asked.get(key, "<unknown here>")
        if key == "iterations":
            if mine < ckpt["iteration"]:
                raise CamlkitError(f"{path}: cannot resume, the checkpoint is at iteration "
                                   f"{ckpt['iteration']} but this run asks for iterations={mine}")
        elif theirs != mine:
            raise CamlkitError(f"{path}: cannot resume, the checkpoint has {key}={theirs!r} "
                               f"but this run asks for {key}={mine!r}")
    for name, digest in (ckpt.get("data") or {}).items():
        if fingerprint.get(name) != digest:
            raise CamlkitError(f"{path}: cannot resume, the checkpoint was trained on data whose "
                               f"{name} has digest {digest} but --data {cfg.data} has "
                               f"{fingerprint.get(name)}")


def restore(path, cfg, net, optimizer, bank, device, fingerprint):
    """Load a resume checkpoint into net/optimizer/bank; returns the next iteration."""
    ckpt = read_camlkit_checkpoint(path)
    check_resumable(ckpt, cfg, fingerprint, path)
    net.load_state_dict(net_from_checkpoint(ckpt, path).state_dict())
    optimizer.load_state_dict(ckpt["optimizer"])
    if bank is not None and ckpt["bank"] is not None:
        bank.load_state_dict(ckpt["bank"], device)
    torch.set_rng_state(ckpt["rng"]["torch"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    return ckpt["iteration"]


@contextmanager
def disk_full_said(path, last_good):
    """Turn a full disk, the file-size limit (``ulimit -f``) or a failed allocation while writing
    ``path`` into one line naming the checkpoint still good."""
    try:
        yield
    except (OSError, DiskFullError, MemoryError, RuntimeError) as err:
        if isinstance(err, DiskFullError) or is_disk_full(err):
            reached = "no space left"
        else:
            reached = limit_reached(err)
            if reached is None:
                raise
        kept = last_good if Path(last_good).exists() else "none (no checkpoint was written)"
        raise CamlkitError(f"{reached} writing {path}; the last good checkpoint is {kept}") from None
