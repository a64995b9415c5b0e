"""Resume: what a training checkpoint holds, and the checks that a run may continue from it.

``checkpoints/last.pth`` holds the model, the optimizer, OCC's memory bank, the torch RNG state,
the whole config tree (camlkit.config.to_dict) and a fingerprint of the data split. A run resumes
only if it asks for the same thing: every config field must match except those in
:data:`MAY_CHANGE` (where the run is written, how it is logged, which device runs it), and
``iterations`` may grow but not fall below the checkpoint's iteration.

**The data** is compared by content, not by folder name, so moving the data folder is fine and
changing a case is not: :func:`data_fingerprint` is the SHA-256 of both list files and of every
case file they name (labeled, unlabeled and test), and a mismatch names the file. On the 100
cases of LA (223 MiB) it takes about 0.2 s with the files in the page cache and 0.5-0.7 s after
evicting them (2-core CPU), so it is computed afresh at every start, with no cache to go stale.
Checkpoints of older camlkit versions hold file sizes only (``"case sizes"``): they are still
checked that way, with a note, and the next checkpoint records the content.

**Fields added later.** A checkpoint written before a config field existed does not store it.
:data:`ADDED_LATER` names each such field with the behaviour camlkit had before it (read from the
history of camlkit.step and camlkit.data); the missing field is taken as that value, said in one
line, and compared as any other: a run that asks for it resumes, one that asks for another value
is told which flag continues the checkpoint. A missing field not in the list refuses.
"""

import dataclasses
import hashlib
import sys
from contextlib import contextmanager
from pathlib import Path

import torch

from camlkit.config import flag_name, to_dict
from camlkit.data import case_path, load_split, read_list
from camlkit.data.cases import case_ids
from camlkit.errors import CamlkitError
from camlkit.files import DiskFullError, is_disk_full
from camlkit.limits import limit_reached
from camlkit.runtime.checkpoint import FORMAT, VERSION, net_from_checkpoint, read_camlkit_checkpoint

# fields a resumed run may change (``data`` is compared by its fingerprint instead)
MAY_CHANGE = ("out", "data", "device", "num_workers", "checkpoint_every", "log_every", "progress",
              "step.occ_health",  # what is logged, not what is computed
              "share_threads")  # how many CPU threads compute (the last bits of the arithmetic: threads)


# fields added after checkpoints began to store the config tree, with what camlkit did before
# each existed: the step options came (as the release's quirks) where the step had been the
# clean form; the crop rule and the unlabeled restart where crops were uniform and the unlabeled
# stream ran on across epochs
ADDED_LATER = {
    "step.bank_fa_rows": "per_voxel",
    "step.heads_on": "picked",
    "step.ramp_offset": 0,
    "crop_rule": "uniform",
    "restart_unlabeled": False,
    "step.occ_log": "eps",  # l_o was always log(softmax + 1e-8) before the option
    "val_cases": 0,  # no validation cases before them
    "eval_split": "test",  # the final evaluation scored test.list
    "fast": False,  # every step was the release's arithmetic before --fast
}
LEGACY_SIZES = "case sizes"  # the key of the size-only fingerprint of older checkpoints


def data_fingerprint(data_dir) -> dict:
    """{path in the data folder: SHA-256} of train.list, test.list and every case they name."""
    data_dir = Path(data_dir)
    found = {}
    for name in ("train.list", "test.list"):
        found[name] = file_sha256(data_dir / name)
        for case in read_list(data_dir / name):
            path = case_path(data_dir, case)
            found[path.relative_to(data_dir).as_posix()] = file_sha256(path)
    return found


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _legacy_sizes(data_dir) -> str:
    """The size-only digest older checkpoints stored under "case sizes"."""
    sizes = [f"{case} {case_path(data_dir, case).stat().st_size}"
             for name in ("train.list", "test.list") for case in read_list(Path(data_dir) / name)]
    return hashlib.sha256("\n".join(sizes).encode()).hexdigest()[:16]


def run_split(cfg) -> dict:
    """The run's own cases by id, stored in its checkpoints: ``{"val": [...]}``, the validation
    cases it held out (never trained on; ``camlkit evaluate --split val`` scores exactly these,
    whatever train.list says later)."""
    return {"val": case_ids(load_split(cfg.data, cfg.labeled, cfg.val_cases).val)}


def checkpoint_payload(cfg, net, optimizer, bank, iteration, fingerprint):
    """Everything an exact resume needs (see the module docstring)."""
    return {
        "format": FORMAT, "version": VERSION, "iteration": iteration,
        "config": {"model": dataclasses.asdict(net.config), "train": to_dict(cfg),
                   "split": run_split(cfg)},
        "data": fingerprint,
        "model": net.state_dict(), "optimizer": optimizer.state_dict(),
        "bank": bank.state_dict() if bank is not None else None,
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }


