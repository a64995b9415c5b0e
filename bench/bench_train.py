"""Time the CAML training step (Eq. 1: forward, backward, SGD) per method, patch, batch, device.

    python bench/bench_train.py --preset paper --method caml --labeled 16 --iterations 3
    python bench/bench_train.py --preset quick --method caml supervised
    python bench/bench_train.py --preset quick --method caml --beside-busy [--rounds 3]

Inputs are random volumes with a blob-shaped label, so only the step is timed (no data loading);
the memory bank is filled to the size a real run holds (one slot per labeled case, each a full
patch of embeddings) before timing, so OCC's draw costs what it costs in training.
Prints seconds per iteration (median of the timed iterations after one warm-up) and peak memory
(CUDA allocator peak on a GPU, the process's peak RSS on the CPU).

``--beside-busy`` answers "what happens on a shared laptop": it times the step in fresh processes,
alone and beside one busy single-threaded process (a matmul loop the bench starts and stops
itself), back to back for ``--rounds`` rounds, once with PyTorch's OpenMP defaults and once with
camlkit's CPU thread policy (camlkit.threads), and prints alone vs shared for both. Each timing
process starts with the machine's default thread count unless ``--threads`` is given (an exported
OMP_NUM_THREADS is not passed on). On a machine other people use, every figure is contended.
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

# the busy neighbour: one thread of dense matmuls, like a second kernel or training beside ours
# (it stops by itself if the bench dies: its parent changes)
BUSY = ("import os, torch\ntorch.set_num_threads(1)\na = torch.randn(384, 384)\nparent = os.getppid()\n"
        "print('ready', flush=True)\nwhile os.getppid() == parent:\n    a = torch.tanh(a @ a)\n")


def blob_labels(batch, patch, device):
    import torch

    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s, device=device) for s in patch],
                                      indexing="ij"))
    label = (grid.pow(2).sum(0) < 0.3).long()
    return label.expand(batch, *patch).contiguous()


def bench(cfg, iterations, device):
    import torch

    from camlkit.caml import CAMLNet
    from camlkit.occ import MemoryBank
    from camlkit.train import CAMLStep, make_optimizer

    torch.manual_seed(0)
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    net = CAMLNet(cfg.model_config()).to(device).to(memory_format=layout).train()
    optimizer = make_optimizer(cfg, net)
    step_cfg = cfg.step_config()
    bank = None
    if step_cfg.use_occ:
        bank = MemoryBank(cfg.labeled, cfg.proj_dim)
        n = int(torch.tensor(cfg.patch_size).prod())
        for slot in range(cfg.labeled):  # a full bank: every labeled case seen once
            bank.update(slot, torch.randn(n, cfg.proj_dim, device=device),
                        (torch.rand(n, device=device) < 0.1).long())
    module = CAMLStep(net, step_cfg, bank)
    if cfg.compile:
        net.f_v, net.f_a = torch.compile(net.f_v), torch.compile(net.f_a)
    batch = cfg.batch_size if cfg.unlabeled_bs else cfg.labeled_bs
    image = torch.randn(batch, 1, *cfg.patch_size, device=device).to(memory_format=layout)
    label = blob_labels(batch, cfg.patch_size, device)
    times = []
    for it in range(iterations + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cfg.amp and device.type == "cuda"):
            loss, _ = module(image, label, cfg.labeled_bs, 15000, list(range(cfg.labeled_bs)))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if it:  # the first iteration warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        where = "GPU"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        where = "RSS"
    return statistics.median(times), peak, where


# ----------------------------------------------------------------------------- alone vs shared

def start_busy():
    """Start the single-threaded busy neighbour and wait until it computes."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=subprocess.PIPE, text=True, env=env)
    busy.stdout.readline()  # "ready"
    time.sleep(0.5)
    return busy


