"""Training CAML and its ablations: presets, the loop, checkpoints, resume, logging.

A run is one :class:`TrainConfig`. Three presets (:data:`PRESETS`) are instances of it:

* ``paper`` — the released configuration exactly: batch 4 (2 labeled + 2 unlabeled), patch
  112x112x80, SGD lr 0.01 (constant), momentum 0.9, weight decay 1e-4, 15,000 iterations, ramp
  R = 40/20/15 by labeled count, lambda_o 0.05, j = 256, i = 12,800, T = 0.1; evaluated at the
  final iteration with the sliding-window protocol. A GPU job (about a day on the authors' GPU).
* ``quick`` — a CPU design that trains full CAML with 16 labeled cases in about 14 minutes on
  2 cores, evaluation included: each stored case z-scored again (``zscore_case``: the files were
  z-scored before the crop, so their contrast differs from case to case; camlkit.data.LADataset),
  volumes resampled to 0.4 of their size (``scale=0.4``; labels on the image's grid, see
  camlkit.data.resample_label), 8 base filters, patch 48x48x32, lr 0.05 with a cosine decay,
  2,300 iterations of which the first 1,700 are a **warm-up** (both branches on the labeled half
  only, Eq. 1 with the lambdas at zero: camlkit.step), then 600 of Eq. 1 with the ramps over 4
  epochs of 50 iterations and OCC's sample counts shrunk with the patch (j = 128, i = 2,000). Metrics are still
  computed on the original full-resolution labels. The labeled-only V-Net at the same time budget:
  ``--method supervised --iterations 7000`` (its step is about 5x cheaper than a CAML step).
* ``smoke`` — seconds; the same code path with tiny sizes, for tests and notebooks in CI.

Methods (``--method``): ``supervised`` (labeled-only V-Net), ``mcnet`` (CPS only, the ablation
baseline), ``mcnet+occ``, ``mcnet+cma``, ``caml`` (full).

A run folder holds ``config.json``, ``log.csv`` (every logged iteration), TensorBoard scalars in
``tb/``, ``checkpoints/last.pth`` (written atomically every ``checkpoint_every`` iterations and
at the end; ``--resume`` continues from it), ``model_final.pth`` (inference weights),
``cases.csv`` / ``summary.md`` (final evaluation) and ``curves.png``.

Exact resume: each batch is a pure function of (seed, iteration) — the batch's cases come from a
seeded sampler replayed up to the iteration, its augmentation from a generator seeded with
(seed, iteration, position) — and the checkpoint stores the model, optimizer, memory bank and the
torch RNG state. On CPU a killed and resumed run ends bit-identical to an uninterrupted one.
"""

import argparse
import csv
import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from camlkit.caml import CAMLConfig, CAMLNet
from camlkit.checkpoint import (FORMAT, VERSION, net_from_checkpoint, read_camlkit_checkpoint,
                                save_checkpoint, save_inference_model)
from camlkit.errors import CamlkitError
from camlkit.occ import MemoryBank
from camlkit.ramps import ramp_length
from camlkit.step import StepConfig, caml_step

METHODS = ("supervised", "mcnet", "mcnet+occ", "mcnet+cma", "caml")


