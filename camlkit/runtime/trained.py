"""A trained network and how it was trained: load it, and build inputs exactly as its run did.

:class:`InputSettings` is the one record of how a network's inputs were prepared (resolution
``scale``, per-case z-scoring, patch size, sliding-window stride): training writes it into the
checkpoint (camlkit.runtime.checkpoint.save_inference_model), :meth:`InputSettings.from_config`
is the one reader of it (older checkpoints and the authors' released files included), and
prediction, evaluation and the notebooks receive it as one object.

:func:`load_trained` gives the CAMLNet of a camlkit checkpoint or of the authors' released
weights with its :class:`TrainedSettings`; :func:`matched_crops` is the one place a notebook
builds network inputs (cases read, z-scored per case and resampled as the run did, cut to its
patch size); :func:`random_twin` is the "random weights" baseline. Finding the checkpoint:
camlkit.lab.runs.
"""

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from camlkit.caml import CAMLNet
from camlkit.config import from_dict
from camlkit.data import LADataset, RandomCrop
from camlkit.errors import CamlkitError
from camlkit.runtime.checkpoint import (
    FORMAT,
    checkpoint_config,
    net_from_checkpoint,
    read_camlkit_checkpoint,
    read_dict,
)
from camlkit.runtime.released import load_released_checkpoint
from camlkit.step import StepConfig

PATCH_SIZE = (112, 112, 80)  # the released training crop and sliding-window patch
STRIDE = (18, 18, 4)  # the released sliding-window stride (code/test_3d.py of the release)

# Where a checkpoint's config dict keeps each setting, by key path; the first one present (and
# not None) wins. "inputs": this camlkit (save_inference_model); top-level keys: the camlkit
# before it (with "patch" in the oldest files); "train": the run's config tree by field path
# (camlkit.config.to_dict), which every camlkit run stored. The authors' files store nothing.
STORED_AT = {
    "patch_size": (("inputs", "patch_size"), ("patch_size",), ("patch",), ("train", "patch_size")),
    "stride": (("inputs", "stride"), ("stride",), ("train", "eval_stride")),
    "scale": (("inputs", "scale"), ("scale",), ("train", "scale")),
    "zscore_case": (("inputs", "zscore_case"), ("zscore_case",), ("train", "zscore_case")),
    "method": (("method",), ("train", "method")),
    "labeled": (("labeled",), ("train", "labeled")),
    "val_cases": (("val_cases",), ("train", "val_cases")),
    "val_case_ids": (("split", "val"),),  # the validation cases by id (runs of camlkit 0.2 on)
}


def stored_config(path, config=None):
    """The camlkit.config.TrainConfig a checkpoint's run was trained with, or None when the
    checkpoint stores none (the authors' released weights, a bare camlkit inference file).

    camlkit.train stores the whole config tree by path (camlkit.config.to_dict) under
    ``config["train"]``; camlkit.config.from_dict reads it back. A checkpoint whose stored
    config this camlkit cannot read (written by an older version) is one line naming the file.
    ``config``: the checkpoint's stored config when the caller has read it already.
    """
    stored = (checkpoint_config(path) if config is None else config).get("train")
    if not stored:
        return None
    try:
        return from_dict(stored)
    except (CamlkitError, TypeError) as err:
        raise CamlkitError(f"{path}: its stored training config does not fit this camlkit "
                           f"({err}); it was written by another version: train it again") from None


def stored_setting(config: dict, name: str, default=None):
    """The value of setting ``name`` (a key of :data:`STORED_AT`) in a checkpoint's stored
    config (camlkit.runtime.checkpoint.checkpoint_config), or ``default`` when it stores none."""
    for keys in STORED_AT[name]:
        value = config
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            return value
    return default