def time_in_child(args, settings, shared):
    """Seconds per iteration of one method, measured by a fresh process (its own OpenMP start)
    whose environment holds ``settings``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--preset", args.preset,
               "--method", args.method[0], "--iterations", str(args.iterations), "--device", args.device]
    for flag, value in (("--labeled", args.labeled), ("--batch-size", args.batch_size),
                        ("--n-filters", args.n_filters), ("--threads", args.threads)):
        if value is not None:
            command += [flag, str(value)]
    if args.patch_size:
        command += ["--patch-size", ",".join(map(str, args.patch_size))]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(settings)
    busy = start_busy() if shared else None
    try:
        out = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    return float(re.search(r"([0-9.]+) s/it", out).group(1))


def settings_to_compare(extra):
    """{name: environment settings}: PyTorch's OpenMP defaults, camlkit's policy, and any --try."""
    from camlkit.threads import WAIT_SETTINGS, share_cpu

    # libgomp's documented default spin count, set explicitly so that no policy applies itself
    compared = {"PyTorch defaults": {"GOMP_SPINCOUNT": "300000"}}
    policy = {k: v for k, v in os.environ.items() if k not in WAIT_SETTINGS}
    share_cpu(policy)
    compared["camlkit thread policy"] = {k: policy[k] for k in WAIT_SETTINGS if k in policy}
    for text in extra:
        compared[text] = dict(item.split("=", 1) for item in text.split(","))
    return compared


def beside_busy(args):
    print(f"{args.preset} {args.method[0]}: s/it (median of {args.iterations} after a warm-up) alone and "
          f"beside one busy single-threaded process, {args.rounds} rounds back to back "
          f"(a shared machine: figures are contended)", flush=True)
    results = {}
    for name, settings in settings_to_compare(args.try_settings).items():
        print(f"  {name}: {' '.join(f'{k}={v}' for k, v in settings.items())}", flush=True)
        alone, shared = [], []
        for _ in range(args.rounds):
            alone.append(time_in_child(args, settings, shared=False))
            shared.append(time_in_child(args, settings, shared=True))
            print(f"  {name:22s} alone {alone[-1]:.3f}  shared {shared[-1]:.3f}  "
                  f"x{shared[-1] / alone[-1]:.2f}", flush=True)
        results[name] = (min(alone), statistics.median(alone), statistics.median(shared))
    print("| setting | alone, best s/it | alone, median s/it | shared, median s/it | shared / alone |")
    print("| --- | --- | --- | --- | --- |")
    for name, (best, alone, shared) in results.items():
        print(f"| {name} | {best:.3f} | {alone:.3f} | {shared:.3f} | x{shared / alone:.2f} |")


# ----------------------------------------------------------------------------- command line

def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--method", nargs="+", default=["caml"])
    parser.add_argument("--labeled", type=int, default=None)
    parser.add_argument("--patch-size", type=lambda s: tuple(int(v) for v in s.split(",")))
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--n-filters", type=int)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", default=None)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    parser.add_argument("--beside-busy", action="store_true",
                        help="alone vs beside a busy process, PyTorch defaults vs camlkit's thread policy")
    parser.add_argument("--rounds", type=int, default=3, help="alone/shared pairs per setting (--beside-busy)")
    parser.add_argument("--try", dest="try_settings", action="append", default=[], metavar="K=V[,K=V]",
                        help="another OpenMP setting to compare (--beside-busy), e.g. GOMP_SPINCOUNT=10000")
    args = parser.parse_args()
    if args.beside_busy:
        return beside_busy(args)

    import torch

    from camlkit.train import METHODS, make_config, resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for method in args.method:
        if method not in METHODS:
            parser.error(f"--method {method}: choose from {', '.join(METHODS)}")
        cfg = make_config(args.preset, method=method, labeled=args.labeled,
                          patch_size=args.patch_size, batch_size=args.batch_size,
                          n_filters=args.n_filters, compile=args.compile)
        seconds, peak, where = bench(cfg, args.iterations, device)
        print(f"{cfg.preset:6s} {method:11s} labeled {cfg.labeled:2d} patch {cfg.patch_size} "
              f"batch {cfg.batch_size} filters {cfg.n_filters}: {seconds:.3f} s/it, "
              f"peak {where} {peak:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
