"""The two-stream batch sampler: each training batch is labeled samples first, then unlabeled ones
(paper Sec. 3: a batch of 4, "half of the images annotated"; as released in
``code/dataloaders/dataset.py`` of github.com/Herschel555/CAML), and the loader-worker seeding.
"""

import random

import numpy as np
import torch
from torch.utils.data import Sampler

from camlkit.errors import CamlkitError


class TwoStreamBatchSampler(Sampler):
    """Batches of (batch_size - secondary_batch_size) primary (labeled) indices, then secondary ones.

    The primary indices are shuffled once per epoch (an epoch is len(primary) // primary batch
    size batches, as in the release). The secondary (unlabeled) indices run through an endless
    sequence of shuffles, independent of the primary ones. ``restart_secondary=True`` (default,
    as the released sampler in ``code/dataloaders/dataset.py``) starts that sequence afresh at
    every epoch, so an epoch of 8 batches with 2 unlabeled each sees only the first 16 of a new
    shuffle and the rest of it is never used; ``False`` carries the sequence over from epoch to
    epoch, so every unlabeled case is seen once per pass. ``secondary_batch_size=0`` gives
    labeled-only batches. ``seed`` (or, if None, torch's global RNG) makes the order reproducible.
    """

    def __init__(self, primary_indices, secondary_indices, batch_size, secondary_batch_size, seed=None,
                 restart_secondary=True):
        self.primary = list(primary_indices)
        self.secondary = list(secondary_indices)
        self.primary_batch_size = batch_size - secondary_batch_size
        self.secondary_batch_size = secondary_batch_size
        self.restart_secondary = restart_secondary
        if self.primary_batch_size < 1 or secondary_batch_size < 0:
            raise CamlkitError(
                f"batch_size={batch_size}, secondary_batch_size={secondary_batch_size}: "
                "expected 0 <= secondary_batch_size < batch_size"
            )
        if len(self.primary) < self.primary_batch_size:
            raise CamlkitError(
                f"{len(self.primary)} labeled cases: expected at least {self.primary_batch_size} per batch"
            )
        if len(self.secondary) < secondary_batch_size:
            raise CamlkitError(
                f"{len(self.secondary)} unlabeled cases: expected at least {secondary_batch_size} per batch"
            )
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        primary_seed, secondary_seed = np.random.SeedSequence(seed).spawn(2)
        self.primary_rng = np.random.default_rng(primary_seed)
        self.secondary_rng = np.random.default_rng(secondary_seed)
        self._secondary_stream = self._endless(self.secondary, self.secondary_rng)

    @staticmethod
    def _endless(indices, rng):
        while True:
            yield from (indices[i] for i in rng.permutation(len(indices)))

    def __len__(self):
        return len(self.primary) // self.primary_batch_size

    def __iter__(self):
        order = [self.primary[i] for i in self.primary_rng.permutation(len(self.primary))]
        secondary = self._secondary_stream
        if self.restart_secondary:
            secondary = self._endless(self.secondary, self.secondary_rng)
        for b in range(len(self)):
            batch = order[b * self.primary_batch_size:(b + 1) * self.primary_batch_size]
            if self.secondary_batch_size:
                batch += [next(secondary) for _ in range(self.secondary_batch_size)]
            yield batch


def seed_worker(worker_id):
    """``worker_init_fn`` for DataLoader: seed NumPy and ``random`` from torch's per-worker seed.

    torch gives every worker a distinct seed (base_seed + worker_id) that follows the loader's
    generator, so workers draw different NumPy streams and a seeded run repeats exactly.
    """
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)