@dataclass
class TrainConfig:
    preset: str = "paper"
    method: str = "caml"
    labeled: int = 4  # the first N cases of train.list are labeled
    seed: int = 3407  # the released runs' seed
    data: str = "data/LA"
    out: str = "runs/caml"
    # optimisation (released values)
    iterations: int = 15000
    batch_size: int = 4
    labeled_bs: int = 2  # labeled samples first in each batch
    optimizer: str = "sgd"  # "sgd" as released; "adam" converges faster in a CPU budget
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    lr_schedule: str = "constant"  # "constant" as released; "cosine" decays to 0 at the end
    weight_decay: float = 1e-4
    # data and network size
    patch_size: tuple = (112, 112, 80)
    scale: float = 1.0  # resample volumes by this factor (quick preset: 0.4)
    zscore_case: bool = False  # z-score each stored image again (camlkit.data.LADataset; released: no)
    n_filters: int = 16
    proj_dim: int = 32  # c' (paper: 64)
    # losses (camlkit.step.StepConfig)
    beta_c: float = 1.0
    beta_o: float = 0.05
    ramp: int | None = None  # R in epochs; None: 40 / 20 / 15 for 4 / 8 / 16 labeled
    iterations_per_epoch: int = 150
    T: float = 0.1
    j: int = 256
    top_i: int = 12800
    temperature: float = 0.1
    similarity: str = "dot"
    warmup: int = 0  # labeled-only iterations of both branches before Eq. 1 starts (released: 0)
    # evaluation at the final iteration
    eval_stride: tuple = (18, 18, 4)
    eval_cases: int | None = None  # None: every case of test.list
    # machinery
    device: str = "auto"
    amp: bool = True  # bf16 autocast on CUDA
    compile: bool = False  # torch.compile the network
    channels_last: bool = True  # channels_last_3d memory format: about 2x faster 3-D convs on CPU
    num_workers: int = 0
    checkpoint_every: int = 1000
    log_every: int = 10
    progress: bool = True

    def step_config(self) -> StepConfig:
        supervised = self.method == "supervised"
        return StepConfig(
            supervised_only=supervised, use_cps=not supervised,
            use_occ=self.method in ("mcnet+occ", "caml"), sharpen_T=self.T, beta_c=self.beta_c,
            beta_o=self.beta_o, ramp_length=self.ramp or ramp_length(self.labeled),
            iterations_per_epoch=self.iterations_per_epoch, j=self.j, top_i=self.top_i,
            occ_temperature=self.temperature, similarity=self.similarity,
            warmup=0 if supervised else self.warmup)

    def model_config(self) -> CAMLConfig:
        return CAMLConfig(n_filters=self.n_filters, proj_dim=self.proj_dim,
                          use_cma=self.method in ("mcnet+cma", "caml"))

    @property
    def unlabeled_bs(self):
        return 0 if self.method == "supervised" else self.batch_size - self.labeled_bs


PRESETS = {
    "paper": TrainConfig(amp=False),  # fp32, as released
    "quick": TrainConfig(
        preset="quick", labeled=16, iterations=2300, warmup=1700, lr=0.05, lr_schedule="cosine",
        patch_size=(48, 48, 32), scale=0.4, zscore_case=True, n_filters=8, j=128, top_i=2000, ramp=4,
        iterations_per_epoch=50, eval_stride=(7, 7, 2), checkpoint_every=250, log_every=10),
    "smoke": TrainConfig(
        preset="smoke", labeled=4, iterations=6, warmup=2, patch_size=(32, 32, 16), scale=0.25,
        zscore_case=True,
        n_filters=2, proj_dim=8, j=8, top_i=64, ramp=1, iterations_per_epoch=2,
        eval_stride=(16, 16, 8), eval_cases=2, checkpoint_every=2, log_every=1),
}

# fields that must match between a checkpoint and a resumed run
RESUME_KEYS = ("method", "labeled", "seed", "batch_size", "labeled_bs", "patch_size", "scale",
               "n_filters", "proj_dim", "optimizer", "lr", "lr_schedule", "momentum", "weight_decay", "j", "top_i",
               "warmup", "zscore_case")


def make_config(preset="paper", **overrides) -> TrainConfig:
    """A preset with some fields replaced (None values are ignored)."""
    if preset not in PRESETS:
        raise CamlkitError(f"unknown preset {preset!r}: choose from {', '.join(PRESETS)}")
    cfg = dataclasses.replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    if cfg.method not in METHODS:
        raise CamlkitError(f"unknown method {cfg.method!r}: choose from {', '.join(METHODS)}")
    cfg.patch_size, cfg.eval_stride = tuple(cfg.patch_size), tuple(cfg.eval_stride)
    if any(p % 16 for p in cfg.patch_size):
        raise CamlkitError(f"patch size {cfg.patch_size}: every side must be divisible by 16")
    return cfg


