"""Time OCC's memory-bank draw against the size of the bank (paper configuration).

    python -m bench.bench_occ

Each labeled case fills one slot with the embeddings of a whole 112x112x80 patch (c' = 32; about
10 % foreground), then j = 256 prototypes per class are drawn. The released code concatenates the
whole bank at every draw (0.8 / 2.4 / 4.4 s per iteration at 4 / 8 / 16 labeled on a 2-core CPU);
camlkit's draw indexes into the bank, so its cost should not grow with the number of slots.
"""

import statistics
import time

import torch

from camlkit.occ import MemoryBank


def main(patch=(112, 112, 80), dim=32, j=256, repeats=20):
    n = patch[0] * patch[1] * patch[2]
    for labeled in (4, 8, 16):
        torch.manual_seed(0)
        bank = MemoryBank(labeled, dim)
        z, y = torch.randn(n, dim), (torch.rand(n) < 0.1).long()
        t0 = time.perf_counter()
        for slot in range(labeled):
            bank.update(slot, z, y)
        fill = (time.perf_counter() - t0) / labeled
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            bank.sample(j)
            times.append(time.perf_counter() - t0)
        print(f"{labeled:2d} slots ({labeled * n / 1e6:.1f} M embeddings): draw "
              f"{statistics.median(times) * 1e3:.2f} ms (median of {repeats}), "
              f"slot update {fill * 1e3:.0f} ms", flush=True)


if __name__ == "__main__":
    main()
