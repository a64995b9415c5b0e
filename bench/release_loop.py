"""A release-equivalent training loop for the ``paper`` configuration, to time camlkit against.

What the authors' loop does at every iteration (github.com/Herschel555/CAML: ``code/train_caml.py``,
``code/dataloaders/dataset.py``, ``code/utils/feature_memory.py``), done the same way here:

* **data**: the ``LAHeart`` dataset opens the case's ``mri_norm2.h5`` and decompresses image and
  label for every sample of every batch; ``RandomRotFlip`` (rot90 by k in 0..3 in the first two
  axes, a flip along axis 0 or 1) and ``RandomCrop`` (112x112x80, zero-padded when a side is not
  larger, the last offset never drawn) in NumPy, then ``ToTensor`` (image (1, h, w, d) float32,
  label long). camlkit.data.augment's transforms with the release's crop rule are that augmentation
  (the same arithmetic), and camlkit.data.sampler's two-stream sampler with
  ``restart_secondary=True`` is the release's: 2 labeled + 2 unlabeled per batch, the labeled
  cases shuffled once per epoch (an epoch is labeled // 2 batches), the unlabeled ones an
  endless shuffle started afresh at every epoch, as the release's loader is iterated afresh;
* **loader**: the release passes ``num_workers=4, pin_memory=True``. Here ``num_workers`` is 0
  by default: on a 2-core CPU four decoding processes only compete with the step's own threads,
  and with no workers every millisecond of loading lands in the timed wall time, which is what
  "data loading included" means. ``num_workers=4`` is the release's setting (its workers start
  again at every epoch, as the release's do: every 2 iterations at 4 labeled). Pinned memory
  only where CUDA is available;
* **network**: ``CAML3d_v1`` is camlkit's ``CAMLNet()`` at the released sizes (same blocks, same
  parameter count), in PyTorch's default contiguous memory format, fp32, train mode;
* **memory bank**: a Python list with one entry per labeled case, pooled with ``torch.cat`` at
  every draw (bench.release_step);
* **step**: ``released_iteration`` (bench.release_step) with the real ramp (40 epochs at 4
  labeled), then ``zero_grad``, ``backward``, ``step`` of SGD (lr 0.01, momentum 0.9, weight
  decay 1e-4).

Nothing here is camlkit's training path (no cached volumes, no channels_last, no index-drawn
bank, no batched-per-iteration dataset): that is the point of the comparison.
"""

import random
import time
from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.release_step import MEMORY_J, TOP_I, released_iteration
from camlkit.caml import CAMLNet
from camlkit.data import case_path, read_list
from camlkit.data.augment import train_transform
from camlkit.data.sampler import TwoStreamBatchSampler
from camlkit.ramps import ramp_length


class ReleaseLAHeart(Dataset):
    """The training cases of ``train.list`` as the release serves them: each item read from its
    HDF5 file anew, augmented, as {"image": (1, h, w, d) float32, "label": (h, w, d) long, "idx"}."""

    def __init__(self, data_dir, patch_size=(112, 112, 80)):
        self.data_dir = Path(data_dir)
        self.cases = read_list(self.data_dir / "train.list")
        self.transform = train_transform(tuple(patch_size), "release")

    def __len__(self):
        return len(self.cases)

    def __getitem__(self, idx):
        with h5py.File(case_path(self.data_dir, self.cases[idx]), "r") as h5:
            image, label = h5["image"][:], h5["label"][:]  # decompressed for every sample
        image, label = self.transform(image, label)  # NumPy's global stream, as released
        image = image.reshape(1, *image.shape).astype(np.float32)
        return {"image": torch.from_numpy(image), "label": torch.from_numpy(label).long(), "idx": idx}


def release_loader(data_dir, labeled=4, patch_size=(112, 112, 80), num_workers=0, seed=3407):
    """The release's DataLoader: batches of 2 labeled (indices 0..labeled-1) + 2 unlabeled cases."""
    dataset = ReleaseLAHeart(data_dir, patch_size)
    sampler = TwoStreamBatchSampler(range(labeled), range(labeled, len(dataset)), 4, 2, seed=seed,
                                    restart_secondary=True)
    return DataLoader(dataset, batch_sampler=sampler, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())


def release_network(n_filters=16, seed=3407, device="cpu"):
    """CAML3d_v1: camlkit's CAMLNet at the given width, contiguous memory format, fp32, train mode."""
    torch.manual_seed(seed)
    return CAMLNet(n_filters=n_filters).to(device).train()


def release_iterations(data_dir, iterations, labeled=4, patch_size=(112, 112, 80), net=None,
                       memory=None, j=MEMORY_J, top_i=TOP_I, ramp=None, num_workers=0, seed=3407,
                       device="cpu"):
    """Run ``iterations`` release-equivalent iterations; yield (seconds, batch, parts) for each.

    ``seconds`` is the iteration's wall time from the end of the previous one: the batch's
    loading (and, at an epoch's start, the loader's start), forward, backward and the SGD update.
    ``net``: a CAMLNet (default :func:`release_network`); ``memory``: the release's bank, one
    entry per labeled case (default all empty); ``ramp``: R in epochs (default by labeled count).
    """
    np.random.seed(seed % 2**32)  # the release seeds NumPy's and Python's global streams
    random.seed(seed)
    net = release_network(seed=seed, device=device) if net is None else net
    memory = [None] * labeled if memory is None else memory
    ramp = ramp_length(labeled) if ramp is None else ramp
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    loader = release_loader(data_dir, labeled, patch_size, num_workers, seed)
    iteration = 0
    while True:
        start = time.perf_counter()
        for batch in loader:  # one epoch; the loader starts afresh at every epoch, as released
            net.train()
            image, label = batch["image"].to(device), batch["label"].to(device)
            loss, parts = released_iteration(net, image, label, batch["idx"][:2].tolist(), memory,
                                             j, top_i, iteration, ramp,
                                             seed=random.getrandbits(32))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seconds = time.perf_counter() - start
            yield seconds, batch, parts
            iteration += 1
            if iteration == iterations:
                return
            start = time.perf_counter()
