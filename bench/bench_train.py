"""Time the CAML training step (Eq. 1: forward, backward, SGD) per method, patch, batch, device.

    python -m bench.bench_train --preset paper --method caml --labeled 16 --iterations 3
    python -m bench.bench_train --preset quick --method caml supervised
    python -m bench.bench_train --preset quick --method caml --beside-busy [--rounds 3] [--nice 5]
    python -m bench.bench_train --versus-release [--labeled 4] [--iterations 3]

(from the repository root: bench/ is run as modules, see bench/__init__.py)

Inputs are random volumes with a blob-shaped label, so only the step is timed (no data loading);
the memory bank is filled to the size a real run holds (one slot per labeled case, each a full
patch of embeddings: bench.inputs) before timing, so OCC's draw costs what it costs in training.
Prints seconds per iteration (median of the timed iterations after one warm-up) and peak memory
(CUDA allocator peak on a GPU, the process's peak RSS on the CPU).

``--beside-busy`` answers "what happens on a shared laptop", in both directions: it times the step
in fresh processes, alone and beside one busy single-threaded torch process (a matmul loop the
bench starts and stops itself, like a notebook cell computing), back to back for ``--rounds``
rounds, with PyTorch's OpenMP defaults, camlkit's short spin, and the short spin with the fair
share of threads (camlkit.runtime.threads; ``--share-threads`` in the timing process, which prints
when its thread count changed), plus the fair share at ``--nice`` N when given (``--only`` picks
settings by name). The busy process counts its products: its rate alone (3 s before the training
starts) and during the training's timed iterations says how much the training slows it. Each
timing process starts with the machine's default thread count unless ``--threads`` is given (an
exported OMP_NUM_THREADS is not passed on). On a machine other people use, every figure is contended.

``--versus-release`` answers "is camlkit's paper step faster than the release's?" in one run, on
the real LA data (camlkit.course.find_data_dir), the ``paper`` preset, CAML, ``--labeled`` cases:
after one warm-up iteration each it times ``--iterations`` iterations, data loading included, of

* the release-equivalent loop (bench.release_loop: an HDF5 read per sample, contiguous
  tensors, the list bank pooled at every draw, bench.release_step's iteration), and
* camlkit's training iteration as ``camlkit train`` runs it (camlkit.data.batches' loader, the
  channels_last network, Eq1Module / camlkit.step, the SGD of camlkit.train),

from the same initial weights, the same cases per batch and a memory bank filled the same way
(every labeled slot a full patch of embeddings, as in training once each case has been seen).
It prints s/it of each (median), release / camlkit, the seconds camlkit spends decoding its cases
once before its first iteration (not part of s/it), and the OCC part alone: the bank update, the
draw, the heads on all agreeing unlabeled voxels, the omni-correlation and l_o, forward and
backward, run by itself ``--iterations`` times per side, alternating (median), both sides on the
same tensors: camlkit's last batch forwarded once, without gradient, outside the timer
(:func:`occ_both`; the decoder features are leaves, so the backward stops there).
``--patch-size`` / ``--n-filters`` shrink both sides; ``--workers`` sets the release loop's
loader workers (0 by default, see bench.release_loop).
"""

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]  # where ``python -m bench.bench_train`` runs

# the busy neighbour: one thread of dense matmuls, like a notebook cell computing or a second
# training beside ours; every 0.2 s it prints how many products it has done and when (the
# system-wide monotonic clock), so that its rate alone and beside the training can be read back.
# It stops by itself if the bench dies (its parent changes).
BUSY = """import os, time, torch
torch.set_num_threads(1)
a = torch.randn(384, 384)
parent = os.getppid()
print('ready', flush=True)
n, shown = 0, time.monotonic()
while os.getppid() == parent:
    a = torch.tanh(a @ a)
    n += 1
    if time.monotonic() - shown >= 0.2:
        shown = time.monotonic()
        print(n, shown, flush=True)
"""
BUSY_ALONE = 3.0  # seconds the neighbour's rate is read alone, before the training starts


def blob_labels(batch, patch, device):
    import torch

    grid = torch.stack(torch.meshgrid(*[torch.linspace(-1, 1, s, device=device) for s in patch],
                                      indexing="ij"))
    label = (grid.pow(2).sum(0) < 0.3).long()
    return label.expand(batch, *patch).contiguous()


