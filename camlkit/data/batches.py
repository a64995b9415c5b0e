"""The training batches: each one a pure function of (seed, iteration), so resume is exact.

The cases of batch t come from the two-stream sampler (camlkit.data.TwoStreamBatchSampler: the
labeled samples first, as the release's sampler in ``github.com/Herschel555/CAML``,
``code/dataloaders/dataset.py``)
replayed from the seed up to t; the augmentation of sample k of batch t from a NumPy generator
seeded with (seed, t, k). A batch therefore does not depend on which worker makes it, on the
number of workers, nor on whether the run was stopped and resumed.
"""

import numpy as np
import torch

from camlkit.data import LADataset, TwoStreamBatchSampler, load_split, seed_worker, train_transform
from camlkit.errors import CamlkitError


class IterationBatches(torch.utils.data.Dataset):
    """Item t = the whole batch of iteration t: {"image": (b, 1, h, w, d), "label", "index"}."""

    def __init__(self, dataset, schedule, transform, seed):
        self.dataset, self.schedule, self.transform, self.seed = dataset, schedule, transform, seed

    def __len__(self):
        return len(self.schedule)

    def __getitem__(self, t):
        images, labels = [], []
        for k, index in enumerate(self.schedule[t]):
            image, label = self.dataset.load(index)
            rng = np.random.default_rng([self.seed, t, k])
            image, label = self.transform(image, label, rng)
            images.append(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)))
            labels.append(torch.from_numpy(np.ascontiguousarray(label)).long())
        return {"image": torch.stack(images)[:, None], "label": torch.stack(labels),
                "index": torch.tensor(self.schedule[t])}


def batch_schedule(n_labeled, n_unlabeled, cfg, n_batches):
    """The first ``n_batches`` batches of the two-stream sampler, as lists of dataset indices."""
    sampler = TwoStreamBatchSampler(
        range(n_labeled), range(n_labeled, n_labeled + n_unlabeled),
        cfg.batch_size if cfg.unlabeled_bs else cfg.labeled_bs, cfg.unlabeled_bs, seed=cfg.seed,
        restart_secondary=cfg.restart_unlabeled)
    schedule = []
    while len(schedule) < n_batches:
        schedule.extend(list(sampler))
    return schedule[:n_batches]


def training_dataset(cfg) -> LADataset:
    """The cases a run trains on, labeled first, then unlabeled (none for ``supervised``), as
    ``cfg.scale`` and ``cfg.zscore_case`` prepare them; each decoded on first access."""
    split = load_split(cfg.data, cfg.labeled, cfg.val_cases)  # validation cases never trained on
    unlabeled = split.unlabeled if cfg.unlabeled_bs else []
    if cfg.unlabeled_bs and len(unlabeled) < cfg.unlabeled_bs:
        raise CamlkitError(f"{cfg.data}: {len(unlabeled)} unlabeled cases, need {cfg.unlabeled_bs}")
    return LADataset(list(split.labeled) + list(unlabeled), scale=cfg.scale, zscore_case=cfg.zscore_case)


def training_loader(cfg, rank=0, world=1, start=0, dataset=None):
    """DataLoader yielding the batches of iterations start..cfg.iterations-1 for this rank.

    ``dataset``: :func:`training_dataset` of ``cfg`` made before (bench.bench_quick shares one
    between configs that prepare their cases alike); None: made here."""
    dataset = training_dataset(cfg) if dataset is None else dataset
    schedule = batch_schedule(cfg.labeled, len(dataset) - cfg.labeled, cfg, cfg.iterations * world)
    for index in sorted({i for batch in schedule for i in batch}):
        dataset.load(index)  # decode every case once, before workers fork
    batches = IterationBatches(dataset, schedule, train_transform(cfg.patch_size, cfg.crop_rule), cfg.seed)
    order = [t * world + rank for t in range(start, cfg.iterations)]
    return torch.utils.data.DataLoader(
        batches, batch_size=None, sampler=order, num_workers=cfg.num_workers,
        worker_init_fn=seed_worker, persistent_workers=cfg.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        generator=torch.Generator().manual_seed(cfg.seed + rank))  # leaves the global RNG alone