@dataclass(frozen=True)
class InputSettings:
    """How a network's inputs were prepared: the one record training writes and prediction reads.

    ``scale``: volumes resampled by this factor (1 = as stored); ``zscore_case``: each image
    z-scored again (camlkit.data.LADataset); ``patch_size``: the training crop, which is also the
    sliding window; ``stride``: the sliding window's step (camlkit.evaluation.inference). The
    defaults are the released ones. Frozen: a command-line flag makes a changed copy
    (``dataclasses.replace(inputs, scale=0.5)``).
    """
    scale: float = 1.0
    zscore_case: bool = False
    patch_size: tuple = PATCH_SIZE
    stride: tuple = STRIDE

    def __post_init__(self):
        # a checkpoint stores lists and a flag may come as 0/1: one type for each field
        try:
            values = {"scale": float(self.scale), "zscore_case": bool(self.zscore_case),
                      "patch_size": tuple(int(v) for v in self.patch_size),
                      "stride": tuple(int(v) for v in self.stride)}
        except (TypeError, ValueError):
            raise CamlkitError(f"input settings {self}: expected a number scale, a flag zscore_case "
                               f"and three integers each for patch_size and stride") from None
        for name in ("patch_size", "stride"):
            if len(values[name]) != 3:
                raise CamlkitError(f"input settings: {name} {values[name]}, expected three sides (h, w, d)")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, cfg) -> "InputSettings":
        """The inputs of a run of camlkit.config.TrainConfig ``cfg``."""
        return cls(scale=cfg.scale, zscore_case=cfg.zscore_case, patch_size=cfg.patch_size,
                   stride=cfg.eval_stride)

    @classmethod
    def from_config(cls, config: dict) -> "InputSettings":
        """From a checkpoint's stored config (camlkit.runtime.checkpoint.checkpoint_config), in
        any layout camlkit wrote (:data:`STORED_AT`); a setting not stored keeps its released
        default, so ``{}`` (the authors' files) gives the released inputs."""
        base = cls()
        return cls(**{name: stored_setting(config, name, getattr(base, name))
                      for name in ("scale", "zscore_case", "patch_size", "stride")})

    def to_dict(self) -> dict:
        """The fields, JSON-ready (lists for tuples): what a checkpoint stores as ``"inputs"``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def describe(self) -> str:
        z = "z-scored per case" if self.zscore_case else "as stored"
        return (f"scale {self.scale:g}, intensities {z}, patch {'x'.join(map(str, self.patch_size))}, "
                f"stride {'x'.join(map(str, self.stride))}")


@dataclass(frozen=True)
class TrainedSettings:
    """How a checkpoint's network was trained: its inputs, its width, its run and its Eq. 1 step.

    ``inputs`` is the checkpoint's :class:`InputSettings`. ``step`` is the run's whole stored
    camlkit.step.StepConfig, so an analysis computes OCC as training did
    (camlkit.diagnostics.structure.network_occ): j, top_i, similarity, occ_temperature, occ_log,
    bank_fa_rows, heads_on. A checkpoint without a run config (the authors' released weights)
    gets the released step, ``StepConfig()``.
    """
    inputs: InputSettings = field(default_factory=InputSettings)
    n_filters: int = 16
    proj_dim: int = 32
    method: str | None = None
    labeled: int | None = None
    val_cases: int = 0  # the last K cases of train.list the run held out (camlkit.data.load_split)
    preset: str | None = None
    iterations: int | None = None
    step: StepConfig = field(default_factory=StepConfig)  # released defaults when not stored
    model: dict = field(default_factory=dict)  # the stored CAMLConfig fields

    @classmethod
    def from_checkpoint(cls, path) -> "TrainedSettings":
        """From the checkpoint's stored config: the inputs by :meth:`InputSettings.from_config`,
        method, labeled and val_cases by :func:`stored_setting`, the width from the stored model
        config, and preset, iterations and step from the run's config tree (:func:`stored_config`)
        when it has one; missing entries keep the released defaults."""
        config = checkpoint_config(path)  # read once: the file is loaded and its digest checked
        model, base = dict(config.get("model", {})), cls()
        settings = cls(inputs=InputSettings.from_config(config),
                       n_filters=int(model.get("n_filters", base.n_filters)),
                       proj_dim=int(model.get("proj_dim", base.proj_dim)),
                       method=stored_setting(config, "method"), labeled=stored_setting(config, "labeled"),
                       val_cases=int(stored_setting(config, "val_cases", 0)), model=model)
        run = stored_config(path, config)  # None for a file without the run's config tree
        if run is None:
            return settings
        return dataclasses.replace(settings, preset=run.preset, iterations=run.iterations, step=run.step)

    def describe(self) -> str:
        return f"{self.inputs.describe()}, {self.n_filters} filters"


def load_trained(path):
    """(CAMLNet with the checkpoint's weights, in eval mode; its :class:`TrainedSettings`).

    Reads camlkit checkpoints and the authors' released weights (camlkit.runtime.checkpoint)."""
    settings = TrainedSettings.from_checkpoint(path)
    if settings.model:  # a camlkit checkpoint stores its model config; the authors' files nothing
        net = net_from_checkpoint(read_camlkit_checkpoint(path, kind=None), path)
    else:  # the authors' layout: the width is read from the file
        net = load_released_checkpoint(path)
        settings = dataclasses.replace(settings, n_filters=net.config.n_filters,
                                       proj_dim=net.config.proj_dim)
    return net.eval(), settings


def load_inference_model(path, map_location="cpu"):
    """f_v in eval mode, from a camlkit checkpoint (either kind) or an authors' released state_dict."""
    state = read_dict(path, "checkpoint")
    if state.get("format") == FORMAT:
        net = net_from_checkpoint(read_camlkit_checkpoint(path, kind=None), path)  # read again, checked
    else:
        net = load_released_checkpoint(state, name=path)
    return net.f_v.to(map_location).eval()


def random_twin(net, seed=0):
    """A freshly initialised CAMLNet of the same architecture (the "random weights" baseline)."""
    torch.manual_seed(seed)
    return CAMLNet(net.config).eval()


def matched_dataset(paths, settings: TrainedSettings, transform=None):
    """camlkit.data.LADataset reading ``paths`` as the checkpoint's training did (scale,
    per-case z-score); ``transform`` defaults to a random crop of the trained patch size."""
    inputs = settings.inputs
    transform = transform if transform is not None else RandomCrop(inputs.patch_size)
    return LADataset(paths, transform=transform, scale=inputs.scale, zscore_case=inputs.zscore_case)


def matched_crops(paths, settings: TrainedSettings, seed=0, foreground=True) -> dict:
    """One crop per case, prepared exactly as the checkpoint was trained — THE input helper.

    Each case is read, z-scored per case if the run did, resampled by the run's ``scale``
    (camlkit.data.LADataset) and cut to the run's patch size by a seeded random crop; with
    ``foreground`` the crop is re-drawn (up to 20 times) until it holds atrium, so the pictures
    have something to show. Returns ``{"image": (b, 1, h, w, d) float, "label": (b, h, w, d)
    long, "cases": [names]}``.
    """
    dataset = matched_dataset(paths, settings, transform=None)
    crop = RandomCrop(settings.inputs.patch_size)
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
