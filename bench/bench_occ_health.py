"""What OCC's health figures cost per Eq. 1 iteration (camlkit.diagnostics.health.row_health + |grad l_o|).

    python -m bench.bench_occ_health [--repeats 20] [--step]

The health figures are computed from the rows one step already has: two softmaxes, a top-2, a few
norms; the gradient norm is read from the step's own backward by a hook on z_v and z_a. Timed on the
row and column counts of the ``mini`` preset (i = 2,000 rows per class, j = 128 prototypes per
class) and of ``paper`` (12,800 / 256), c' = 32, against the same l_o without them. ``--step`` also
times whole ``mini`` Eq. 1 iterations with and without the health watch (what a logged iteration
and any other iteration run, camlkit.train.logged), alternating (a busy machine moves both alike).
"""

import argparse
import statistics
import time

import torch

from camlkit import occ
from camlkit.diagnostics.health import HealthWatch, grad_norm_at_backward, row_health


def _rows(m, n, dim=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    z_v = torch.randn(m, dim, generator=g, requires_grad=True)
    z_a = torch.randn(m, dim, generator=g, requires_grad=True)
    z_p = torch.randn(n, dim, generator=g)
    return z_v, z_a, z_p


def time_health(m, n, repeats):
    """Median seconds of (l_o + backward) and of (l_o + health + backward) on (m, n) rows."""
    plain, health = [], []
    for k in range(repeats):
        for with_health, store in ((False, plain), (True, health)):
            z_v, z_a, z_p = _rows(m, n, seed=k)
            t0 = time.perf_counter()
            logits_v, logits_a = occ.correlation_logits(z_v, z_p), occ.correlation_logits(z_a, z_p)
            sim_v, sim_a = logits_v.softmax(1), logits_a.softmax(1)
            l_o = occ.occ_loss(sim_v, sim_a)
            if with_health:
                row_health(sim_v, sim_a, logits_v, logits_a, z_v, z_a, z_p)
                norm = grad_norm_at_backward(l_o, 0.05, z_v, z_a)
            l_o.backward()
            if with_health:
                float(norm)
            store.append(time.perf_counter() - t0)
    return statistics.median(plain), statistics.median(health)


def time_steps(repeats):
    """Median seconds of a mini Eq. 1 iteration with occ_health off / on, alternating."""
    from camlkit.caml import CAMLNet
    from camlkit.config import make_config
    from camlkit.step import caml_step

    cfg = make_config("mini")
    net = CAMLNet(cfg.model).train()
    bank = occ.MemoryBank(cfg.labeled, cfg.model.proj_dim)
    bank.update(0, torch.randn(20000, cfg.model.proj_dim), (torch.rand(20000) < 0.2).long())
    torch.manual_seed(0)
    image = torch.randn(4, 1, *cfg.patch_size)
    label = (torch.rand(4, *cfg.patch_size) < 0.2).long()
    times = {False: [], True: []}
    for _ in range(repeats):
        for on in (False, True):
            step = cfg.step
            watch = HealthWatch() if on else None  # what camlkit.train's Eq1Module gives a logged iteration
            t0 = time.perf_counter()
            loss, _ = caml_step(net, image, label, 2, step.warmup + 500, step, bank, [1, 2], watch=watch)
            loss.backward()
            net.zero_grad(set_to_none=True)
            times[on].append(time.perf_counter() - t0)
    return statistics.median(times[False]), statistics.median(times[True])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--step", action="store_true", help="also time whole mini Eq. 1 iterations")
    args = parser.parse_args(argv)
    for name, rows, cols in (("mini", 2 * 2000, 2 * 128), ("paper", 2 * 12800, 2 * 256)):
        plain, health = time_health(rows, cols, args.repeats)
        print(f"{name:5s} rows {rows:6d} x {cols:4d} prototypes: l_o + backward {plain * 1e3:7.1f} ms, "
              f"with health {health * 1e3:7.1f} ms (+{(health - plain) * 1e3:.1f} ms)", flush=True)
    if args.step:
        off, on = time_steps(args.repeats)
        print(f"mini Eq. 1 iteration (fwd + bwd): health off {off:.3f} s, on {on:.3f} s "
              f"(+{(on - off) * 1e3:.0f} ms, {100 * (on - off) / off:+.1f} %)", flush=True)


if __name__ == "__main__":
    main()
