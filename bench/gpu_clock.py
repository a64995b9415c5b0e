"""The paper step's clock on one GPU, with and without ``--fast``: s/it, peak memory and MFU.

    python -m bench.gpu_clock --data DIR [--compile] [--peak-tflops X]   # one GPU, ~2-4 minutes
    python -m bench.gpu_clock --smoke --device cpu --data DIR            # the same code, seconds

Rows (CAML, 4 labeled, batch 4 of real LA crops already on the device, a full memory bank,
iteration 15,000 so that every term of Eq. 1 is on), each timed through
``camlkit.train.train_iteration`` as ``camlkit train`` runs it:

* **released arithmetic**: the default (fp32 weights and activations with PyTorch's default
  TF32 convolutions, deterministic cuDNN, camlkit.occ's bank and sampling);
* **--fast**: camlkit.runtime.fast (mixed precision, channels_last_3d, cuDNN autotuning, the
  fixed-shape OCC of camlkit.occ_device); **--fast --compile** with ``--compile``.

Per row: seconds per iteration (median of ``--iterations`` after ``--warmup``), peak memory
(``torch.cuda.max_memory_allocated``), and MFU: the FLOPs of one released step
(``torch.utils.flop_counter.FlopCounterMode``: convolutions and matrix products, forward and
backward) / seconds per iteration / the device's dense peak for the row's dtype (looked up by
device name in bench.gpu_profile.PEAKS, or ``--peak-tflops``). On CUDA each row also counts
the host synchronisations of one step (``torch.cuda.set_sync_debug_mode``). Then the paper's
evaluation of one test case: camlkit's sliding window against the release's one-window loop
(bench.gpu_profile.time_evaluation). ``--smoke``: every size from the smoke preset; on a CPU
``--fast`` only swaps in the fixed-shape OCC (the bench calls the step directly: ``camlkit
train`` refuses ``--fast`` there). Writes markdown to ``$OUT/gpu_clock.md`` when ``$OUT`` is
set, else ``--out``.
"""

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from bench import gpu_profile
from bench.gpu_profile import few_case_folder, real_batches, synchronize, time_evaluation, time_steps
from bench.inputs import filled_bank
from camlkit.caml import CAMLNet
from camlkit.config import make_config
from camlkit.evaluation.inference import PATCH_SIZE, STRIDE
from camlkit.runtime import fast
from camlkit.train import Eq1Module, make_optimizer, seed_everything, train_iteration

ITERATION = 15000  # past every ramp: L_s, l_c and l_o all weigh in
ROWS = {"released arithmetic": (False, False), "--fast": (True, False), "--fast --compile": (True, True)}


# ----------------------------------------------------------------------------- helpers

def peak_flops(device, dtype_key, given_tflops=None):
    """Dense peak FLOP/s: ``given_tflops`` if passed, else looked up by the CUDA device's name."""
    return given_tflops * 1e12 if given_tflops else gpu_profile.peak_flops(device, dtype_key)


@dataclasses.dataclass
class Row:
    name: str
    s_it: float
    peak_gib: float | None
    syncs: int | None
    compile_s: float | None


def backend_flags():
    return (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)


def restore_flags(flags):
    (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
     torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) = flags


# ----------------------------------------------------------------------------- the step

def make_step(cfg, device, batches):
    """One training iteration of ``cfg`` as a function of t, over ``batches`` (as camlkit.train)."""
    seed_everything(cfg.seed)
    scaler = fast.setup(cfg, device)
    layout = fast.layout(cfg, device)
    net = CAMLNet(cfg.model).to(device).to(memory_format=layout).train()
    optimizer = make_optimizer(cfg, net)
    bank = filled_bank(cfg, device, fast.memory_bank(cfg))  # as full as in a real run
    module = Eq1Module(net, cfg.step, bank)
    if cfg.compile:
        net.f_v, net.f_a = torch.compile(net.f_v), torch.compile(net.f_a)
    labeled = cfg.labeled_bs

    def step(t):
        image, label, slots = batches[t % len(batches)]
        index = torch.tensor(slots + [0] * (image.shape[0] - labeled))  # labeled slots first
        batch = {"image": image, "label": label, "index": index}
        return train_iteration(module, optimizer, batch, cfg, ITERATION, device, layout, scaler)

    return step


def time_row(name, cfg, device, batches, warmup, timed):
    """Seconds per iteration (median), peak GiB, host syncs of one step, compile seconds."""
    flags = backend_flags()
    step = make_step(cfg, device, batches)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times, compile_s = time_steps(step, device, warmup, timed, cfg.compile)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    syncs = count_syncs(step, device) if device.type == "cuda" else None
    restore_flags(flags)
    return Row(name, statistics.median(times), peak, syncs, compile_s)


