"""Training CAML and its ablations: the loop (one Eq. 1 step per iteration), and nothing else.

A run is one :class:`camlkit.config.TrainConfig` (presets ``paper``, ``quick``, ``mini``,
``smoke``; see camlkit.config). Methods: ``supervised`` (labeled-only V-Net), ``mcnet`` (CPS only, the ablation
baseline), ``mcnet+occ``, ``mcnet+cma``, ``caml`` (full). Around the loop, each in its module:
the batches (camlkit.data.batches), the checkpoint and resume checks (camlkit.runtime.resume), the log
(camlkit.runtime.runlog), the checks before the work (camlkit.runtime.preflight) and the final evaluation
(camlkit.evaluation.final_eval).

A run folder holds ``config.json`` (the whole config tree, by path), ``log.csv`` (every logged
iteration), TensorBoard scalars in ``tb/`` (when installed), ``checkpoints/last.pth`` (written
atomically every ``checkpoint_every`` iterations and at the end; ``--resume`` continues from it),
``model_final.pth`` (inference weights), ``cases.csv`` / ``summary.md`` / ``summary.json``
(final evaluation) and ``curves.png``.

Exact resume: each batch is a pure function of (seed, iteration) (camlkit.data.batches) and the
checkpoint stores the model, optimizer, memory bank and the torch RNG state. On CPU a killed and
resumed run ends bit-identical to an uninterrupted one when both ran on the same fixed number of
threads (``OMP_NUM_THREADS=1``, or ``--no-share-threads``): by default a CPU run follows the CPUs
other processes leave free (camlkit.runtime.threads), and a step on 1 thread and on 2 does not
give the same bits.
"""

import contextlib
import json
import math
import os
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from camlkit.caml import CAMLNet
from camlkit.config import TrainConfig, run_dir, to_dict
from camlkit.data.batches import training_loader
from camlkit.data.folder import find_data_dir
from camlkit.diagnostics.health import HEALTH_KEYS, HealthWatch
from camlkit.errors import CamlkitError
from camlkit.evaluation.evaluate import evaluation_failed_message
from camlkit.evaluation.final_eval import evaluate_run
from camlkit.files import write_text
from camlkit.occ import MemoryBank
from camlkit.runtime import fast
from camlkit.runtime.checkpoint import save_checkpoint, save_inference_model
from camlkit.runtime.device import resolve_device
from camlkit.runtime.distributed import check_replicas_agree, distributed_context
from camlkit.runtime.places import runs_root
from camlkit.runtime.preflight import check_config, check_data, check_outputs
from camlkit.runtime.resume import (
    checkpoint_payload,
    checkpoint_write_limits_as_one_line,
    data_fingerprint,
    restore,
    run_split,
)
from camlkit.runtime.runfolder import run_folder
from camlkit.runtime.runlog import LOG_FIELDS, RunLog
from camlkit.runtime.threads import ThreadShare, thread_share
from camlkit.runtime.trained import InputSettings
from camlkit.step import StepConfig, caml_step
from camlkit.viz.curves import save_curves


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True  # as released
    torch.backends.cudnn.benchmark = False


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


class Eq1Module(nn.Module):
    """The network wrapped so that one forward is one Eq. 1 step (what DDP needs to see). With
    ``step.occ_health`` and ``health=True`` (camlkit.train passes it on the iterations it logs)
    the parts it returns hold OCC's health figures too (camlkit.diagnostics.health); any other
    step computes no figure and hooks nothing."""

    def __init__(self, net: CAMLNet, cfg: StepConfig, bank: MemoryBank | None):
        super().__init__()
        self.net, self.cfg, self.bank = net, cfg, bank
        self.health = HealthWatch() if logs_health(cfg) else None

    def forward(self, image, label, labeled_bs, iteration, slots, health=True):
        if self.health is None or not health:
            return caml_step(self.net, image, label, labeled_bs, iteration, self.cfg, self.bank, slots)
        self.health.reset()
        loss, parts = caml_step(self.net, image, label, labeled_bs, iteration, self.cfg, self.bank, slots,
                                watch=self.health)
        return loss, {**parts, **self.health.figures}


def logs_health(step: StepConfig) -> bool:
    """Whether a run logs OCC's health figures (camlkit.diagnostics.health)."""
    return step.use_occ and step.occ_health


def logged(cfg: TrainConfig, iteration: int) -> bool:
    """Whether ``iteration`` (0-based) writes a log row: every ``log_every``-th and the last."""
    done = iteration + 1
    return done % cfg.log_every == 0 or done == cfg.iterations


def log_fields(step: StepConfig) -> tuple:
    """The columns of a run's log.csv: the parts of Eq. 1, plus OCC's health when it is logged."""
    return LOG_FIELDS + (HEALTH_KEYS if logs_health(step) else ())