# ----------------------------------------------------------------------------- devices

def resolve_device(name="auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def seed_everything(seed):
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True  # as released
    torch.backends.cudnn.benchmark = False


def distributed_context():
    """(rank, world_size), initialising torch.distributed when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    return dist.get_rank(), world


def make_optimizer(cfg: TrainConfig, net: nn.Module):
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise CamlkitError(f"unknown optimizer {cfg.optimizer!r}: choose 'sgd' or 'adam'")


def learning_rate(cfg: TrainConfig, iteration: int) -> float:
    """The learning rate of an iteration: constant (released) or a cosine decay to 0."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    if cfg.lr_schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * min(iteration, cfg.iterations) / cfg.iterations))
    raise CamlkitError(f"unknown lr_schedule {cfg.lr_schedule!r}: choose 'constant' or 'cosine'")


# ----------------------------------------------------------------------------- data

class IterationBatches(torch.utils.data.Dataset):
    """Item t = the whole batch of iteration t, a pure function of (seed, t).

    ``schedule[t]`` lists the dataset indices (labeled first); sample k of batch t is augmented
    with a NumPy generator seeded by (seed, t, k), so batches do not depend on which worker makes
    them, nor on whether the run was resumed.
    """

    def __init__(self, dataset, schedule, transform, seed):
        self.dataset, self.schedule, self.transform, self.seed = dataset, schedule, transform, seed

    def __len__(self):
        return len(self.schedule)

    def __getitem__(self, t):
        images, labels = [], []
        for k, index in enumerate(self.schedule[t]):
            image, label = self.dataset.load(index)
            rng = np.random.default_rng([self.seed, t, k])
            image, label = self.transform(image, label, rng)
            images.append(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))
            labels.append(torch.from_numpy(np.ascontiguousarray(label)).long())
        return {"image": torch.stack(images)[:, None], "label": torch.stack(labels),
                "index": torch.tensor(self.schedule[t])}


def batch_schedule(n_labeled, n_unlabeled, cfg: TrainConfig, n_batches):
    """The first ``n_batches`` batches of the two-stream sampler, as lists of dataset indices."""
    from camlkit.data import TwoStreamBatchSampler

    sampler = TwoStreamBatchSampler(
        range(n_labeled), range(n_labeled, n_labeled + n_unlabeled),
        cfg.batch_size if cfg.unlabeled_bs else cfg.labeled_bs, cfg.unlabeled_bs, seed=cfg.seed)
    schedule = []
    while len(schedule) < n_batches:
        schedule.extend(list(sampler))
    return schedule[:n_batches]


def training_loader(cfg: TrainConfig, rank=0, world=1, start=0):
    """DataLoader yielding the batches of iterations start..cfg.iterations-1 for this rank."""
    from camlkit.data import LADataset, load_split, seed_worker, train_transform

    split = load_split(cfg.data, cfg.labeled)
    unlabeled = split.unlabeled if cfg.unlabeled_bs else []
    if cfg.unlabeled_bs and len(unlabeled) < cfg.unlabeled_bs:
        raise CamlkitError(f"{cfg.data}: {len(unlabeled)} unlabeled cases, need {cfg.unlabeled_bs}")
    dataset = LADataset(list(split.labeled) + list(unlabeled), scale=cfg.scale,
                        zscore_case=cfg.zscore_case)
    schedule = batch_schedule(len(split.labeled), len(unlabeled), cfg, cfg.iterations * world)
    for index in sorted({i for batch in schedule for i in batch}):
        dataset.load(index)  # decode every case once, before workers fork
    batches = IterationBatches(dataset, schedule, train_transform(cfg.patch_size), cfg.seed)
    order = [t * world + rank for t in range(start, cfg.iterations)]
    return torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=order, num_workers=cfg.num_workers,
        worker_init_fn=seed_worker, persistent_workers=cfg.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(cfg.seed + rank))  # leaves the global RNG alone


# ----------------------------------------------------------------------------- the step as a module

