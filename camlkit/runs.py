"""Run folders, the trained checkpoint a notebook should use, and inputs matched to it.

A run folder (camlkit.train) holds ``config.json`` and, once training finished,
``model_final.pth``. The notebooks that look inside a trained network (4 · CMA, 5 · OCC,
7 · results) do three things through this module:

1. :func:`find_checkpoint` — ``CHECKPOINT`` if the notebook sets one (or ``$CAMLKIT_CHECKPOINT``),
   else the newest finished run under ``runs/``, preferring method ``caml``; optionally only runs
   whose stored config matches (``where={"step.similarity": "cosine"}``). :func:`describe`
   names it.
2. :func:`load_trained` — the CAMLNet and the :class:`TrainedSettings` its checkpoint stores.
3. :func:`matched_crops` — the one place a notebook builds network inputs: cases read, z-scored
   per case and resampled exactly as the checkpoint's training run did (camlkit.data.LADataset
   with the stored ``scale`` and ``zscore_case``), cut to the stored patch size. Whole-volume
   prediction takes :meth:`TrainedSettings.predict_kwargs` (camlkit.inference.predict_volume).

A run's settings are its stored config tree (camlkit.checkpoint.checkpoint_config, read back by
camlkit.config.from_dict). A checkpoint without one is read as ``camlkit predict`` reads it
(camlkit.inference.stored_settings); the authors' released weights store nothing and get the
released settings (scale 1, no per-case z-score, 112x112x80 patches, 16 filters, the released
Eq. 1 step ``StepConfig()``).
"""

import dataclasses
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from camlkit.errors import CamlkitError
from camlkit.step import StepConfig

CHECKPOINT_ENV = "CAMLKIT_CHECKPOINT"
FINAL = "model_final.pth"


# ----------------------------------------------------------------------------- run folders