def bench(cfg, iterations, device, share=False):
    """(median s/it, peak memory, where it was measured, the timed window on the monotonic clock,
    the thread changes of ``share``: camlkit's fair share (camlkit.runtime.threads.ThreadShare),
    looked at after every iteration as camlkit.train does)."""
    import torch

    from bench.inputs import filled_bank
    from camlkit.caml import CAMLNet
    from camlkit.runtime.threads import ThreadShare
    from camlkit.train import Eq1Module, make_optimizer

    torch.manual_seed(0)
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    net = CAMLNet(cfg.resolved().model).to(device).to(memory_format=layout).train()
    optimizer = make_optimizer(cfg, net)
    step_cfg = cfg.resolved().step
    bank = filled_bank(cfg, device) if step_cfg.use_occ else None
    module = Eq1Module(net, step_cfg, bank)
    if cfg.compile:
        net.f_v, net.f_a = torch.compile(net.f_v), torch.compile(net.f_a)
    batch = cfg.batch_size if cfg.unlabeled_bs else cfg.labeled_bs
    image = torch.randn(batch, 1, *cfg.patch_size, device=device).to(memory_format=layout)
    label = blob_labels(batch, cfg.patch_size, device)
    threads = ThreadShare(torch.get_num_threads(), torch.set_num_threads) if share else None
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
        else:
            start = time.monotonic()
        if threads is not None:
            threads.poll()
    window = (start, time.monotonic())
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
        where = "GPU"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        where = "RSS"
    return statistics.median(times), peak, where, window, threads.changes if threads else []


# ----------------------------------------------------------------------------- alone vs shared

def start_busy(out):
    """Start the single-threaded busy neighbour, its output to the file ``out``, and wait until
    it computes. Returns (the process, the monotonic time it started computing)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    busy = subprocess.Popen([sys.executable, "-c", BUSY], stdout=out, text=True, env=env)
    while "ready" not in Path(out.name).read_text():
        time.sleep(0.05)
    return busy, time.monotonic()


def busy_rate(text, since, until):
    """The neighbour's products per second between two monotonic times, from its lines."""
    seen = [(int(n), float(t)) for n, t in (line.split() for line in text.splitlines()[1:])]
    inside = [(n, t) for n, t in seen if since <= t <= until]
    (n0, t0), (n1, t1) = inside[0], inside[-1]
    return (n1 - n0) / (t1 - t0)


def time_in_child(args, setting, shared):
    """One method's step measured by a fresh process (its own OpenMP start) under ``setting``
    (environment, fair share on or off, nice level): its seconds per iteration, its thread
    changes, and when ``shared``, the busy neighbour's rate (products/s) alone just before and
    beside the training's timed iterations."""
    settings, share, nice = setting
    command = [sys.executable, "-m", "bench.bench_train", "--preset", args.preset,
               "--method", args.method[0], "--iterations", str(args.iterations), "--device", args.device]
    for flag, value in (("--labeled", args.labeled), ("--batch-size", args.batch_size),
                        ("--n-filters", args.n_filters), ("--threads", args.threads)):
        if value is not None:
            command += [flag, str(value)]
    if args.patch_size:
        command += ["--patch-size", ",".join(map(str, args.patch_size))]
    if share:
        command.append("--share-threads")
    if nice:
        command = ["nice", "-n", str(nice), *command]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    env.update(settings)
    with tempfile.NamedTemporaryFile("w+", suffix=".busy") as out:
        busy = None
        if shared:
            busy, ready = start_busy(out)
            time.sleep(BUSY_ALONE + 0.3)
        try:
            shown = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                                   check=True).stdout
        finally:
            if busy is not None:
                busy.kill()
                busy.wait()
        seconds = float(re.search(r"([0-9.]+) s/it", shown).group(1))
        since, until = map(float, re.search(r"window ([0-9.]+) ([0-9.]+)", shown).groups())
        changes = re.search(r"threads changed: (.*)", shown).group(1)
        rates = None
        if shared:
            text = Path(out.name).read_text()
            rates = busy_rate(text, ready + 0.3, ready + 0.3 + BUSY_ALONE), busy_rate(text, since, until)
    return seconds, changes, rates