class CAMLStep(nn.Module):
    """Wraps the network so that one forward is one Eq. 1 step (what DDP needs to see)."""

    def __init__(self, net: CAMLNet, cfg: StepConfig, bank: MemoryBank | None):
        super().__init__()
        self.net, self.cfg, self.bank = net, cfg, bank

    def forward(self, image, label, labeled_bs, iteration, slots):
        return caml_step(self.net, image, label, labeled_bs, iteration, self.cfg, self.bank, slots)


# ----------------------------------------------------------------------------- checkpoints

def checkpoint_payload(cfg, net, optimizer, bank, iteration):
    return {
        "format": FORMAT, "version": VERSION, "iteration": iteration,
        "config": {"model": dataclasses.asdict(net.config), "train": dataclasses.asdict(cfg)},
        "model": net.state_dict(), "optimizer": optimizer.state_dict(),
        "bank": bank.state_dict() if bank is not None else None,
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
    }


def check_resumable(ckpt, cfg, path):
    stored = ckpt["config"].get("train", {})
    for key in RESUME_KEYS:
        mine, theirs = getattr(cfg, key), stored.get(key)
        if isinstance(mine, tuple):
            theirs = tuple(theirs) if theirs is not None else None
        if mine != theirs:
            raise CamlkitError(f"{path}: cannot resume, the checkpoint has {key}={theirs!r} "
                               f"but this run asks for {key}={mine!r}")


def restore(path, cfg, net, optimizer, bank, device):
    """Load a resume checkpoint into net/optimizer/bank; returns the next iteration."""
    ckpt = read_camlkit_checkpoint(path)
    check_resumable(ckpt, cfg, path)
    net.load_state_dict(net_from_checkpoint(ckpt, path).state_dict())
    optimizer.load_state_dict(ckpt["optimizer"])
    if bank is not None and ckpt["bank"] is not None:
        bank.load_state_dict(ckpt["bank"], device)
    torch.set_rng_state(ckpt["rng"]["torch"])
    if ckpt["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
    return ckpt["iteration"]


# ----------------------------------------------------------------------------- logging

LOG_FIELDS = ("iteration", "L", "L_s", "l_c", "l_o", "lambda_c", "lambda_o", "lr", "seconds")


class RunLog:
    """CSV of every logged iteration + TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, resume: bool, start: int):
        self.path = run_dir / "log.csv"
        rows = read_log(self.path) if resume and self.path.exists() else []
        rows = [r for r in rows if r["iteration"] < start]  # drop what the resumed run redoes
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, LOG_FIELDS)
            writer.writeheader()
            writer.writerows(rows)
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start)

    def write(self, row):
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writerow(row)
        for key in LOG_FIELDS[1:]:
            self.tb.add_scalar(f"train/{key}", row[key], row["iteration"])

    def close(self):
        self.tb.close()


def read_log(path):
    with open(path, newline="") as f:
        return [{k: (int(v) if k == "iteration" else float(v)) for k, v in row.items()}
                for row in csv.DictReader(f)]


def plot_run(run_dir: Path, summary=None):
    """curves.png: each loss part and the two lambdas against iterations, final metrics in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(run_dir / "log.csv")
    its = [r["iteration"] for r in rows]
    fig, (ax_loss, ax_lambda) = plt.subplots(1, 2, figsize=(11, 4))
    for key in ("L", "L_s", "l_c", "l_o"):
        ax_loss.plot(its, [r[key] for r in rows], label=key)
    ax_loss.set_xlabel("iteration"), ax_loss.set_title("loss parts"), ax_loss.legend()
    for key in ("lambda_c", "lambda_o"):
        ax_lambda.plot(its, [r[key] for r in rows], label=key)
    ax_lambda.set_xlabel("iteration"), ax_lambda.set_title("ramp-up weights"), ax_lambda.legend()
    if summary:
        fig.suptitle("final: " + ", ".join(f"{k} {summary[k][0]:.4g}"
                                           for k in ("dice", "jaccard", "hd95", "asd")))
    fig.tight_layout()
    tmp = run_dir / ".curves.tmp.png"
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, run_dir / "curves.png")


