"""Checks before the work: every argument and input a run needs, tested before the first iteration.

A paper run is a day of GPU time, so a value that would fail at the end (an empty test list, a
checkpoint interval of 0) or give a meaningless result (0 iterations: an untrained net evaluated)
is refused at the start, in one line that names the value and what was expected.

The test set and output folder are checked here for both training and ``camlkit evaluate``
(:func:`check_test_set`, :func:`check_cases`, :func:`check_output_dir`); the run folder's
ownership is camlkit.runtime.runfolder's.
"""

import os
from pathlib import Path

from camlkit.config import check_bounds
from camlkit.data import case_path, load_split, read_case, read_list
from camlkit.errors import CamlkitError


def check_config(cfg):
    """The config's own values: each numeric field within its bounds (camlkit.config.BOUNDS,
    the one table), then what relates fields: the batch, the patch, the evaluated split."""
    check_bounds(cfg)
    if cfg.labeled_bs > cfg.batch_size:
        raise CamlkitError(f"--labeled-bs {cfg.labeled_bs}: expected at most --batch-size {cfg.batch_size}")
    if len(cfg.patch_size) != 3 or any(p < 16 or p % 16 for p in cfg.patch_size):
        raise CamlkitError(f"patch_size={tuple(cfg.patch_size)}: expected three sides, each a "
                           f"positive multiple of 16 (the V-Net halves it four times)")
    if len(cfg.eval_stride) != 3:
        raise CamlkitError(f"--eval-stride {tuple(cfg.eval_stride)}: expected three sides")
    if cfg.eval_split not in ("test", "val"):
        raise CamlkitError(f"eval_split={cfg.eval_split!r}: expected 'test' or 'val'")
    if cfg.eval_split == "val" and cfg.val_cases < 1:
        raise CamlkitError("eval_split='val' needs validation cases: set val_cases >= 1")


def check_data(cfg, evaluate=True):
    """The data folder: both lists readable, their cases present, ``labeled`` within its bounds."""
    split = load_split(cfg.data, 0)  # one line for a missing folder, list or case file
    train = split.unlabeled  # every case of train.list, with 0 labeled
    low, high = cfg.labeled_bs, len(train) - cfg.unlabeled_bs
    if not low <= cfg.labeled <= high:
        need = f" and {cfg.unlabeled_bs} unlabeled" if cfg.unlabeled_bs else ""
        raise CamlkitError(f"labeled={cfg.labeled}: expected {low}..{high} ({cfg.method} needs "
                           f"{cfg.labeled_bs} labeled{need} cases per batch; "
                           f"{Path(cfg.data) / 'train.list'} has {len(train)} cases)")
    spare = len(train) - cfg.labeled - cfg.unlabeled_bs  # what validation may take
    if cfg.val_cases > spare:
        need = f" and {cfg.method} needs {cfg.unlabeled_bs} unlabeled per batch" if cfg.unlabeled_bs else ""
        raise CamlkitError(f"--val-cases {cfg.val_cases}: expected 0..{spare} "
                           f"({Path(cfg.data) / 'train.list'} has {len(train)} cases, the first "
                           f"{cfg.labeled} labeled (--labeled){need})")
    if evaluate and cfg.eval_split == "val":
        check_cases(load_split(cfg.data, cfg.labeled, cfg.val_cases).val[: cfg.eval_cases])
        return
    if evaluate and not split.test:
        raise CamlkitError(f"{Path(cfg.data) / 'test.list'}: no test cases to evaluate the run on "
                           f"(pass --no-eval to train without evaluating)")
    if evaluate:  # every case the final evaluation reads, read and validated now (NaN, damage)
        check_test_set(cfg.data, cfg.eval_cases)


def check_outputs(folder):
    """The run folder can be created or written (not a file, its parent writable)."""
    check_output_dir(folder, flag="--out")


def check_test_set(data_dir, n_cases=None, flag="--eval-cases"):
    """The test cases of ``<data_dir>/test.list`` (the first ``n_cases``), each read and validated.

    Raises a one-line CamlkitError for a missing or empty list, ``n_cases`` < 1 (named as
    ``flag``), and a case that is missing, unreadable or invalid (NaN, constant image, bad label),
    so that nothing is trained or computed only to fail at the evaluation. Returns the paths.
    """
    data_dir = Path(data_dir)
    if n_cases is not None and n_cases < 1:
        raise CamlkitError(f"{flag} {n_cases}: expected at least 1 test case")
    listing = data_dir / "test.list"
    cases = read_list(listing)
    if not cases:
        raise CamlkitError(f"{listing}: no test cases listed, nothing to evaluate")
    paths = [case_path(data_dir, case) for case in cases[:n_cases]]
    for case, path in zip(cases, paths):
        if not path.is_file():
            raise CamlkitError(f"case {case} named in {listing} is missing: {path} not found")
    return check_cases(paths)


def check_cases(paths):
    """Read and validate each case file (one line naming a damaged or invalid file); the paths."""
    for path in paths:
        read_case(path)
    return paths


def check_output_dir(path, flag="--out"):
    """A folder results can be written to: an existing writable folder, or one that can be created
    (its nearest existing parent is a writable folder). Nothing is created here. Returns the Path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise CamlkitError(f"{flag} {path}: is an existing file, expected a folder")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CamlkitError(f"{flag} {path}: {existing} is a file, the folder cannot be created")
    if not os.access(existing, os.W_OK | os.X_OK):
        if existing == path:
            raise CamlkitError(f"{flag} {path}: the folder is not writable")
        raise CamlkitError(f"{flag} {path}: cannot create it, {existing} (the nearest existing "
                           f"folder above it) is not writable")
    return path


def check_output_files(folder, names, flag="--out"):
    """Each ``folder/name`` to be written is not a folder (an existing file is replaced)."""
    for name in names:
        if (Path(folder) / name).is_dir():
            raise CamlkitError(f"{flag} {folder}: {name} there is a folder, cannot write the file")


RUN_MARKS = ("config.json", "model_final.pth", "checkpoints/last.pth")  # what makes a folder a run's


def check_own_results(folder, checkpoint, flag="--out"):
    """A run's results (cases.csv, summary.md, summary.json) are written only by that run's own
    checkpoint: a ``folder`` holding a run (its config.json, model_final.pth or
    checkpoints/last.pth) takes results only of a checkpoint inside it; one line otherwise."""
    folder = Path(folder)
    marks = [name for name in RUN_MARKS if (folder / name).exists()]
    if not marks:
        return
    inside = Path(checkpoint).resolve().parent in (folder.resolve(), (folder / "checkpoints").resolve())
    if not inside:
        raise CamlkitError(f"{flag} {folder} holds another run ({', '.join(marks)}): its results are "
                           f"written only from its own checkpoint ({folder / 'model_final.pth'}), not "
                           f"from {checkpoint}; choose another {flag}")