def settings_to_compare(args):
    """{name: (environment settings, fair share, nice)}: PyTorch's OpenMP defaults, camlkit's
    wait policy, the policy with the fair share of threads (what ``camlkit train`` does), that
    at ``--nice`` when given, and any ``--try``."""
    from camlkit.runtime.threads import WAIT_SETTINGS, share_cpu

    # libgomp's documented default spin count, set explicitly so that no policy applies itself
    compared = {"PyTorch defaults": ({"GOMP_SPINCOUNT": "300000"}, False, 0)}
    policy = {k: v for k, v in os.environ.items() if k not in WAIT_SETTINGS}
    share_cpu(policy)
    wait = {k: policy[k] for k in WAIT_SETTINGS if k in policy}
    compared["wait policy"] = (wait, False, 0)
    compared["wait policy + fair share"] = (wait, True, 0)
    if args.nice:
        compared[f"wait + fair share, nice {args.nice}"] = (wait, True, args.nice)
    for text in args.try_settings:
        compared[text] = (dict(item.split("=", 1) for item in text.split(",")), False, 0)
    if args.only:
        compared = {name: v for name, v in compared.items() if any(part in name for part in args.only)}
    return compared


def beside_busy(args):
    print(f"{args.preset} {args.method[0]}: s/it (median of {args.iterations} after a warm-up) alone and "
          f"beside one busy single-threaded process, {args.rounds} rounds back to back; the busy "
          f"process's products/s alone ({BUSY_ALONE:.0f} s before the training starts) and beside "
          f"the training's timed iterations (a shared machine: figures are contended)", flush=True)
    results = {}
    for name, setting in settings_to_compare(args).items():
        settings, share, nice = setting
        print(f"  {name}: {' '.join(f'{k}={v}' for k, v in settings.items())}"
              f"{' fair share' if share else ''}{f' nice {nice}' if nice else ''}", flush=True)
        alone, shared, busy_alone, busy_shared = [], [], [], []
        for _ in range(args.rounds):
            alone.append(time_in_child(args, setting, shared=False)[0])
            seconds, changes, (rate_alone, rate_shared) = time_in_child(args, setting, shared=True)
            shared.append(seconds)
            busy_alone.append(rate_alone)
            busy_shared.append(rate_shared)
            print(f"  {name:32s} alone {alone[-1]:.3f}  shared {shared[-1]:.3f}  x{shared[-1] / alone[-1]:.2f}"
                  f"  | busy {rate_alone:.0f}/s -> {rate_shared:.0f}/s x{rate_alone / rate_shared:.2f}"
                  f"  | threads changed: {changes}", flush=True)
        results[name] = (statistics.median(alone), statistics.median(shared),
                         statistics.median(busy_alone), statistics.median(busy_shared))
    print("| setting | training alone, s/it | beside busy, s/it | training slowed | busy alone, /s "
          "| busy beside training, /s | busy slowed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (alone, shared, b_alone, b_shared) in results.items():
        print(f"| {name} | {alone:.3f} | {shared:.3f} | x{shared / alone:.2f} | {b_alone:.0f} | {b_shared:.0f} "
              f"| x{b_alone / b_shared:.2f} |")


# ----------------------------------------------------------------------------- versus the release

def camlkit_iterations(cfg, device, setup):
    """camlkit's training iterations as camlkit.train runs them; yield (seconds, batch).

    The same functions as ``camlkit train``: camlkit.data.batches.training_loader, the network in
    ``cfg.channels_last``'s memory format, Eq1Module (camlkit.step.caml_step), make_optimizer and
    camlkit.train.train_iteration (the body of ``_run``'s loop) without logging and checkpoints.
    ``seconds``: from the end of the previous iteration, the batch's loading included.
    ``setup`` (a dict) receives the net, its memory format, and the loader's start-up time
    ("decode": its "cases", decoded once before the first iteration).
    """
    import torch

    from bench.inputs import filled_bank
    from camlkit.caml import CAMLNet
    from camlkit.data import load_split
    from camlkit.data.batches import batch_schedule, training_loader
    from camlkit.train import Eq1Module, make_optimizer, seed_everything, train_iteration

    seed_everything(cfg.seed)
    layout = torch.channels_last_3d if cfg.channels_last else torch.contiguous_format
    net = CAMLNet(cfg.model).to(device).to(memory_format=layout)
    optimizer = make_optimizer(cfg, net)
    module = Eq1Module(net, cfg.step, filled_bank(cfg, device))
    t0 = time.perf_counter()
    batches = iter(training_loader(cfg))
    split = load_split(cfg.data, cfg.labeled)
    cases = {i for b in batch_schedule(len(split.labeled), len(split.unlabeled), cfg, cfg.iterations)
             for i in b}
    setup.update(net=net, layout=layout, decode=time.perf_counter() - t0, cases=len(cases))
    net.train()
    for iteration in range(cfg.iterations):
        start = time.perf_counter()
        batch = next(batches)
        train_iteration(module, optimizer, batch, cfg, iteration, device, layout)
        yield time.perf_counter() - start, batch


def timed_occ(run_occ, leaves):
    """Seconds of ``run_occ()`` -> l_o, forward and backward (the gradients of the ``leaves``,
    the decoder features, cleared first)."""
    for leaf in leaves:
        leaf.grad = None
    t0 = time.perf_counter()
    l_o = run_occ()
    if l_o.requires_grad:
        l_o.backward()
    return time.perf_counter() - t0


def occ_both(net, batch, cfg, layout, repeats):
    """The OCC part of each side alone, on the same tensors: ({side: median seconds}, the number
    of agreeing unlabeled voxels the heads run on).

    One real batch (camlkit's last) forwarded once by camlkit's network (train mode, no
    gradient): camlkit's OCC (update_memory + occ_part) gets the features in camlkit's memory
    format, the release's (release_step.released_occ) contiguous copies, as its own network
    gives them. Both banks start with the same full contents (bench.inputs.full_bank); the two sides
    alternate, ``repeats`` times each.
    """
    import torch

    from bench.inputs import filled_bank, full_bank
    from bench.release_step import released_occ
    from camlkit import occ
    from camlkit.step import occ_part, update_memory, voxels

    lb, step = cfg.labeled_bs, cfg.step
    image = batch["image"].to(memory_format=layout)
    label, slots = batch["label"], batch["index"][:lb].tolist()
    with torch.no_grad():
        out = net(image)
    p_v = torch.softmax(out["logits_v"].float(), dim=1)  # (b, C, h, w, d)
    p_a = torch.softmax(out["logits_a"].float(), dim=1)
    kit = {"feat_v": out["feat_v"].requires_grad_(), "feat_a": out["feat_a"].requires_grad_()}
    bank = filled_bank(cfg, image.device)
    emb_v, emb_a = (f.detach().contiguous().requires_grad_() for f in (kit["feat_v"], kit["feat_a"]))
    soft_v, soft_a = p_v.contiguous(), p_a.contiguous()
    memory = full_bank(cfg, image.device)

    def camlkit_run():
        update_memory(net, bank, kit, p_v[:lb], p_a[:lb], label[:lb], slots, step.bank_fa_rows)
        part = occ_part(net, bank, kit, p_v, p_a, lb, step)
        return part["l_o"] if part is not None else p_v.new_zeros(())

    def release_run():
        return released_occ(net, emb_v, emb_a, soft_v, soft_a, label, slots, memory, step.j,
                            step.top_i, seed=0, labeled_bs=lb)

    runs = {"release": (release_run, (emb_v, emb_a)),
            "camlkit": (camlkit_run, (kit["feat_v"], kit["feat_a"]))}
    times = {side: [] for side in runs}
    for _ in range(repeats):
        for side, (run, leaves) in runs.items():
            times[side].append(timed_occ(run, leaves))
    agree = int(occ.agreeing(voxels(p_v[lb:]), voxels(p_a[lb:])).sum())
    return {side: statistics.median(t) for side, t in times.items()}, agree


def versus_release(args):
    import gc

    import torch

    from bench.inputs import full_bank
    from bench.release_loop import release_iterations, release_network
    from camlkit.config import make_config
    from camlkit.course import find_data_dir

    if args.preset != "paper" or args.method != ["caml"]:
        raise SystemExit("--versus-release: the release's loop is the paper preset's CAML "
                         f"(got --preset {args.preset} --method {' '.join(args.method)})")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = find_data_dir()
    n = args.iterations
    cfg = make_config("paper", method="caml", labeled=args.labeled, patch_size=args.patch_size,
                      iterations=n + 1, data=str(data), device="cpu", progress=False,
                      **{"model.n_filters": args.n_filters})
    print(f"versus release: paper caml, labeled {cfg.labeled}, patch {cfg.patch_size}, filters "
          f"{cfg.model.n_filters}, {n} timed iterations after 1 warm-up each, data {data}, CPU, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()} (on a shared machine "
          f"every figure is contended)", flush=True)

    # (a) the release-equivalent loop
    net = release_network(cfg.model.n_filters, cfg.seed)
    memory = full_bank(cfg, torch.device("cpu"))
    times = []
    loop = release_iterations(data, n + 1, labeled=cfg.labeled, patch_size=cfg.patch_size, net=net,
                              memory=memory, j=cfg.step.j, top_i=cfg.step.top_i,
                              ramp=cfg.step.ramp_length, num_workers=args.workers, seed=cfg.seed)
    for seconds, batch, _ in loop:  # noqa: B007 (the last batch is used below)
        times.append(seconds)
    release = statistics.median(times[1:])
    print(f"release-equivalent loop: {release:.3f} s/it  (each: "
          f"{', '.join(f'{t:.3f}' for t in times[1:])}; warm-up {times[0]:.3f}; "
          f"{args.workers} loader workers)", flush=True)
    del net, memory, batch
    gc.collect()

    # (b) camlkit's training iteration
    setup, times = {}, []
    for seconds, batch in camlkit_iterations(cfg, torch.device("cpu"), setup):  # noqa: B007 (used below)
        times.append(seconds)
    camlkit = statistics.median(times[1:])
    print(f"camlkit train iteration: {camlkit:.3f} s/it  (each: "
          f"{', '.join(f'{t:.3f}' for t in times[1:])}; warm-up {times[0]:.3f}; "
          f"{cfg.num_workers} loader workers; its {setup['cases']} cases decoded once before the first "
          f"iteration: {setup['decode']:.3f} s, not in s/it)", flush=True)

    print(f"release / camlkit: x{release / camlkit:.2f}", flush=True)

    # (c) the OCC part alone, both sides on the same tensors
    occ_s, agree = occ_both(setup["net"], batch, cfg, setup["layout"], n)
    print(f"OCC part alone (bank update, draw, heads on all {agree} agreeing unlabeled voxels, "
          f"correlation, l_o, forward + backward), both sides on the tensors of camlkit's last "
          f"batch, median of {n} runs each:")
    for side, seconds in occ_s.items():
        print(f"OCC {side}: {seconds:.3f} s")
    print(f"OCC release / camlkit: x{occ_s['release'] / occ_s['camlkit']:.2f}")


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
    parser.add_argument("--share-threads", action="store_true",
                        help="camlkit's fair share of threads (camlkit.runtime.threads.ThreadShare) in the loop")
    parser.add_argument("--nice", type=int, default=0,
                        help="--beside-busy: also the fair share with the training at this nice level")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="--beside-busy: only the settings whose name holds one of these, e.g. 'fair share'")
    parser.add_argument("--try", dest="try_settings", action="append", default=[], metavar="K=V[,K=V]",
                        help="another OpenMP setting to compare (--beside-busy), e.g. GOMP_SPINCOUNT=10000")
    parser.add_argument("--versus-release", action="store_true",
                        help="the release-equivalent loop vs camlkit's training iteration, real LA data")
    parser.add_argument("--workers", type=int, default=0,
                        help="loader workers of the release-equivalent loop (--versus-release; "
                             "the release uses 4, 0 here: a 2-core CPU, loading timed in line)")
    args = parser.parse_args()
    if args.beside_busy:
        return beside_busy(args)
    if args.versus_release:
        return versus_release(args)

    import torch

    from camlkit.config import METHODS, make_config
    from camlkit.runtime.device import resolve_device

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    for method in args.method:
        if method not in METHODS:
            parser.error(f"--method {method}: choose from {', '.join(METHODS)}")
        cfg = make_config(args.preset, method=method, labeled=args.labeled,
                          patch_size=args.patch_size, batch_size=args.batch_size,
                          **{"model.n_filters": args.n_filters}, compile=args.compile)
        seconds, peak, where, window, changes = bench(cfg, args.iterations, device, args.share_threads)
        print(f"{cfg.preset:6s} {method:11s} labeled {cfg.labeled:2d} patch {cfg.patch_size} "
              f"batch {cfg.batch_size} filters {cfg.model.n_filters}: {seconds:.3f} s/it, "
              f"peak {where} {peak:.2f} GiB", flush=True)
        print(f"window {window[0]:.3f} {window[1]:.3f}")
        print(f"threads changed: {', '.join(f'{n} at {t:.1f} s' for t, n in changes) or 'never'}")


if __name__ == "__main__":
    main()