def write_json(obj, path):
    tmp = Path(path).with_name(f".{Path(path).name}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=list))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, resume=False, callback=None, evaluate=True) -> Path:
    """Train one run and evaluate its final f_v; returns the run folder.

    ``callback(row)`` is called with every logged row (a notebook draws live curves with it).
    """
    rank, world = distributed_context()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    run_dir = Path(cfg.out)
    last = run_dir / "checkpoints" / "last.pth"
    if resume and not last.exists():
        raise CamlkitError(f"{last}: nothing to resume (no checkpoint in {run_dir})")
    if not resume and last.exists():
        raise CamlkitError(f"{run_dir} already holds a run: pass --resume or choose another --out")
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)

    seed_everything(cfg.seed + rank)
    net = CAMLNet(cfg.model_config()).to(device)
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    optimizer = make_optimizer(cfg, net)
    step_cfg = cfg.step_config()
    bank = MemoryBank(cfg.labeled, cfg.proj_dim) if step_cfg.use_occ else None
    start = restore(last, cfg, net, optimizer, bank, device) if resume else 0
    if rank == 0:
        write_json(dataclasses.asdict(cfg), run_dir / "config.json")

    module = CAMLStep(net, step_cfg, bank)
    if world > 1:
        module = nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
    if cfg.compile:
        net.f_v, net.f_a = torch.compile(net.f_v), torch.compile(net.f_a)

    loader = training_loader(cfg, rank, world, start)
    log = RunLog(run_dir, resume, start) if rank == 0 else None
    nonfinite = torch.zeros((), dtype=torch.bool, device=device)
    bar = _progress(cfg, rank, start)
    t0 = time.time()
    net.train()
    for iteration, batch in zip(range(start, cfg.iterations), loader):
        image = batch["image"].to(device, non_blocking=True).to(memory_format=layout)
        label = batch["label"].to(device, non_blocking=True)
        slots = batch["index"][: cfg.labeled_bs].tolist()  # labeled cases are dataset 0..N-1
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
            loss, parts = module(image, label, cfg.labeled_bs, iteration, slots)
        nonfinite |= ~torch.isfinite(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(cfg, iteration)
        optimizer.step()
        done = iteration + 1
        if done % cfg.log_every == 0 or done == cfg.iterations:
            _check_finite(nonfinite, parts, iteration, last)
            row = _log_row(iteration, parts, optimizer, time.time() - t0)
            if log:
                log.write(row)
            if bar is not None:
                bar.set_postfix({k: f"{row[k]:.3f}" for k in ("L", "L_s", "l_c", "l_o")})
            if callback is not None:
                callback(row)
        if bar is not None:
            bar.update(1)
        if rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
            _check_finite(nonfinite, parts, iteration, last)
            save_checkpoint(checkpoint_payload(cfg, net, optimizer, bank, done), last)
    if bar is not None:
        bar.close()
    if log:
        log.close()
    if world > 1:
        check_replicas_agree(net)
    if rank != 0:
        dist.barrier()  # wait for rank 0's files, so no rank tears the group down early
        return run_dir
    save_inference_model(net, run_dir / "model_final.pth", train=dataclasses.asdict(cfg),
                         scale=cfg.scale, patch_size=list(cfg.patch_size),
                         stride=list(cfg.eval_stride), method=cfg.method, labeled=cfg.labeled,
                         zscore_case=cfg.zscore_case)
    summary = evaluate_run(cfg, net.f_v, run_dir, device) if evaluate else None
    plot_run(run_dir, summary)
    if world > 1:
        dist.barrier()
    return run_dir


def check_replicas_agree(net):
    """After DDP training every rank must hold the same weights; a cheap all-gathered checksum."""
    checksum = torch.stack([p.detach().double().sum() for p in net.parameters()]).sum()
    gathered = [torch.zeros_like(checksum) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"DDP replicas diverged: weight checksums {[float(g) for g in gathered]}")


def _progress(cfg, rank, start):
    if rank != 0 or not cfg.progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=cfg.iterations, initial=start, desc=f"{cfg.method} {cfg.labeled}L",
                unit="it", dynamic_ncols=True)


