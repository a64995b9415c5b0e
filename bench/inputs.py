"""Synthetic inputs the benchmarks share, so that every bench times the same work.

:func:`full_bank` is the memory bank as full as in training once every labeled case has been
seen (paper §2.3: one slot per labeled case, each a whole patch of embeddings), as the release
keeps it (a list of per-slot tensors, bench.release_step); :func:`filled_bank` puts the same
contents into camlkit's camlkit.occ.MemoryBank. Seeded: two benches, or the two sides of
``python -m bench.bench_train --versus-release``, hold the same embeddings.
"""

import torch

from camlkit.occ import MemoryBank

ATRIUM_SHARE = 0.1  # about 10 % of a patch's voxels are left atrium


def full_bank(cfg, device):
    """Per labeled slot, ``(z (n, c'), y (n,))`` for every voxel of a ``cfg.patch_size`` patch:
    random embeddings of ``cfg.model.proj_dim`` channels, about 10 % of them labeled atrium."""
    generator = torch.Generator().manual_seed(0)
    n = int(torch.tensor(cfg.patch_size).prod())
    bank = []
    for _ in range(cfg.labeled):
        z = torch.randn(n, cfg.model.proj_dim, generator=generator)
        y = (torch.rand(n, generator=generator) < ATRIUM_SHARE).long()
        bank.append((z.to(device), y.to(device)))
    return bank


def filled_bank(cfg, device, bank=None) -> MemoryBank:
    """camlkit's MemoryBank (or ``bank``, e.g. camlkit.occ_device.DeviceBank) holding
    :func:`full_bank`'s contents."""
    bank = bank if bank is not None else MemoryBank(cfg.labeled, cfg.model.proj_dim)
    for slot, (z, y) in enumerate(full_bank(cfg, device)):
        bank.update(slot, z, y)
    return bank
