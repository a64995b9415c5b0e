"""Training augmentation (paper Sec. 3, "Implementation Details", following UA-MT; as released in
``code/dataloaders/dataset.py`` of github.com/Herschel555/CAML): random rot90 (k in 0..3, first
two axes), random flip along axis 0 or 1, then a random crop (112x112x80 in the paper),
zero-padded first when the volume is smaller.

Every transform maps NumPy ``(image, label)`` to a new pair and takes an optional
``numpy.random.Generator``: camlkit's training loop passes one seeded from (seed, iteration,
position), so a run repeats exactly; without one, a generator is drawn from NumPy's global
stream (which camlkit.data.sampler.seed_worker seeds per loader worker).

The crop follows the release by default (``RandomCrop(rule="release")``: its padding margins and
a start that never takes the last offset); ``rule="uniform"`` is the clean form.
"""

from dataclasses import dataclass

import numpy as np

from camlkit.errors import CamlkitError


def _rng(rng):
    # No generator given: draw one from NumPy's global stream, which seed_worker seeds per worker.
    return rng if rng is not None else np.random.default_rng(np.random.randint(2**32, dtype=np.uint64))


class RandomRotFlip:
    """rot90 by k in 0..3 in the first two axes, then a flip along axis 0 or 1 (as the release)."""

    def __call__(self, image, label, rng=None):
        rng = _rng(rng)
        k = int(rng.integers(0, 4))
        axis = int(rng.integers(0, 2))
        image = np.flip(np.rot90(image, k, axes=(0, 1)), axis=axis)
        label = np.flip(np.rot90(label, k, axes=(0, 1)), axis=axis)
        return np.ascontiguousarray(image), np.ascontiguousarray(label)


CROP_RULES = ("release", "uniform")


@dataclass
class RandomCrop:
    """A random ``patch_size`` crop of the image and its label.

    ``rule="release"`` (default) crops as the released ``RandomCrop`` (``code/dataloaders/
    dataset.py``): when any side is not larger than the patch, every side s is zero-padded by
    max((p - s) // 2 + 3, 0) on both ends; the window's start is drawn from 0 .. s - p - 1, so the
    last offset is never used (a side exactly one voxel larger than the patch is always cropped
    at 0). No LA case is that small at full size (the smallest is 148 x 132 x 88), so the padding
    only matters for small crops. ``rule="uniform"`` pads a smaller side to exactly the patch
    (half before, half after) and draws the start from every offset 0 .. s - p.
    """
    patch_size: tuple = (112, 112, 80)
    rule: str = "release"

    def __post_init__(self):
        if self.rule not in CROP_RULES:
            raise CamlkitError(f"crop rule {self.rule!r}: choose 'release' or 'uniform'")

    def __call__(self, image, label, rng=None):
        rng = _rng(rng)
        if self.rule == "release":
            widths = _release_padding(image.shape, self.patch_size)
        else:
            widths = pad_widths(image.shape, self.patch_size)
        if any(a or b for a, b in widths):
            image = np.pad(image, widths, mode="constant", constant_values=0)
            label = np.pad(label, widths, mode="constant", constant_values=0)
        last = 0 if self.rule == "release" else 1  # released: randint(0, s - p), exclusive
        starts = [int(rng.integers(0, s - p + last)) for s, p in zip(image.shape, self.patch_size)]
        window = tuple(slice(a, a + p) for a, p in zip(starts, self.patch_size))
        return image[window], label[window]


def pad_widths(shape, patch_size):
    """Symmetric zero padding that brings each axis up to the patch size: (before, after) pairs,
    the odd voxel after. ``RandomCrop(rule="uniform")`` and the sliding window
    (camlkit.evaluation.inference) both pad this way."""
    pads = [max(p - s, 0) for s, p in zip(shape, patch_size)]
    return [(q // 2, q - q // 2) for q in pads]


def _release_padding(shape, patch_size):
    """The release's padding: all sides padded when any side is <= the patch (see RandomCrop)."""
    if not any(s <= p for s, p in zip(shape, patch_size)):
        return [(0, 0)] * len(shape)
    return [(max((p - s) // 2 + 3, 0),) * 2 for s, p in zip(shape, patch_size)]


class Compose:
    """Apply transforms in order, sharing one random generator."""

    def __init__(self, *transforms):
        self.transforms = transforms

    def __call__(self, image, label, rng=None):
        rng = _rng(rng)
        for transform in self.transforms:
            image, label = transform(image, label, rng)
        return image, label


def train_transform(patch_size=(112, 112, 80), crop_rule="release"):
    """The training augmentation of the paper / release: rot90 + flip, then a random crop."""
    return Compose(RandomRotFlip(), RandomCrop(tuple(patch_size), crop_rule))