def check_resumable(ckpt, cfg, fingerprint, path) -> list:
    """One line naming the first field (or data file) where the run and the checkpoint differ;
    returns the notes to print (fields taken as an older version's behaviour, a size-only check).

    ``ckpt`` is a training checkpoint (camlkit.runtime.checkpoint.read_camlkit_checkpoint refuses the rest)."""
    stored, asked = ckpt["config"].get("train", {}), to_dict(cfg)
    notes = []
    for key in [k for k in asked if k not in MAY_CHANGE] + [k for k in stored if k not in asked]:
        theirs, mine = stored.get(key), asked.get(key)
        if key not in stored and key in ADDED_LATER:
            theirs = ADDED_LATER[key]
            if theirs != mine:
                raise CamlkitError(f"{path}: cannot resume, the checkpoint has no {key} (written "
                                   f"before it existed, when camlkit did {theirs!r}) but this run "
                                   f"asks for {key}={mine!r}; to continue it: {_flag(key, theirs)}")
            notes.append(f"{path}: checkpoint has no {key} (written before it existed): taking "
                         f"{theirs!r}, the behaviour of that version")
        elif key not in stored:
            raise CamlkitError(f"{path}: cannot resume, the checkpoint has no {key} (written by a "
                               f"camlkit before it existed, whose behaviour there is not known to "
                               f"match any value); start a new run")
        elif key not in asked:
            raise CamlkitError(f"{path}: cannot resume, the checkpoint has {key}={theirs!r}, a "
                               f"field this camlkit does not have (another version wrote it); "
                               f"start a new run")
        elif key == "iterations":
            if mine < ckpt["iteration"]:
                raise CamlkitError(f"{path}: cannot resume, the checkpoint is at iteration "
                                   f"{ckpt['iteration']} but this run asks for iterations={mine}")
        elif theirs != mine:
            raise CamlkitError(f"{path}: cannot resume, the checkpoint has {key}={theirs!r} "
                               f"but this run asks for {key}={mine!r}")
    return notes + check_same_data(ckpt.get("data") or {}, fingerprint, cfg.data, path)


def check_same_data(stored, fingerprint, data_dir, path) -> list:
    """The data the checkpoint was trained on is the data of ``data_dir``, file by file."""
    data_dir = Path(data_dir)
    if LEGACY_SIZES in stored:  # an older checkpoint: the lists by content, the cases by size
        now = {"train.list": fingerprint["train.list"][:16], "test.list": fingerprint["test.list"][:16],
               LEGACY_SIZES: _legacy_sizes(data_dir)}
        for name, digest in stored.items():
            if now.get(name) != digest:
                what = "case file sizes" if name == LEGACY_SIZES else data_dir / name
                raise CamlkitError(f"{path}: cannot resume, the {what} of --data {data_dir} differ "
                                   f"from those the checkpoint was trained on")
        return [f"{path}: written by an older camlkit that recorded the case files' sizes only: "
                f"--data {data_dir} was checked by size, not content; the next checkpoint records "
                f"their SHA-256"]
    for name in list(stored) + [n for n in fingerprint if n not in stored]:
        then, now = stored.get(name), fingerprint.get(name)
        if then != now:
            change = ("is no longer part of the split" if now is None else
                      "was not part of the split the checkpoint was trained on" if then is None else
                      f"changed since the checkpoint was written (SHA-256 {then[:12]}... then, "
                      f"{now[:12]}... now)")
            raise CamlkitError(f"{path}: cannot resume, {data_dir / name} {change}; restore the "
                               f"data it was trained on, or start a new run")
    return []


def _flag(key, value):
    """The ``camlkit train`` words that set ``key`` to ``value``."""
    if isinstance(value, bool):
        name = flag_name(key)
        return name if value else "--no-" + name[2:]
    return f"{flag_name(key)} {value}"


def restore(path, cfg, net, optimizer, bank, device, fingerprint):
    """Load a resume checkpoint into net/optimizer/bank; returns the next iteration."""
    ckpt = read_camlkit_checkpoint(path)
    for note in check_resumable(ckpt, cfg, fingerprint, path):
        print(f"camlkit: note: {note}", file=sys.stderr)
    net.load_state_dict(net_from_checkpoint(ckpt, path).state_dict())
    optimizer.load_state_dict(ckpt["optimizer"])
    if bank is not None and ckpt["bank"] is not None:
        bank.load_state_dict(ckpt["bank"], device)
    torch.set_rng_state(ckpt["rng"]["torch"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    return ckpt["iteration"]


@contextmanager
def checkpoint_write_limits_as_one_line(path, last_good):
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