def _check_finite(nonfinite, parts, iteration, last):
    if bool(nonfinite):
        values = ", ".join(f"{k}={float(parts[k]):.4g}" for k in ("L_s", "l_c", "l_o"))
        kept = f"the last good checkpoint is {last}" if last.exists() else "no checkpoint was written"
        raise CamlkitError(f"the loss became non-finite by iteration {iteration} ({values}); "
                           f"stopped, {kept}")


def _log_row(iteration, parts, optimizer, seconds):
    row = {"iteration": iteration, "lr": optimizer.param_groups[0]["lr"], "seconds": round(seconds, 3)}
    for key in ("L", "L_s", "l_c", "l_o", "lambda_c", "lambda_o"):
        row[key] = float(parts[key])
    return row


def evaluate_run(cfg, f_v, run_dir, device):
    """Final-iteration evaluation of f_v on test.list: cases.csv, summary.md, summary.json."""
    from camlkit.data import load_split
    from camlkit.evaluate import (evaluate_cases, format_table, summarize, write_csv,
                                  write_text_atomic)

    cases = list(load_split(cfg.data, cfg.labeled).test)[: cfg.eval_cases]
    f_v.eval()
    rows = evaluate_cases(f_v, cases, cfg.patch_size, cfg.eval_stride, scale=cfg.scale,
                          progress=cfg.progress, zscore_case=cfg.zscore_case)
    summary = summarize(rows)
    write_csv(rows, run_dir / "cases.csv")
    table = format_table(summary, cfg.method, cfg.labeled)
    write_text_atomic(table + "\n", run_dir / "summary.md")
    write_json(summary, run_dir / "summary.json")
    if cfg.progress:
        print(table)
    return summary


# ----------------------------------------------------------------------------- CLI

def _tuple(text):
    return tuple(int(v) for v in text.replace("x", ",").split(","))


def add_cli(subparsers):
    p = subparsers.add_parser("train", help="train CAML or an ablation (presets: paper, quick, smoke)")
    p.add_argument("--preset", default="quick", choices=sorted(PRESETS))
    p.add_argument("--method", choices=METHODS)
    p.add_argument("--labeled", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--data", default=os.environ.get("CAMLKIT_DATA", "data/LA"))
    p.add_argument("--out", required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pth")
    p.add_argument("--iterations", type=int)
    p.add_argument("--patch-size", type=_tuple, help="e.g. 112,112,80")
    p.add_argument("--scale", type=float)
    p.add_argument("--n-filters", type=int)
    p.add_argument("--optimizer", choices=("sgd", "adam"))
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-schedule", choices=("constant", "cosine"))
    p.add_argument("--warmup", type=int, help="labeled-only iterations before Eq. 1 starts")
    p.add_argument("--similarity", choices=("dot", "cosine"), help="OCC's similarity (released: dot)")
    p.add_argument("--checkpoint-every", type=int)
    p.add_argument("--eval-cases", type=int)
    p.add_argument("--num-workers", type=int)
    p.add_argument("--device")
    p.add_argument("--compile", action="store_true", default=None)
    p.add_argument("--no-amp", dest="amp", action="store_false", default=None)
    p.add_argument("--no-eval", dest="evaluate", action="store_false")
    p.add_argument("--quiet", dest="progress", action="store_false", default=None)
    p.set_defaults(func=train_command)


def train_command(args):
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in vars(args).items() if k in fields and k != "preset"}
    cfg = make_config(args.preset, **overrides)
    run_dir = train(cfg, resume=args.resume, evaluate=args.evaluate)
    if cfg.progress and int(os.environ.get("RANK", "0")) == 0:
        print(f"run folder: {run_dir}")
    if dist.is_initialized():
        dist.destroy_process_group()
    return 0
