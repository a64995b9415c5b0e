"""A training run as one config tree: :class:`TrainConfig` holds the network's and the step's.

``TrainConfig`` has the run's own fields (data, optimisation, evaluation, machinery) and two
nested configs that belong to the modules they configure, as in minGPT:

* ``model`` — :class:`camlkit.caml.CAMLConfig` (the two V-Nets, CMA, the OCC heads, §2.1-2.2);
* ``step`` — :class:`camlkit.step.StepConfig` (Eq. 1: L_s, l_c, l_o and their ramps, §2.3).

No field is copied between them. A field is named by its path, ``"lr"`` or ``"step.beta_o"``:
that is the key of :func:`make_config`'s overrides, of ``config.json`` and of the command line
(``--lr 0.05``, ``--step.beta_o 0.1``).

**What ``method`` decides.** The method picks the switches of the paper's ablation (Table 2):
``model.use_cma``, ``step.use_cps``, ``step.use_occ``, ``step.supervised_only``; and when
``step.ramp_length`` is None the ramp R comes from the labeled count (40 / 20 / 15 epochs for
4 / 8 / 16 labeled: the released runs of ``github.com/Herschel555/CAML``, whose folders under
``model/`` are named ``LA_CAML_<labeled>_..._rampup_<R>_..._seed_3407``).
:meth:`TrainConfig.resolved` is the one place that sets them; :func:`make_config` returns a
resolved config and :func:`camlkit.train.train` resolves again, so a run cannot contradict
its method. Those four switches are not overrides: choose another ``method`` instead.

Four presets (:data:`PRESETS`) are instances:

* ``paper`` — the released configuration: batch 4 (2 labeled + 2 unlabeled), patch 112x112x80,
  SGD lr 0.01 (constant), momentum 0.9, weight decay 1e-4, 15,000 iterations, ramp by labeled
  count, lambda_o's beta 0.05, j = 256, i = 12,800; a GPU job (about a day on the authors' GPU).
* ``quick`` — a CPU design that trains full CAML with 16 labeled cases in about 14 minutes on 2
  cores, evaluation included (12 min 47 s measured on 2026-11-26 on the project's 2-core x86_64
  CPU, before the release's OCC heads added about 10 % per Eq. 1 step): each stored case
  z-scored again (``zscore_case``), volumes resampled to 0.4 of their size, 8 base filters,
  patch 48x48x32, lr 0.05 with a cosine decay, 2,300 iterations of which the first 1,700 are a
  labeled-only warm-up of both branches (camlkit.step), then 600 of Eq. 1 with the ramps over 4
  epochs of 50 iterations and OCC's sample counts shrunk with the patch (j = 128, i = 2,000).
  The labeled-only V-Net at the same time budget: ``--method supervised --iterations 7000``.
* ``mini`` — the CPU mini Table 2: ``quick``'s sizes at **4 labeled**, with most of the budget
  given to the semi-supervised step: 1,000 iterations, of which only the first 200 are the
  labeled-only warm-up, then 800 of Eq. 1 (ramps over 4 epochs of 50 iterations). Every method runs
  the same iterations, so ``--method supervised`` / ``mcnet`` / ``caml`` differ only in what the
  method switches on; a CAML run took 11 min 49 s on 2 cores, evaluation included.
  ``scripts/mini_table2.sh`` runs the 3 methods x 3 seeds; the results are in
  ``results/mini_table2/``.
* ``smoke`` — seconds; the same code path with tiny sizes, for tests and notebooks in CI.
"""

import dataclasses
import json
import math
import types
from dataclasses import dataclass, field
from pathlib import Path

from camlkit.caml import CAMLConfig
from camlkit.errors import CamlkitError
from camlkit.paper import METHODS
from camlkit.ramps import ramp_length
from camlkit.step import StepConfig

# the switches that ``method`` sets (Table 2's rows); see TrainConfig.resolved
METHOD_SWITCHES = ("model.use_cma", "step.use_cps", "step.use_occ", "step.supervised_only")


