"""GPU profile, ready to run: does the CUDA path work, and how fast is the paper's step there?

    python -m bench.gpu_profile --data data/LA_few [--out profile.md]      # one GPU, ~4 minutes
    python -m bench.gpu_profile --smoke --data data/LA --device cpu  # the same code in seconds

1. **CUDA path**: a smoke-preset training of 4 iterations, resumed to 6 (``camlkit.train.train``
   with ``resume=True``), then the final evaluation on one test case; and, for information, the
   largest weight difference from an uninterrupted 6-iteration run.
2. **The paper's step** (CAML, 4 labeled, batch 4 of real 112x112x80 LA crops already on the
   device, a full memory bank; ``camlkit.step.caml_step`` called as ``camlkit.train`` calls it,
   with train.py's cuDNN settings): seconds per iteration and peak memory in fp32, TF32, bf16
   autocast, bf16 with cuDNN autotuning, and bf16 with ``torch.compile`` (f_v and f_a, as
   ``--compile`` does); a few timed iterations after a warm-up. The data loading of one batch
   (augmentation on the host, ``num_workers=0``) is timed on its own.
3. **MFU**: FLOPs of one step (forward + backward, ``torch.utils.flop_counter.FlopCounterMode``)
   / seconds per iteration / the GPU's dense peak for that dtype.
4. **Evaluation per case**: the paper's protocol (112x112x80, stride 18/18/4) on one test case,
   f_v (16 filters, random weights: the time does not depend on them), camlkit's
   ``sliding_window_predict`` and the release's one-window-at-a-time loop.

Prints a markdown table and writes it to ``$OUT/gpu_profile.md`` when ``$OUT`` is set, else to
``--out``. ``--data`` may hold only a few cases (at least 6 of train.list and 1 of test.list):
the profile runs on those that are there. ``--budget`` seconds: rows that would not fit are
skipped and say so. ``--smoke`` runs everything at the smoke preset's size (CPU: seconds;
torch.compile is skipped unless ``--compile``).
"""

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from bench.bench_evaluate import label_check, release_predict
from bench.inputs import filled_bank
from camlkit.caml import CAMLNet
from camlkit.config import make_config
from camlkit.data import case_path, read_case, read_list, train_transform
from camlkit.evaluation.inference import PATCH_SIZE, STRIDE, sliding_window_predict
from camlkit.step import caml_step
from camlkit.train import make_optimizer, seed_everything, train
from camlkit.vnet import VNet

# dense peak TFLOP/s per dtype (NVIDIA data sheets; SXM unless the name says PCIe)
PEAKS = {
    "H100 PCIe": {"fp32": 51.2, "tf32": 378.0, "bf16": 756.0},
    "H100": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
    "H200": {"fp32": 66.9, "tf32": 494.7, "bf16": 989.4},
    "A100": {"fp32": 19.5, "tf32": 156.0, "bf16": 312.0},
}

# row name -> (TF32 allowed, bf16 autocast, cuDNN autotuning, torch.compile)
MODES = {
    "fp32": (False, False, False, False),
    "TF32": (True, False, False, False),
    "bf16 autocast": (True, True, False, False),
    "bf16 + cudnn.benchmark": (True, True, True, False),
    "bf16 + torch.compile": (True, True, False, True),
}


# ----------------------------------------------------------------------------- helpers

