"""A trained network and how it was trained: load it, and build inputs exactly as its run did.

:func:`load_trained` gives the CAMLNet of a camlkit checkpoint or of the authors' released
weights with its :class:`TrainedSettings`; :func:`matched_crops` is the one place a notebook
builds network inputs (cases read, z-scored per case and resampled as the run did, cut to its
patch size); :func:`random_twin` is the "random weights" baseline. Finding the checkpoint:
camlkit.runtime.runs.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from camlkit.runtime.runs import _config, stored_config
from camlkit.step import StepConfig


@dataclass(frozen=True)
class TrainedSettings:
    """How a checkpoint's network was trained: its inputs, and its Eq. 1 step (``step``).

    ``step`` is the run's whole stored camlkit.step.StepConfig, so an analysis computes OCC as
    training did (camlkit.evaluation.structure.network_occ): j, top_i, similarity, occ_temperature,
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
        one, from what camlkit.evaluation.inference.stored_settings reads (what ``camlkit predict`` reads)
        and the stored model config; missing entries keep the released defaults."""
        from camlkit.evaluation.inference import stored_settings

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
        """Keyword arguments of camlkit.evaluation.inference.predict_volume for this checkpoint."""
        return {"patch_size": self.patch_size, "stride": self.stride, "scale": self.scale,
                "zscore_case": self.zscore_case}

    def describe(self) -> str:
        z = "z-scored per case" if self.zscore_case else "as stored"
        return (f"scale {self.scale:g}, intensities {z}, patch "
                f"{'x'.join(map(str, self.patch_size))}, {self.n_filters} filters")


def load_trained(path):
    """(CAMLNet with the checkpoint's weights, in eval mode; its :class:`TrainedSettings`).

    Reads camlkit checkpoints and the authors' released weights (camlkit.runtime.checkpoint)."""
    from camlkit.runtime.checkpoint import net_from_checkpoint, read_camlkit_checkpoint
    from camlkit.runtime.released import load_released_checkpoint

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