def runs_root(root=None) -> Path:
    """The folder holding run folders: ``root`` if given, else the first existing ``runs/`` of
    the working folder, its parent (a notebook runs in ``notebooks/``) and the repository;
    ``runs`` beside the repository when none exists yet."""
    if root is not None:
        return Path(root).expanduser()
    repo = Path(__file__).resolve().parents[1]
    candidates = [Path.cwd() / "runs", Path.cwd().parent / "runs", repo / "runs"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return repo / "runs"


def list_runs(root=None) -> list[Path]:
    """Finished run folders (those holding ``model_final.pth``) under ``root``, newest first.

    A run folder may sit one level deeper (e.g. ``runs/study/dot-seed1``)."""
    root = runs_root(root)
    if not root.is_dir():
        return []
    finals = list(root.glob(f"*/{FINAL}")) + list(root.glob(f"*/*/{FINAL}"))
    finals.sort(key=lambda p: (p.stat().st_mtime, str(p)), reverse=True)
    return [p.parent for p in finals]


def stored_config(path):
    """The camlkit.config.TrainConfig a checkpoint's run was trained with, or None when the
    checkpoint stores none (the authors' released weights, a bare camlkit inference file).

    camlkit.train stores the whole config tree by path (camlkit.config.to_dict) under
    ``config["train"]``; camlkit.config.from_dict reads it back. A checkpoint whose stored
    config this camlkit cannot read (written by an older version) is one line naming the file.
    """
    from camlkit.config import from_dict

    stored = _config(path).get("train")
    if not stored:
        return None
    try:
        return from_dict(stored)
    except (CamlkitError, TypeError) as err:
        raise CamlkitError(f"{path}: its stored training config does not fit this camlkit "
                           f"({err}); it was written by another version: train it again") from None


def _config(path) -> dict:
    from camlkit.checkpoint import checkpoint_config

    return checkpoint_config(path)


def _matches(path, where: dict, method=None) -> bool:
    """True if the run of ``path`` has every ``where`` field (by path, e.g. "step.similarity")
    and, if given, ``method``. A checkpoint without a readable run config matches nothing."""
    from camlkit.config import get_field

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


def find_network(checkpoint=None, labeled=16, root=None, method="caml", where=None,
                 env=True) -> tuple[Path | None, str]:
    """The network a notebook looks into, and where it came from: ``(path, source)``.

    In this order: ``checkpoint`` (a notebook's ``CHECKPOINT``) or ``$CAMLKIT_CHECKPOINT``
    (source "CHECKPOINT"); the authors' network trained with ``labeled`` scans when it is in the
    cache (camlkit.weights.cached; ``camlkit download --weights N`` puts it there; source
    "authors"); the newest finished run under :func:`runs_root` (:func:`find_checkpoint`,
    source "run"); else ``(None, "none")``: the notebook trains a short run.
    """
    from camlkit.weights import cached

    chosen = checkpoint if checkpoint is not None or not env else os.environ.get(CHECKPOINT_ENV) or None
    if chosen is not None:
        return find_checkpoint(chosen), "CHECKPOINT"  # it must exist
    authors = cached(labeled) if labeled is not None else None
    if authors is not None:
        return authors, "authors"
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
    from camlkit.weights import blob_id, released_for

    blob = blob_id(path)
    pinned = released_for(blob)
    if pinned is not None:
        return f"the authors' network, {pinned.labeled} labeled (git blob {blob[:12]}, the pinned file)"
    return f"weights in the authors' layout, git blob {blob[:12]}: not a file camlkit pins"


# ----------------------------------------------------------------------------- settings

@dataclass(frozen=True)
class TrainedSettings:
    """How a checkpoint's network was trained: its inputs, and its Eq. 1 step (``step``).

    ``step`` is the run's whole stored camlkit.step.StepConfig, so an analysis computes OCC as
    training did (camlkit.structure.network_occ): j, top_i, similarity, occ_temperature,
    occ_log, bank_fa_rows, heads_on. A checkpoint without a run config (the authors' released
    weights) gets the released step, ``StepConfig()``.
    """
    scale: float = 1.0
    zscore_case: bool = False
    patch_size: tuple = (112, 112, 80)
    stride: tuple = (18, 18, 4)
    n_filters: int = 16
    proj_dim: int = 32
    method: str | None = None
    labeled: int | None = None
    preset: str | None = None
    iterations: int | None = None
    step: StepConfig = field(default_factory=StepConfig)  # released defaults when not stored
    model: dict = field(default_factory=dict)  # the stored CAMLConfig fields

    @classmethod
    def from_checkpoint(cls, path) -> "TrainedSettings":
        """From the run's stored config tree (:func:`stored_config`); for a checkpoint without
        one, from what camlkit.inference.stored_settings reads (what ``camlkit predict`` reads)
        and the stored model config; missing entries keep the released defaults."""
        from camlkit.inference import stored_settings

        model = dict(_config(path).get("model", {}))
        run = stored_config(path)
        if run is not None:
            return cls(scale=run.scale, zscore_case=run.zscore_case,
                       patch_size=tuple(run.patch_size), stride=tuple(run.eval_stride),
                       n_filters=run.model.n_filters, proj_dim=run.model.proj_dim,
                       method=run.method, labeled=run.labeled, preset=run.preset,
                       iterations=run.iterations, step=run.step, model=model)
        stored, base = stored_settings(path), cls()
        return cls(
            scale=float(stored.get("scale", base.scale)),
            zscore_case=bool(stored.get("zscore_case", base.zscore_case)),
            patch_size=tuple(stored.get("patch_size", base.patch_size)),
            stride=tuple(stored.get("stride", base.stride)),
            n_filters=int(model.get("n_filters", base.n_filters)),
            proj_dim=int(model.get("proj_dim", base.proj_dim)),
            method=stored.get("method"), labeled=stored.get("labeled"), model=model)

    def predict_kwargs(self) -> dict:
        """Keyword arguments of camlkit.inference.predict_volume for this checkpoint."""
        return {"patch_size": self.patch_size, "stride": self.stride, "scale": self.scale,
                "zscore_case": self.zscore_case}

    def describe(self) -> str:
        z = "z-scored per case" if self.zscore_case else "as stored"
        return (f"scale {self.scale:g}, intensities {z}, patch "
                f"{'x'.join(map(str, self.patch_size))}, {self.n_filters} filters")


def load_trained(path):
    """(CAMLNet with the checkpoint's weights, in eval mode; its :class:`TrainedSettings`).

    Reads camlkit checkpoints and the authors' released weights (camlkit.checkpoint)."""
    from camlkit.checkpoint import (load_released_checkpoint, net_from_checkpoint,
                                    read_camlkit_checkpoint)

    settings = TrainedSettings.from_checkpoint(path)
    if _config(path):
        net = net_from_checkpoint(read_camlkit_checkpoint(path, kind=None), path)
    else:  # the authors' layout: the width is read from the file
        net = load_released_checkpoint(path)
        settings = dataclasses.replace(settings, n_filters=net.config.n_filters,
                                       proj_dim=net.config.proj_dim)
    return net.eval(), settings


def random_twin(net, seed=0):
    """A freshly initialised CAMLNet of the same architecture (the "random weights" baseline)."""
    from camlkit.caml import CAMLNet

    torch.manual_seed(seed)
    return CAMLNet(net.config).eval()


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
    from camlkit.config import default_run_dir, make_config, with_fields

    if size not in SHORT_RUNS:
        raise CamlkitError(f"unknown short-run size {size!r}: choose from {', '.join(SHORT_RUNS)}")
    preset, fields = SHORT_RUNS[size]
    cfg = make_config(preset, data=str(data), seed=seed, method="caml", **{**fields, **overrides})
    return with_fields(cfg, {"out": str(default_run_dir(cfg, runs_root(root) / SHORT))})


def train_short(size, data, root=None, seed=3407, progress=True, **overrides) -> Path:
    """Train the short run of :func:`short_config` (resuming it if a previous try was cut
    short) and return its ``model_final.pth``. No final evaluation: notebook 7 reads full runs."""
    from camlkit.train import train

    cfg = short_config(size, data, root, seed, progress=progress, **overrides)
    final = Path(cfg.out) / FINAL
    if final.is_file():
        return final
    resume = (Path(cfg.out) / "checkpoints" / "last.pth").is_file()
    train(cfg, resume=resume, evaluate=False)
    return final


# ----------------------------------------------------------------------------- inputs

def matched_dataset(paths, settings: TrainedSettings, transform=None):
    """camlkit.data.LADataset reading ``paths`` as the checkpoint's training did (scale,
    per-case z-score); ``transform`` defaults to a random crop of the trained patch size."""
    from camlkit.data import LADataset, RandomCrop

    transform = transform if transform is not None else RandomCrop(tuple(settings.patch_size))
    return LADataset(paths, transform=transform, scale=settings.scale,
                     zscore_case=settings.zscore_case)


def matched_crops(paths, settings: TrainedSettings, seed=0, foreground=True) -> dict:
    """One crop per case, prepared exactly as the checkpoint was trained — THE input helper.

    Each case is read, z-scored per case if the run did, resampled by the run's ``scale``
    (camlkit.data.LADataset) and cut to the run's patch size by a seeded random crop; with
    ``foreground`` the crop is re-drawn (up to 20 times) until it holds atrium, so the pictures
    have something to show. Returns ``{"image": (b, 1, h, w, d) float, "label": (b, h, w, d)
    long, "cases": [names]}``.
    """
    from camlkit.data import RandomCrop

    dataset = matched_dataset(paths, settings, transform=None)
    crop = RandomCrop(tuple(settings.patch_size))
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for index in range(len(dataset)):
        image, label = dataset.load(index)
        for _ in range(20):
            patch, patch_label = crop(image, label, rng=rng)
            if not foreground or patch_label.any():
                break
        images.append(torch.from_numpy(np.ascontiguousarray(patch, dtype=np.float32)))
        labels.append(torch.from_numpy(np.ascontiguousarray(patch_label)).long())
    return {"image": torch.stack(images)[:, None], "label": torch.stack(labels),
            "cases": [p.parent.name for p in dataset.paths]}