@dataclass
class TrainConfig:
    preset: str = "paper"  # the preset this config started from (paper, quick, mini, smoke)
    method: str = "caml"  # supervised, mcnet, mcnet+occ, mcnet+cma or caml
    labeled: int = 4  # the first N cases of train.list are labeled
    seed: int = 3407  # the released runs' seed
    data: str | None = None  # LA folder; None: $CAMLKIT_DATA, else data/LA here or in the parent (data.folder)
    out: str | None = None  # run folder; None: runs/<preset>-<method>-<labeled>L-seed<seed>
    # optimisation (released values)
    iterations: int = 15000  # training iterations (one batch each)
    batch_size: int = 4  # samples per batch, labeled and unlabeled
    labeled_bs: int = 2  # labeled samples first in each batch
    optimizer: str = "sgd"  # "sgd" as released; "adam" converges faster in a CPU budget
    lr: float = 0.01  # learning rate
    momentum: float = 0.9  # SGD only
    lr_schedule: str = "constant"  # "constant" as released; "cosine" decays to 0 at the end
    weight_decay: float = 1e-4  # L2 weight decay of the optimizer
    # data
    patch_size: tuple = (112, 112, 80)  # training crop, each side a multiple of 16
    scale: float = 1.0  # resample volumes by this factor (> 0)
    zscore_case: bool = False  # z-score each stored image again (camlkit.data.LADataset; released: no)
    crop_rule: str = "release"  # "release": start drawn from 0..s-p-1, as released; "uniform": 0..s-p
    restart_unlabeled: bool = True  # restart the unlabeled stream every epoch, as released
    # evaluation at the final iteration
    eval_stride: tuple = (18, 18, 4)  # sliding-window stride of the final evaluation
    eval_cases: int | None = None  # evaluate the first K cases of the evaluated split; None: all
    val_cases: int = 0  # the last K cases of train.list held out for validation, never trained on
    eval_split: str = "test"  # what the final evaluation scores: "test" (test.list) or "val"
    # machinery
    device: str = "auto"  # auto (cuda if present, else cpu), cpu, cuda or cuda:N
    amp: bool = False  # bf16 autocast on CUDA (released: fp32)
    fast: bool = False  # CUDA: mixed precision, channels_last, OCC on the device (camlkit.runtime.fast)
    compile: bool = False  # torch.compile the network
    channels_last: bool = True  # channels_last_3d memory format: about 2x faster 3-D convs on CPU
    num_workers: int = 0  # DataLoader worker processes
    share_threads: bool = True  # CPU: as many threads as other processes leave CPUs free (runtime.threads)
    checkpoint_every: int = 1000  # write checkpoints/last.pth every N iterations (and at the end)
    log_every: int = 10  # write a log.csv row every N iterations
    progress: bool = True  # progress bar and printed summary
    # the method's parts
    model: CAMLConfig = field(default_factory=CAMLConfig)  # the network (camlkit.caml)
    step: StepConfig = field(default_factory=lambda: StepConfig(ramp_length=None))  # Eq. 1 (camlkit.step)

    @property
    def unlabeled_bs(self):
        return 0 if self.method == "supervised" else self.batch_size - self.labeled_bs

    def resolved(self) -> "TrainConfig":
        """This config with what ``method`` decides filled in (see the module docstring)."""
        if self.method not in METHODS:
            raise CamlkitError(f"unknown method {self.method!r}: choose from {', '.join(METHODS)}")
        supervised = self.method == "supervised"
        model = dataclasses.replace(self.model, use_cma=self.method in ("mcnet+cma", "caml"))
        step = dataclasses.replace(
            self.step, supervised_only=supervised, use_cps=not supervised,
            use_occ=self.method in ("mcnet+occ", "caml"),
            ramp_length=(ramp_length(self.labeled) if self.step.ramp_length is None
                         else self.step.ramp_length),
            warmup=0 if supervised else self.step.warmup)  # a lone f_v has nothing to warm up
        return dataclasses.replace(self, patch_size=tuple(self.patch_size),
                                   eval_stride=tuple(self.eval_stride), model=model, step=step)

    def __getattr__(self, name):  # only called for a name that is no field: say where it lives
        group = self._group_of(name) if name != "__dict__" else None
        where = f": read cfg.{group}.{name}" if group else ""
        raise AttributeError(f"TrainConfig has no field {name!r}{where}")

    def __setattr__(self, name, value):
        if name not in self.__dataclass_fields__:  # a typo or a nested field set at the top
            group = self._group_of(name)
            where = f": set cfg.{group}.{name}" if group else ""
            raise AttributeError(f"TrainConfig has no field {name!r}{where}")
        super().__setattr__(name, value)

    def _group_of(self, name):
        for group in ("model", "step"):
            inner = self.__dict__.get(group)
            if inner is not None and name in {f.name for f in dataclasses.fields(inner)}:
                return group
        return None


