"""Run folders, the trained checkpoint a notebook should use, and the short run it can train.

A run folder (camlkit.train) holds ``config.json`` and, once training finished,
``model_final.pth``. The notebooks that look inside a trained network (4 · CMA, 5 · OCC,
7 · results) do three things through this module:

1. :func:`find_network` / :func:`find_checkpoint` — ``CHECKPOINT`` if the notebook sets one (or
   ``$CAMLKIT_CHECKPOINT``), else the authors' network if cached, else the newest finished run
   under ``runs/``, preferring method ``caml``; optionally only runs whose stored config matches
   (``where={"step.similarity": "cosine"}``). :func:`describe` names it.
2. camlkit.runtime.trained.load_trained — the CAMLNet and how it was trained.
3. camlkit.runtime.trained.matched_crops — inputs prepared exactly as the run did.

A run's settings are its stored config tree (camlkit.runtime.checkpoint.checkpoint_config, read back by
camlkit.config.from_dict) and its inputs (camlkit.runtime.trained.InputSettings.from_config, what
``camlkit predict`` and ``camlkit evaluate`` read too); the authors' released weights store nothing
and get the released settings (scale 1, no per-case z-score, 112x112x80 patches, 16 filters, the
released Eq. 1 step ``StepConfig()``).
"""

import os
import time
from pathlib import Path

from camlkit.config import default_run_dir, get_field, make_config, with_fields
from camlkit.errors import CamlkitError
from camlkit.runtime.places import RUNS_ENV, runs_root  # noqa: F401 (runs.runs_root, runs.RUNS_ENV)
from camlkit.runtime.threads import spare_a_cpu
from camlkit.runtime.trained import TrainedSettings, stored_config  # noqa: F401 (runs.stored_config)
from camlkit.runtime.weights import blob_id, cached, entry, released_for, verified
from camlkit.train import train

CHECKPOINT_ENV = "CAMLKIT_CHECKPOINT"
FINAL = "model_final.pth"


# ----------------------------------------------------------------------------- run folders

def list_runs(root=None) -> list[Path]:
    """Finished run folders (those holding ``model_final.pth``) under ``root``, newest first.

    A run folder may sit one level deeper (e.g. ``runs/study/dot-seed1``)."""
    root = runs_root(root)
    if not root.is_dir():
        return []
    finals = list(root.glob(f"*/{FINAL}")) + list(root.glob(f"*/*/{FINAL}"))
    finals.sort(key=lambda p: (p.stat().st_mtime, str(p)), reverse=True)
    return [p.parent for p in finals]


def _matches(path, where: dict, method=None) -> bool:
    """True if the run of ``path`` has every ``where`` field (by path, e.g. "step.similarity")
    and, if given, ``method``. A checkpoint without a readable run config matches nothing."""
    try:
        cfg = stored_config(path)
    except CamlkitError:
        return False
    if cfg is None:
        return False
    return (method is None or cfg.method == method) and all(
        get_field(cfg, key) == value for key, value in where.items())


def find_checkpoint(checkpoint=None, root=None, method="caml", where=None,
                    env=True) -> Path | None:
    """The checkpoint a notebook should use, or None when there is no finished run.

    ``checkpoint`` (a notebook's ``CHECKPOINT``) or, with ``env``, ``$CAMLKIT_CHECKPOINT`` wins
    and must exist (``env=False`` when looking for other runs, e.g. by their stored similarity).
    Otherwise the newest ``model_final.pth`` under :func:`runs_root` whose stored config has
    every ``where`` field, named by its config path (e.g. ``{"step.similarity": "cosine"}``,
    ``{"model.use_cma": True}``), preferring runs of ``method`` (None: any method) and falling
    back to the newest matching run of any method.
    """
    chosen = checkpoint if checkpoint is not None or not env else os.environ.get(CHECKPOINT_ENV) or None
    if chosen is not None:
        path = Path(chosen).expanduser()
        if not path.is_file():
            raise CamlkitError(f"{path}: no such checkpoint file (CHECKPOINT)")
        return path
    candidates = [run / FINAL for run in list_runs(root)]
    if where:
        candidates = [p for p in candidates if _matches(p, where)]
    if method is not None:
        preferred = [p for p in candidates if _matches(p, {}, method)]
        candidates = preferred or candidates
    return candidates[0] if candidates else None


NOT_PINNED = "not the authors' pinned file"  # find_network's source: another file under their name