# ----------------------------------------------------------------------------- the run

def train(cfg: TrainConfig, resume=False, evaluate=True, overwrite=False) -> Path:
    """Train one run and evaluate its final f_v; returns the run folder.

    The logged rows go to ``log.csv`` (and TensorBoard): a notebook watches a run from there
    (camlkit.lab.watch). Everything that can be checked is checked before the first iteration
    (camlkit.runtime.preflight:
    values, device, data split, every test case the run will evaluate, --out), and the run folder
    is this run's alone while it runs (camlkit.runtime.runfolder: a lock, no overwrite of another run).
    Ctrl-C raises KeyboardInterrupt whose message says where the last checkpoint is.
    """
    cfg = cfg.resolved()
    if cfg.data is None:  # the one data-folder rule (camlkit.data.folder)
        cfg.data = str(find_data_dir())
    cfg.data = str(Path(cfg.data).resolve())  # config.json says where, whatever the working folder
    check_config(cfg)
    device = resolve_device(cfg.device)
    fast.check(cfg, device)  # --fast: CUDA only
    check_data(cfg, evaluate)
    folder = run_dir(cfg, runs_root())  # --out, else <runs root>/<preset>-<method>-...
    check_outputs(folder)
    cfg.out = str(folder)
    rank, world = distributed_context()
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        torch.cuda.set_device(device)
    # the run folder belongs to this run while it runs (camlkit.runtime.runfolder): one writer, no
    # silent overwrite of another run; under DDP rank 0 owns it for all ranks
    owner = run_folder(folder, resume=resume, overwrite=overwrite) if rank == 0 else contextlib.nullcontext()
    with owner:
        # --resume of a start that stopped before its first checkpoint starts it again (runfolder)
        resume = resume and (folder / "checkpoints" / "last.pth").is_file()
        return _run(cfg, Replica(folder, device, rank, world), resume, evaluate)


def train_iteration(module, optimizer, batch, cfg, iteration, device, layout, scaler=None):
    """One training iteration: Eq. 1 forward on ``batch``, backward, the lr of ``iteration``,
    the optimizer's update (through ``scaler``, fp16 under --fast). Returns (loss, parts); OCC's
    health figures are among the parts only on an iteration the run logs (:func:`logged`)."""
    # batch: labeled samples first; their dataset indices are their memory-bank slots
    image = batch["image"].to(device, non_blocking=True).to(memory_format=layout)
    label = batch["label"].to(device, non_blocking=True)
    slots = batch["index"][: cfg.labeled_bs].tolist()
    with fast.autocast(cfg, device):  # fp32 as released; bf16/fp16 under --amp or --fast
        loss, parts = module(image, label, cfg.labeled_bs, iteration, slots, health=logged(cfg, iteration))
    optimizer.zero_grad(set_to_none=True)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(cfg, iteration)
    fast.backward_and_update(loss, optimizer, scaler)
    return loss, parts


@dataclass
class Replica:
    """This process's share of a run: the run folder, its device, and its rank among ``world`` DDP
    processes (one replica of the network each; rank 0 writes the folder)."""
    folder: Path
    device: torch.device
    rank: int = 0
    world: int = 1

    @property
    def last(self) -> Path:
        return self.folder / "checkpoints" / "last.pth"


@dataclass
class LoopState:
    """What the loop works on: the network, its optimizer, OCC's memory bank, the Eq. 1 module
    (DDP-wrapped when ``world`` > 1), the batches, the log, and the first iteration to run."""
    net: CAMLNet
    optimizer: torch.optim.Optimizer
    bank: MemoryBank | None
    module: nn.Module
    loader: object
    log: RunLog | None
    start: int
    layout: torch.memory_format
    fingerprint: dict
    scaler: torch.amp.GradScaler | None = None  # fp16 under --fast (camlkit.runtime.fast)
    threads: ThreadShare | None = None  # CPU: the thread count follows the free CPUs (runtime.threads)


def _run(cfg, replica: Replica, resume, evaluate):
    """Set up, loop, finish: the three parts of a run, each a function of its own."""
    state = _setup(cfg, replica, resume)
    _loop(cfg, replica, state, resume)
    return _finish(cfg, replica, state.net, evaluate)