QUICK = TrainConfig(
    preset="quick", labeled=16, iterations=2300, lr=0.05, lr_schedule="cosine",
    patch_size=(48, 48, 32), scale=0.4, zscore_case=True, eval_stride=(7, 7, 2),
    checkpoint_every=250, log_every=10, model=CAMLConfig(n_filters=8),
    step=StepConfig(warmup=1700, j=128, top_i=2000, ramp_length=4, iterations_per_epoch=50))

PRESETS = {
    "paper": TrainConfig(),
    "quick": QUICK,
    # mini: quick at 4 labeled, 1000 iterations of which 200 warm-up (the CPU mini Table 2)
    "mini": dataclasses.replace(QUICK, preset="mini", labeled=4, iterations=1000,
                                step=dataclasses.replace(QUICK.step, warmup=200)),
    "smoke": TrainConfig(
        preset="smoke", labeled=4, iterations=6, patch_size=(32, 32, 16), scale=0.25,
        zscore_case=True, eval_stride=(16, 16, 8), eval_cases=2, checkpoint_every=2, log_every=1,
        model=CAMLConfig(n_filters=2, proj_dim=8),
        step=StepConfig(warmup=2, j=8, top_i=64, ramp_length=1, iterations_per_epoch=2)),
}


# ----------------------------------------------------------------------------- bounds