def find_network(checkpoint=None, labeled=16, root=None, method="caml", where=None,
                 env=True) -> tuple[Path | None, str]:
    """The network a notebook looks into, and where it came from: ``(path, source)``.

    In this order: ``checkpoint`` (a notebook's ``CHECKPOINT``) or ``$CAMLKIT_CHECKPOINT``
    (source "CHECKPOINT"); the authors' network trained with ``labeled`` scans when it is in the
    cache (camlkit.runtime.weights.cached; ``camlkit download --weights N`` puts it there; source
    "authors" when it is their pinned file, :data:`NOT_PINNED` when another file lies under its
    name, checked by camlkit.runtime.weights.verified); the newest finished run under
    :func:`runs_root` (:func:`find_checkpoint`, source "run"); else ``(None, "none")``: the
    notebook trains a short run.
    """
    chosen = checkpoint if checkpoint is not None or not env else os.environ.get(CHECKPOINT_ENV) or None
    if chosen is not None:
        return find_checkpoint(chosen), "CHECKPOINT"  # it must exist
    authors = cached(labeled) if labeled is not None else None
    if authors is not None:  # the pinned file, or something else under its name (checked once)
        return authors, "authors" if verified(authors, entry(labeled).blob) else NOT_PINNED
    run = find_checkpoint(None, root=root, method=method, where=where, env=False)
    return (run, "run") if run is not None else (None, "none")


def describe(path) -> str:
    """One line naming a checkpoint and how it was trained, for a notebook to print."""
    settings = TrainedSettings.from_checkpoint(path)
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(Path(path).stat().st_mtime))
    trained = ", ".join(f"{k} {v}" for k, v in (("preset", settings.preset),
                                                 ("method", settings.method),
                                                 ("labeled", settings.labeled),
                                                 ("iterations", settings.iterations))
                        if v is not None)
    if settings.preset is not None:  # a run's stored step: say how its OCC was computed
        trained += f", OCC {settings.step.similarity} / t {settings.step.occ_temperature:g}"
    if not trained:  # a state_dict in the authors' layout: say whether it is their file
        trained = released_text(path)
    return f"{path} ({trained}; written {when})"


def released_text(path) -> str:
    """'the authors' network, N labeled (git blob …, the pinned file)', or that it is not theirs."""
    blob = blob_id(path)
    pinned = released_for(blob)
    if pinned is not None:
        return f"the authors' network, {pinned.labeled} labeled (git blob {blob[:12]}, the pinned file)"
    return f"weights in the authors' layout, git blob {blob[:12]}: not a file camlkit pins"


# ----------------------------------------------------------------------------- a short run

# What a notebook trains when no finished run exists (``size`` = the notebook's run size).
# "full": the quick preset cut to 300 iterations (250 warm-up + 50 of Eq. 1), no evaluation:
#   measured 8.6 minutes on 2026-11-27 with one thread on the project's 2-core machine, shared
#   with other jobs (a laptop CPU with 4+ threads: a few minutes, not measured).
# "smoke": seconds; big enough (4 filters, Adam) that the network predicts both classes, so OCC's
#   memory bank holds prototypes of each.
SHORT_RUNS = {
    "full": ("quick", {"iterations": 300, "step.warmup": 250}),
    "smoke": ("smoke", {"iterations": 30, "step.warmup": 26, "optimizer": "adam", "lr": 1e-3,
                        "model.n_filters": 4, "patch_size": (32, 32, 32), "scale": 0.35}),
}
SHORT = "short"  # short runs live in <runs root>/short/, named as every run is


def short_config(size, data, root=None, seed=3407, **overrides):
    """The camlkit.config.TrainConfig of a short run of ``size`` ("full" or "smoke"), written to
    ``<runs root>/short/<preset>-caml-<labeled>L-seed<seed>`` (camlkit.config.default_run_dir)."""
    if size not in SHORT_RUNS:
        raise CamlkitError(f"unknown short-run size {size!r}: choose from {', '.join(SHORT_RUNS)}")
    preset, fields = SHORT_RUNS[size]
    cfg = make_config(preset, data=str(data), seed=seed, method="caml", **{**fields, **overrides})
    return with_fields(cfg, {"out": str(default_run_dir(cfg, runs_root(root) / SHORT))})


def train_short(size, data, root=None, seed=3407, progress=True, **overrides) -> Path:
    """Train the short run of :func:`short_config` (resuming it if a previous try was cut
    short) and return its ``model_final.pth``. No final evaluation: notebook 7 reads full runs.

    It trains in the calling process (a notebook's kernel, which imported torch first), with one
    CPU left free of torch's threads (camlkit.runtime.threads.spare_a_cpu; a thread count the
    user set is left alone)."""
    cfg = short_config(size, data, root, seed, progress=progress, **overrides)
    final = Path(cfg.out) / FINAL
    if final.is_file():
        return final
    resume = (Path(cfg.out) / "checkpoints" / "last.pth").is_file()
    spare_a_cpu()  # the CPU-sharing policy of a kernel (camlkit.runtime.threads)
    train(cfg, resume=resume, evaluate=False)
    return final



