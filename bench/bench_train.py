"""Time the CAML training step (Eq. 1: forward, backward, SGD) per method, patch, batch, device.

    python bench/bench_train.py --preset paper --method caml --labeled 16 --iterations 3
    python bench/bench_train.py --preset quick --method caml supervised

Inputs are random volumes with a blob-shaped label, so only the step is timed (no data loading);
the memory bank is filled to the size a real run holds (one slot per labeled case, each a full
patch of embeddings) before timing, so OCC's draw costs what it costs in training.
Prints seconds per iteration (median of the timed iterations after one warm-up) and peak memory
(CUDA allocator peak on a GPU, the process's peak RSS on the CPU).
"""

import argparse
import resource
import statistics
import time

import torch

from camlkit.caml import CAMLNet
from camlkit.occ import MemoryBank
from camlkit.train import METHODS, make_config, make_optimizer, resolve_device
from camlkit.train import CAMLStep


def blob_labels(batch, patch, device):
    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s, device=device) for s in patch],
                                      indexing="ij"))
    label = (grid.pow(2).sum(0) < 0.3).long()
    return label.expand(batch, *patch).contiguous()


def bench(cfg, iterations, device):
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--method", nargs="+", default=["caml"], choices=METHODS)
    parser.add_argument("--labeled", type=int, default=None)
    parser.add_argument("--patch-size", type=lambda s: tuple(int(v) for v in s.split(",")))
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--n-filters", type=int)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", default=None)
    parser.add_argument("--threads", type=int, help="torch.set_num_threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for method in args.method:
        cfg = make_config(args.preset, method=method, labeled=args.labeled,
                          patch_size=args.patch_size, batch_size=args.batch_size,
                          n_filters=args.n_filters, compile=args.compile)
        seconds, peak, where = bench(cfg, args.iterations, device)
        print(f"{cfg.preset:6s} {method:11s} labeled {cfg.labeled:2d} patch {cfg.patch_size} "
              f"batch {cfg.batch_size} filters {cfg.n_filters}: {seconds:.3f} s/it, "
              f"peak {where} {peak:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()