@dataclass(frozen=True)
class Bound:
    """The values a numeric field may take: finite, from ``low`` to ``high`` (None: no bound;
    ``open``: that end excluded); ``whole``: a whole number. A tuple field bounds each side."""
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    whole: bool = False

    def holds(self, value) -> bool:
        if isinstance(value, bool) or not isinstance(value, int if self.whole else (int, float)):
            return False
        if not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def text(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        ends = [f"{'>' if self.low_open else '>='} {self.low:g}" if self.low is not None else "",
                f"{'<' if self.high_open else '<='} {self.high:g}" if self.high is not None else ""]
        return " ".join([kind, " and ".join(e for e in ends if e)]).strip()


WHOLE, POSITIVE = Bound(1, whole=True), Bound(0, low_open=True)  # >= 1 / > 0
COUNT, WEIGHT, FRACTION = Bound(0, whole=True), Bound(0), Bound(0, 1, high_open=True)  # >= 0 / [0, 1)

# every numeric field of the tree (a test walks them all): checked before any work
BOUNDS = {
    "labeled": COUNT, "seed": Bound(0, 2**32 - 1, whole=True), "iterations": WHOLE,
    "batch_size": WHOLE, "labeled_bs": WHOLE, "lr": POSITIVE, "momentum": FRACTION,
    "weight_decay": WEIGHT, "patch_size": Bound(16, whole=True), "scale": POSITIVE,
    "eval_stride": WHOLE, "eval_cases": WHOLE, "val_cases": COUNT, "num_workers": COUNT,
    "checkpoint_every": WHOLE, "log_every": WHOLE,
    "model.in_channels": WHOLE, "model.n_classes": Bound(2, whole=True), "model.n_filters": WHOLE,
    "model.proj_dim": WHOLE, "model.cma_heads": WHOLE, "model.cma_feedforward": WHOLE,
    "model.cma_dropout": FRACTION,
    "step.weight_s": WEIGHT, "step.sharpen_T": POSITIVE, "step.beta_c": WEIGHT, "step.beta_o": WEIGHT,
    "step.ramp_length": WEIGHT, "step.iterations_per_epoch": WHOLE, "step.ramp_offset": COUNT,
    "step.j": WHOLE, "step.top_i": WHOLE, "step.occ_temperature": POSITIVE, "step.warmup": COUNT,
}


def flag_name(path: str) -> str:
    """A field's ``camlkit train`` flag: ``lr_schedule`` -> ``--lr-schedule``; ``step.beta_o`` ->
    ``--step.beta_o``."""
    return "--" + (path if "." in path else path.replace("_", "-"))


def check_bounds(cfg) -> None:
    """Every numeric field of ``cfg`` within its :data:`BOUNDS`; one line naming the first that is
    not (its flag and value). None passes only where the field's type allows it."""
    for path, f, _ in config_fields(cfg):
        bound, value = BOUNDS.get(path), get_field(cfg, path)
        optional = isinstance(f.type, types.UnionType) and type(None) in f.type.__args__
        if bound is None or (value is None and optional):
            continue
        sides = value if isinstance(value, (tuple, list)) else [value]
        if not sides or not all(bound.holds(v) for v in sides):
            shown = ",".join(map(str, sides)) if isinstance(value, (tuple, list)) else value
            each = "each side " if isinstance(value, (tuple, list)) else ""
            raise CamlkitError(f"{flag_name(path)} {shown}: expected {each}{bound.text()}")


# ----------------------------------------------------------------------------- fields by path

def config_fields(cfg, prefix=""):
    """Every leaf field of the tree as ``(path, dataclasses.Field, its dataclass)``, in order."""
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if dataclasses.is_dataclass(value):
            yield from config_fields(value, f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, type(cfg)


def get_field(cfg, path):
    for name in path.split("."):
        cfg = getattr(cfg, name)
    return cfg


def with_fields(cfg, values: dict):
    """A copy of ``cfg`` with the fields named by path replaced: {"lr": 0.1, "step.beta_o": 0.1}."""
    direct, nested = {}, {}
    for path, value in values.items():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[head] = value
    for head, inner in nested.items():
        direct[head] = with_fields(getattr(cfg, head), inner)
    try:
        return dataclasses.replace(cfg, **direct)
    except TypeError as err:
        raise CamlkitError(f"{type(cfg).__name__}: {err}") from None


def to_dict(cfg) -> dict:
    """{path: value} of every field, JSON-ready (tuples as lists): config.json, checkpoints."""
    return {path: json.loads(json.dumps(get_field(cfg, path))) for path, _, _ in config_fields(cfg)}


def from_dict(values: dict) -> TrainConfig:
    """The inverse of :func:`to_dict` (unknown paths are a CamlkitError)."""
    return with_fields(TrainConfig(), check_paths(values)).resolved()


def check_paths(values: dict) -> dict:
    known = {path for path, _, _ in config_fields(TrainConfig())}
    for path in values:
        if path not in known:
            hint = [p for p in known if p.endswith("." + path)]
            where = f" (it is {hint[0]})" if len(hint) == 1 else ""
            raise CamlkitError(f"unknown config field {path!r}{where}")
    return values


# ----------------------------------------------------------------------------- building a run

def make_config(preset="paper", **overrides) -> TrainConfig:
    """A preset with some fields replaced, resolved (None values are ignored).

    Top-level fields by name, nested ones by path: ``make_config("quick", lr=0.1,
    **{"step.beta_o": 0.1, "model.proj_dim": 64})``.
    """
    if preset not in PRESETS:
        raise CamlkitError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    overrides = check_paths({k: v for k, v in overrides.items() if v is not None})
    for path in METHOD_SWITCHES:
        if path in overrides:
            raise CamlkitError(f"{path} is decided by the method: choose one of {', '.join(METHODS)}")
    cfg = with_fields(PRESETS[preset], overrides).resolved()
    if any(p % 16 for p in cfg.patch_size):
        raise CamlkitError(f"patch size {cfg.patch_size}: every side must be a multiple of 16")
    return cfg


def run_name(cfg: TrainConfig) -> str:
    """A run's default folder name: ``<preset>-<method>-<labeled>L-seed<seed>``."""
    return f"{cfg.preset}-{cfg.method}-{cfg.labeled}L-seed{cfg.seed}"


def default_run_dir(cfg: TrainConfig, root="runs") -> Path:
    """Where a run goes when no ``out`` is given: ``<root>/<run_name>``, root ``runs`` by default
    (a notebook in ``notebooks/`` passes ``../runs``). The one run-folder rule of camlkit."""
    return Path(root) / run_name(cfg)


def run_dir(cfg: TrainConfig, root="runs") -> Path:
    """``cfg.out`` if set, else :func:`default_run_dir`."""
    return Path(cfg.out) if cfg.out else default_run_dir(cfg, root)