def peak_flops(device, dtype_key):
    """The device's dense peak FLOP/s for "fp32" / "tf32" / "bf16", or None if unknown."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAKS.items():  # "H100 PCIe" before "H100"
        if key in name:
            return peaks[dtype_key] * 1e12
    return None


def few_case_folder(data, tmp):
    """A data folder listing only the cases present in ``data`` (symlinks), so that a partial copy works."""
    data = Path(data)
    folder = Path(tmp) / "LA"
    present = {}
    for name in ("train.list", "test.list"):
        cases = [c for c in read_list(data / name) if case_path(data, c).is_file()]
        present[name] = cases
        for case in cases:
            target = case_path(folder, case)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(case_path(data, case).resolve())
        (folder / name).write_text("".join(c + "\n" for c in cases))
    if len(present["train.list"]) < 6 or not present["test.list"]:
        raise SystemExit(f"gpu_profile: {data} holds {len(present['train.list'])} train and "
                         f"{len(present['test.list'])} test cases; need at least 6 and 1")
    return folder, present


def allow_missing_tensorboard():
    """camlkit.train logs TensorBoard scalars; without the package, a no-op writer stands in."""
    try:
        import torch.utils.tensorboard  # noqa: F401
        return None
    except ImportError:
        shim = types.ModuleType("torch.utils.tensorboard")

        class SummaryWriter:
            def __init__(self, *args, **kwargs):
                pass

            def add_scalar(self, *args, **kwargs):
                pass

            def close(self):
                pass

        shim.SummaryWriter = SummaryWriter
        sys.modules["torch.utils.tensorboard"] = shim
        return "tensorboard is not installed: train() ran with a no-op SummaryWriter"


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ----------------------------------------------------------------------------- 1. the CUDA path

def time_steps(one_step, device, warmup, timed, compiled=False):
    """Run ``one_step(t)`` for ``warmup + timed`` steps, each between two device synchronisations.
    Returns (seconds of each timed step, seconds of the first step when ``compiled`` else None)."""
    times, compile_s = [], None
    for t in range(warmup + timed):
        synchronize(device)
        t0 = time.perf_counter()
        one_step(t)
        synchronize(device)
        if t == 0 and compiled:
            compile_s = time.perf_counter() - t0
        if t >= warmup:
            times.append(time.perf_counter() - t0)
    return times, compile_s


def check_training_path(folder, device, tmp):
    """Smoke train 4 iterations, resume to 6, evaluate one case; compare with a straight 6."""
    base = make_config("smoke", device=str(device), data=str(folder), eval_cases=1, progress=False)
    t0 = time.perf_counter()
    first = dataclasses.replace(base, iterations=4, out=str(Path(tmp) / "resumed"))
    train(first, evaluate=False)
    run = train(dataclasses.replace(first, iterations=6), resume=True)
    seconds = time.perf_counter() - t0
    summary = (run / "summary.json").read_text()
    straight = train(dataclasses.replace(base, iterations=6, out=str(Path(tmp) / "straight")), evaluate=False)
    a = torch.load(run / "checkpoints" / "last.pth", map_location="cpu", weights_only=False)["model"]
    b = torch.load(straight / "checkpoints" / "last.pth", map_location="cpu", weights_only=False)["model"]
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    import json

    dice = json.loads(summary)["dice"][0]
    return seconds, dice, diff


# ----------------------------------------------------------------------------- 2. the paper's step

def real_batches(present, data, cfg, count, device, layout):
    """``count`` batches of real crops (labeled cases first), on the device, and host seconds per batch."""
    labeled = [read_case(case_path(data, c)) for c in present["train.list"][: cfg.labeled]]
    unlabeled = [read_case(case_path(data, c)) for c in present["train.list"][cfg.labeled:]]
    transform = train_transform(cfg.patch_size)
    rng = np.random.default_rng(cfg.seed)
    batches, seconds = [], []
    for t in range(count):
        t0 = time.perf_counter()
        cases = [labeled[(2 * t + k) % len(labeled)] for k in range(cfg.labeled_bs)]
        cases += [unlabeled[(2 * t + k) % len(unlabeled)] for k in range(cfg.batch_size - cfg.labeled_bs)]
        crops = [transform(image, label, rng) for image, label in cases]
        image = torch.from_numpy(np.stack([c[0] for c in crops]))[:, None].float()
        label = torch.from_numpy(np.stack([c[1] for c in crops])).long()
        seconds.append(time.perf_counter() - t0)
        slots = [(2 * t + k) % len(labeled) for k in range(cfg.labeled_bs)]
        batches.append((image.to(device).to(memory_format=layout), label.to(device), slots))
    return batches, statistics.median(seconds)


def set_precision(tf32, benchmark):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = benchmark
    torch.backends.cudnn.deterministic = not benchmark  # train.py: deterministic, as released


def time_step(cfg, batches, device, mode, warmup, timed, count_flops=False):
    """Seconds per iteration (median), peak GiB, compile seconds, and FLOPs of one step if asked."""
    tf32, amp, benchmark, compiled = MODES[mode]
    seed_everything(cfg.seed)
    set_precision(tf32, benchmark)
    layout = torch.channels_last_3d
    net = CAMLNet(cfg.resolved().model).to(device).to(memory_format=layout).train()
    optimizer = make_optimizer(cfg, net)
    step_cfg = cfg.resolved().step
    bank = filled_bank(cfg, device)  # as full as in a real run
    if compiled:
        net.f_v, net.f_a = torch.compile(net.f_v), torch.compile(net.f_a)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)

    def one_step(t):
        image, label, slots = batches[t % len(batches)]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss, _ = caml_step(net, image, label, cfg.labeled_bs, 15000, step_cfg, bank, slots)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times, compile_s = time_steps(one_step, device, warmup, timed, compiled)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    flops = None
    if count_flops:
        from torch.utils.flop_counter import FlopCounterMode

        counter = FlopCounterMode(display=False)
        with counter:
            one_step(0)
        flops = counter.get_total_flops()
    set_precision(False, False)
    return statistics.median(times), peak, compile_s, flops


# ----------------------------------------------------------------------------- 4. evaluation

def time_evaluation(present, data, device, patch, stride, batch_size, n_filters):
    """Seconds of camlkit's and the release's protocol on the first test case, and the voxels
    whose labels differ where the release's probability is not a tie (must be 0)."""
    torch.manual_seed(0)
    net = VNet(n_filters=n_filters).to(device).eval()
    image, _ = read_case(case_path(data, present["test.list"][0]))
    with torch.no_grad():  # warm-up
        net(torch.zeros(1, 1, *patch, device=device))
    sliding_window_predict(net, np.zeros(patch, np.float32), patch, stride, batch_size)
    synchronize(device)
    t0 = time.perf_counter()
    label, _ = sliding_window_predict(net, image, patch, stride, batch_size)
    camlkit_s = time.perf_counter() - t0
    t0 = time.perf_counter()  # the release's loop: .cuda() per window, NumPy accumulation
    release_label, release_prob = release_predict_on(net, image, patch, stride, device, release_predict)
    release_s = time.perf_counter() - t0
    return camlkit_s, release_s, label_check(release_label, release_prob, label)[1]