def _setup(cfg, replica: Replica, resume) -> LoopState:
    """Seeds, network, optimizer and bank (restored from last.pth on --resume), config.json, the
    Eq. 1 module and the batches from the first iteration still to run."""
    fingerprint = data_fingerprint(cfg.data)
    seed_everything(cfg.seed + replica.rank)
    scaler = fast.setup(cfg, replica.device)  # --fast: cuDNN autotuning, TF32, the fp16 scaler
    layout = fast.layout(cfg, replica.device)
    net = CAMLNet(cfg.model).to(replica.device).to(memory_format=layout)
    optimizer = make_optimizer(cfg, net)
    bank = fast.memory_bank(cfg)  # camlkit.occ's, or the fixed-shape one under --fast
    start = restore(replica.last, cfg, net, optimizer, bank, replica.device, fingerprint) if resume else 0
    if replica.rank == 0:
        (replica.folder / "checkpoints").mkdir(exist_ok=True)
        write_text(json.dumps(to_dict(cfg), indent=2) + "\n", replica.folder / "config.json")
    module = Eq1Module(net, cfg.step, bank)
    if replica.world > 1:
        module = nn.parallel.DistributedDataParallel(module, find_unused_parameters=True)
    if cfg.compile:
        net.f_v, net.f_a = torch.compile(net.f_v), torch.compile(net.f_a)
    loader = training_loader(cfg, replica.rank, replica.world, start)
    log = RunLog(replica.folder, resume, start, log_fields(cfg.step)) if replica.rank == 0 else None
    threads = thread_share(cfg.share_threads, replica.device.type, torch.get_num_threads(), torch.set_num_threads)
    return LoopState(net, optimizer, bank, module, loader, log, start, layout, fingerprint, scaler, threads)


def _loop(cfg, replica: Replica, s: LoopState, resume):
    """Iterations ``s.start`` .. ``cfg.iterations``: the step, the log every ``log_every``, an
    atomic checkpoint every ``checkpoint_every`` and at the end. Ctrl-C says what was kept."""
    last = replica.last
    nonfinite = torch.zeros((), dtype=torch.bool, device=replica.device)
    bar = _progress(cfg, replica.rank, s.start)
    saved, iteration, t0 = s.start if resume else None, s.start, time.time()
    s.net.train()
    try:
        for iteration, batch in zip(range(s.start, cfg.iterations), s.loader):
            loss, parts = train_iteration(s.module, s.optimizer, batch, cfg, iteration, replica.device,
                                          s.layout, s.scaler)
            nonfinite |= ~torch.isfinite(loss.detach())
            done = iteration + 1
            # log: log.csv, TensorBoard, the progress bar
            if logged(cfg, iteration):
                _check_finite(nonfinite, parts, iteration, last)
                row = _log_row(iteration, parts, s.optimizer, time.time() - t0)
                if s.log:
                    s.log.write(row)
                if bar is not None:
                    bar.set_postfix({k: f"{row[k]:.3f}" for k in ("L", "L_s", "l_c", "l_o")})
            if bar is not None:
                bar.update(1)
            # threads: as many as the CPUs other processes leave free (a look every 2 s)
            if s.threads is not None:
                s.threads.poll()
            # checkpoint: atomically, every checkpoint_every iterations and at the end
            if replica.rank == 0 and (done % cfg.checkpoint_every == 0 or done == cfg.iterations):
                _check_finite(nonfinite, parts, iteration, last)
                with checkpoint_write_limits_as_one_line(last, last):
                    payload = checkpoint_payload(cfg, s.net, s.optimizer, s.bank, done, s.fingerprint)
                    save_checkpoint(payload, last)
                saved = done
    except KeyboardInterrupt:
        kept = (f"the last checkpoint is {last} (iteration {saved} of {cfg.iterations})"
                if saved is not None else "no checkpoint was written yet")
        raise KeyboardInterrupt(f"stopped at iteration {iteration}; {kept}") from None
    finally:
        if bar is not None:
            bar.close()
        if s.log:
            s.log.close()


def _finish(cfg, replica: Replica, net, evaluate) -> Path:
    """model_final.pth, the end-of-run evaluation (camlkit.evaluation.final_eval) and curves.png;
    under DDP the replicas are checked to agree and only rank 0 writes."""
    folder = replica.folder
    if replica.world > 1:
        check_replicas_agree(net)
    if replica.rank != 0:
        dist.barrier()  # wait for rank 0's files, so no rank tears the group down early
        return folder
    with checkpoint_write_limits_as_one_line(folder / "model_final.pth", replica.last):
        save_inference_model(net, folder / "model_final.pth", inputs=InputSettings.of(cfg),
                             train=to_dict(cfg), split=run_split(cfg))
    summary = None
    if evaluate:
        try:
            summary = evaluate_run(cfg, net.f_v, folder)
        except CamlkitError as err:
            raise CamlkitError(evaluation_failed_message(folder, err)) from None

    save_curves(folder, folder / "curves.png", summary)
    if replica.world > 1:
        dist.barrier()
    return folder


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
    row.update({k: float(v) for k, v in parts.items() if k.startswith("occ_")})  # OCC's health
    return row