def count_syncs(step, device):
    """Host synchronisations in one step (torch.cuda.set_sync_debug_mode's warnings)."""
    synchronize(device)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(0)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def step_flops(cfg, device, batches):
    """FLOPs of one released step, forward and backward (FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode

    flags = backend_flags()
    step = make_step(dataclasses.replace(cfg, fast=False, compile=False), device, batches)
    counter = FlopCounterMode(display=False)
    with counter:
        step(0)
    restore_flags(flags)
    return counter.get_total_flops()


# ----------------------------------------------------------------------------- the report

def table(rows, flops, device, given_tflops):
    lines = ["| step | s/it | it/s | peak GiB | host syncs / step | TFLOP/s | MFU | note |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        dtype = "fp32" if device.type != "cuda" else ("bf16" if row.name.startswith("--fast") else "tf32")
        top = peak_flops(device, dtype, given_tflops)
        mfu = f"{100 * flops / row.s_it / top:.2f} % of {top / 1e12:.4g} ({dtype})" if top else \
            "n/a (pass --peak-tflops)"
        peak = f"{row.peak_gib:.2f}" if row.peak_gib is not None else "–"
        syncs = row.syncs if row.syncs is not None else "–"
        note = f"first iteration (compile) {row.compile_s:.0f} s" if row.compile_s else ""
        lines.append(f"| {row.name} | {row.s_it:.4f} | {1 / row.s_it:.2f} | {peak} | {syncs} | "
                     f"{flops / row.s_it / 1e12:.4g} | {mfu} | {note} |")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("CAMLKIT_DATA", "data/LA"))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--smoke", action="store_true", help="every size from the smoke preset")
    parser.add_argument("--compile", action="store_true", help="also the --fast --compile row")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's dense peak TFLOP/s (default: looked up by GPU name)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--iterations", type=int, default=None, help="timed iterations per row")
    parser.add_argument("--no-eval", action="store_true", help="skip the evaluation of one case")
    parser.add_argument("--out", default="gpu_clock.md", help="markdown file, when $OUT is not set")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("gpu_clock: no CUDA device (use --device cpu --smoke for a check)")
    out = Path(os.environ["OUT"]) / "gpu_clock.md" if os.environ.get("OUT") else Path(args.out)
    preset = "smoke" if args.smoke else "paper"
    cfg = make_config(preset, labeled=4, method="caml", device=str(device), progress=False)
    warmup = args.warmup if args.warmup is not None else (1 if args.smoke else 5)
    timed = args.iterations if args.iterations is not None else (2 if args.smoke else 10)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lines = [f"# camlkit paper step, with and without --fast: {name}", "",
             f"torch {torch.__version__}, CUDA {torch.version.cuda}, preset `{preset}` (CAML, 4 labeled, "
             f"batch {cfg.batch_size}, patch {cfg.patch_size}, {cfg.model.n_filters} filters), "
             f"{timed} timed iterations after {warmup} warm-up, data already on the device", ""]
    with tempfile.TemporaryDirectory() as tmp:
        folder, present = few_case_folder(args.data, tmp)
        batches, _ = real_batches(present, folder, cfg, 4, device, torch.channels_last_3d)
        flops = step_flops(cfg, device, batches)
        rows = []
        for row, (on, compiled) in ROWS.items():
            if compiled and not args.compile:
                continue
            rows.append(time_row(row, dataclasses.replace(cfg, fast=on, compile=compiled), device,
                                 batches, warmup, timed))
            print(f"{row}: {rows[-1].s_it:.4f} s/it", flush=True)
        lines += table(rows, flops, device, args.peak_tflops)
        base = rows[0].s_it
        lines += ["", f"FLOPs of one released step (forward + backward): {flops / 1e9:.4g} GFLOP; "
                      f"every row's MFU counts these FLOPs (the useful work), whatever the row executes.",
                  "Speed-up of --fast over the released arithmetic, side by side in this process: "
                  + ", ".join(f"{r.name} x{base / r.s_it:.2f}" for r in rows[1:]), ""]
        if not args.no_eval:
            patch, stride = (cfg.patch_size, cfg.eval_stride) if args.smoke else (PATCH_SIZE, STRIDE)
            filters = cfg.model.n_filters if args.smoke else 16
            camlkit_s, release_s, bad = time_evaluation(present, folder, device, patch, stride, 4, filters)
            lines += [f"Evaluation of one case ({present['test.list'][0][:8]}, patch {patch}, stride "
                      f"{stride}, f_v {filters} filters): camlkit {camlkit_s:.2f} s, the release's "
                      f"one-window loop {release_s:.2f} s (x{release_s / camlkit_s:.2f}); labels that "
                      f"differ other than at ties: {bad}", ""]
    lines.append(f"- total {time.perf_counter() - start:.0f} s")
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