def release_predict_on(net, image, patch, stride, device, release_predict):
    """The release's loop with its input moved to the network's device, as its ``.cuda()`` does."""
    class OnDevice(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.to(device))

    return release_predict(OnDevice(net), image, patch, stride[0], stride[2])


# ----------------------------------------------------------------------------- the report

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CAMLKIT_DATA", "data/LA"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="everything at the smoke preset's size")
    parser.add_argument("--compile", action="store_true", help="with --smoke: also the torch.compile row")
    parser.add_argument("--out", default="gpu_profile.md", help="markdown file, when $OUT is not set")
    parser.add_argument("--budget", type=float, default=230.0, help="seconds for the whole profile")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations per row")
    args = parser.parse_args()
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_profile: no CUDA device (use --device cpu --smoke for a check)")
    out = Path(os.environ["OUT"]) / "gpu_profile.md" if os.environ.get("OUT") else Path(args.out)
    preset = "smoke" if args.smoke else "paper"
    cfg = make_config(preset, labeled=4, method="caml", device=str(device))
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 3)
    timed = args.iterations if args.iterations is not None else (2 if args.smoke else 5)
    patch, stride = (cfg.patch_size, cfg.eval_stride) if args.smoke else (PATCH_SIZE, STRIDE)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"# camlkit GPU profile: {name}", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}, preset `{preset}` (CAML, 4 labeled, "
             f"batch {cfg.batch_size}, patch {cfg.patch_size}, {cfg.model.n_filters} filters), "
             f"{timed} timed iterations after {warmup} warm-up, data already on the device", ""]
    notes = []

    def left():
        return args.budget - (time.perf_counter() - start)

    with tempfile.TemporaryDirectory() as tmp:
        folder, present = few_case_folder(args.data, tmp)
        note = allow_missing_tensorboard()
        if note:
            notes.append(note)
        seconds, dice, diff = check_training_path(folder, device, tmp)
        lines += ["| check | result |", "| --- | --- |",
                  f"| smoke train 4 it + resume to 6 + evaluation of 1 case on {device.type} | ok, "
                  f"{seconds:.1f} s, Dice {dice:.3f} |",
                  f"| resumed vs straight 6 iterations, max abs weight difference | {diff:.2e} |",
                  f"| cases present in {args.data} | {len(present['train.list'])} train, "
                  f"{len(present['test.list'])} test |", ""]
        print("\n".join(lines), flush=True)

        layout = torch.channels_last_3d
        batches, host_s = real_batches(present, folder, cfg, 4, device, layout)
        rows = ["| step | s/it | it/s | peak GiB | TFLOP/s | MFU | note |",
                "| --- | --- | --- | --- | --- | --- | --- |"]
        flops = None

        def step_row(mode):
            nonlocal flops
            compiled = MODES[mode][3]
            if compiled and args.smoke and not args.compile:
                return f"| {mode} | – | – | – | – | – | skipped (--smoke without --compile) |"
            need = 80 if compiled else 15
            if left() < need:
                return f"| {mode} | – | – | – | – | – | skipped: {left():.0f} s of the budget left |"
            s_it, peak, compile_s, counted = time_step(cfg, batches, device, mode, warmup, timed,
                                                       count_flops=flops is None)
            flops = flops or counted
            dtype = "bf16" if MODES[mode][1] else ("tf32" if MODES[mode][0] else "fp32")
            top = peak_flops(device, dtype)
            mfu = f"{100 * flops / s_it / top:.1f} % of {top / 1e12:.0f} ({dtype})" if top else "n/a"
            note = f"first iteration (compile) {compile_s:.0f} s" if compile_s else ""
            peak_text = f"{peak:.1f}" if peak is not None else "–"
            return (f"| {mode} | {s_it:.3f} | {1 / s_it:.2f} | {peak_text} | {flops / s_it / 1e12:.3g} "
                    f"| {mfu} | {note} |")

        # the step in fp32, TF32 and bf16 first, then the evaluation (while time is left), then
        # compile and autotuning (slow to start): a run cut short still has the plain step's rows
        for mode in ("fp32", "TF32", "bf16 autocast"):
            rows.append(step_row(mode))
            print(rows[-1], flush=True)
        evaluation = "Evaluation: skipped (time budget)"
        if left() > 10:
            filters = cfg.model.n_filters if args.smoke else 16
            camlkit_s, release_s, bad = time_evaluation(present, folder, device, patch, stride, 4, filters)
            evaluation = (f"Evaluation of case {present['test.list'][0][:8]} (patch {patch}, stride {stride}, "
                          f"f_v {filters} filters, random weights, torch's default precision): camlkit "
                          f"{camlkit_s:.2f} s, the release's one-window loop {release_s:.2f} s "
                          f"(x{release_s / camlkit_s:.2f}); labels that differ other than at ties: {bad}")
            print(evaluation, flush=True)
        for mode in ("bf16 + torch.compile", "bf16 + cudnn.benchmark"):
            rows.append(step_row(mode))
            print(rows[-1], flush=True)
        rows.append(f"| one batch of data on the host (augmentation, num_workers 0) | {host_s:.3f} | | | | | |")
        lines += rows + ["", f"FLOPs of one step (forward + backward): {flops / 1e9:.4g} GFLOP "
                             f"(FlopCounterMode: convolutions and matrix products); MFU against the "
                             f"dense peak of the row's dtype", "", evaluation, ""]
    lines += [f"- {n}" for n in notes]
    lines.append(f"- total {time.perf_counter() - start:.0f} s")
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
