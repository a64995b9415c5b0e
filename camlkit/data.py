"""The Left Atrium (LA) dataset: reading cases, the standard split, augmentation, batching.

From the paper (Sec. 3, "Implementation Details") and the released data pipeline
(``code/dataloaders/dataset.py`` and ``code/train_caml.py`` of github.com/Herschel555/CAML):

- a case is ``<data_dir>/2018LA_Seg_Training Set/<CASE>/mri_norm2.h5`` holding ``image``
  (float32, z-scored) and ``label`` (uint8, 0 background / 1 atrium);
- "N labeled" means the first N lines of ``train.list``; the other training cases are the
  unlabeled set; ``test.list`` holds the 20 test cases;
- a training batch of 4 is 2 labeled + 2 unlabeled samples, drawn by a two-stream sampler;
- augmentation: random rot90 (k in 0..3, first two axes), random flip along axis 0 or 1, then a
  random 112x112x80 crop, zero-padded first when the volume is smaller.

As released (``code/dataloaders/dataset.py`` of github.com/Herschel555/CAML), with the clean form
as an option: the random crop never uses the last offset and pads with the release's margins
(``RandomCrop(rule="release")``; "uniform" for every offset), and the unlabeled stream restarts
at every epoch (``TwoStreamBatchSampler(restart_secondary=True)``; False to carry it over).

Differences from the released code, on purpose (they change no step's arithmetic):

- decoded volumes are cached in memory (the release re-decompresses each HDF5 file for every
  sample of every iteration);
- each sample gets its own NumPy stream: ``seed_worker`` seeds every loader worker apart (the
  release seeds only Python's ``random`` per worker, so its workers share NumPy states and can
  draw identical augmentations), and camlkit's training loop seeds each sample's augmentation
  from (seed, iteration, position) so a run repeats exactly and resumes bit-identically;
- ``LADataset(scale=..., zscore_case=...)`` can resample and re-normalise each case once, for the
  CPU "quick" preset.
"""

import random
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from camlkit.errors import CamlkitError

CASES_FOLDER = "2018LA_Seg_Training Set"
CASE_FILE = "mri_norm2.h5"


# ----------------------------------------------------------------------------- reading files

def case_path(data_dir, case):
    """Where the preprocessed release keeps one case."""
    return Path(data_dir) / CASES_FOLDER / case / CASE_FILE


@contextmanager
def open_h5(path):
    """Open an HDF5 file for reading; a missing or unreadable (e.g. truncated) file is a CamlkitError."""
    path = Path(path)
    if not path.is_file():
        raise CamlkitError(f"{path}: file not found")
    try:
        handle = h5py.File(path, "r")
    except OSError as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CamlkitError(f"{path}: not a readable HDF5 file ({reason})") from None
    try:
        yield handle
    finally:
        handle.close()


def _read_key(handle, key, path):
    if key not in handle:
        raise CamlkitError(f"{path}: missing dataset '{key}' (expected keys 'image' and 'label')")
    try:
        return handle[key][()]
    except (OSError, RuntimeError) as err:  # a truncated file can open but fail on decompression
        raise CamlkitError(f"{path}: cannot read '{key}', the file looks damaged ({err})") from None


def check_image(image, path):
    """A usable image: a 3-D array of finite floats. Returns it as float32."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise CamlkitError(f"{path}: image has shape {image.shape}, expected a 3-D volume")
    if not np.issubdtype(image.dtype, np.floating):
        raise CamlkitError(f"{path}: image has dtype {image.dtype}, expected floating point")
    if not np.isfinite(image).all():
        raise CamlkitError(f"{path}: image contains NaN or infinite values")
    if image.size and image.min() == image.max():
        raise CamlkitError(f"{path}: image is constant ({image.flat[0]:g} everywhere), not a scan")
    return image.astype(np.float32, copy=False)


def read_h5_image(path):
    """Only the ``image`` of an LA HDF5 file, validated (for prediction, where there is no label)."""
    with open_h5(path) as handle:
        return check_image(_read_key(handle, "image", path), path)


def read_case(path):
    """Read and validate one LA case -> (image float32 (h, w, d), label uint8 (h, w, d))."""
    with open_h5(path) as handle:
        image = _read_key(handle, "image", path)
        label = _read_key(handle, "label", path)
    image = check_image(image, path)
    label = check_label(label, image.shape, (0, 1), path)
    return image, label.astype(np.uint8, copy=False)


def check_label(label, shape, allowed, name):
    """The label as an array, if it has ``shape`` and only the ``allowed`` values; else one line."""
    label = np.asarray(label)
    if label.shape != tuple(shape):
        raise CamlkitError(f"{name}: label shape {label.shape} differs from image shape {tuple(shape)}")
    values = np.unique(label)
    if not np.isin(values, allowed).all():
        expected = " and ".join(str(v) for v in allowed)
        raise CamlkitError(f"{name}: label has values {values.tolist()[:5]}, expected only {expected}")
    return label


# ----------------------------------------------------------------------------- the split

def read_list(path):
    """Case names from a ``*.list`` file, one per line (blank lines ignored)."""
    path = Path(path)
    if not path.is_file():
        raise CamlkitError(f"{path}: list file not found")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


@dataclass
class LASplit:
    """Case file paths of the standard split: labeled / unlabeled (from train.list) and test."""
    labeled: list
    unlabeled: list
    test: list


def load_split(data_dir, labeled):
    """The standard split: the first ``labeled`` lines of train.list are labeled, the rest unlabeled."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise CamlkitError(f"{data_dir}: data folder not found (expected the LA release layout)")
    paths = {}
    for name in ("train.list", "test.list"):
        paths[name] = []
        for case in read_list(data_dir / name):
            path = case_path(data_dir, case)
            if not path.is_file():
                raise CamlkitError(f"case {case} named in {data_dir / name} is missing: {path} not found")
            paths[name].append(path)
    train = paths["train.list"]
    if not 0 <= labeled <= len(train):  # a run's own bounds: camlkit.preflight.check_data
        raise CamlkitError(
            f"labeled={labeled}: expected 0..{len(train)}, the number of cases in {data_dir / 'train.list'}"
        )
    return LASplit(labeled=train[:labeled], unlabeled=train[labeled:], test=paths["test.list"])


# ----------------------------------------------------------------------------- resampling

def resample(volume, size, mode):
    """Resample a (c, h, w, d) tensor to spatial ``size``: mode "trilinear" or "nearest"."""
    align = False if mode == "trilinear" else None
    out = F.interpolate(volume[None].float(), size=tuple(size), mode=mode, align_corners=align)
    return out[0]  # (c, *size)


def resample_label(label, size):
    """Resample an integer (h, w, d) label map to ``size`` on the same grid as a trilinear image.

    Each class's indicator is resampled trilinearly and every voxel takes the class of largest
    weight. Nearest-neighbour resampling would instead shift the labels by half a source voxel
    against the image: LA's 20 test labels brought down to scale 0.5 and back up keep Dice 97.5
    this way against 95.9 with nearest (97.4 against 92.9 at scale 0.4).
    """
    label = torch.as_tensor(np.asarray(label)).long()
    classes = torch.arange(int(label.max()) + 1)
    onehot = (label[None] == classes[:, None, None, None]).float()  # (C, h, w, d)
    return resample(onehot, size, "trilinear").argmax(0).to(torch.uint8)


def zscore(image):
    """Per-volume z-score normalisation, as the LA preprocessing applies to every case."""
    image = np.asarray(image, dtype=np.float32)
    std = image.std()
    if std == 0:
        raise CamlkitError("image is constant: cannot z-score it")
    return ((image - image.mean()) / std).astype(np.float32)


def scaled_size(shape, scale):
    """The grid size of a volume resampled by ``scale`` (at least one voxel per axis)."""
    return tuple(max(1, round(s * scale)) for s in shape)


# ----------------------------------------------------------------------------- augmentation

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
    (camlkit.inference) both pad this way."""
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


# ----------------------------------------------------------------------------- the dataset

class LADataset(Dataset):
    """LA cases as ``{"image": (1, h, w, d) float, "label": (h, w, d) long, "case": str}``.

    Each case is decoded (and, if ``scale`` != 1, resampled: image trilinear, label by
    :func:`resample_label` on the same grid) once, on first access, then served from memory.
    ``transform(image, label)`` works on NumPy arrays.

    ``zscore_case=True`` z-scores each stored image again (not in the release). The standard LA
    files were z-scored over the whole scan *before* the crop around the atrium, so the stored
    crops differ in contrast from case to case (standard deviations 0.46 to 1.66 over the 20 test
    cases); a model trained on re-normalised crops must see its test crops the same way
    (``predict_volume(..., zscore_case=True)``, which evaluation and ``camlkit predict`` read from
    the checkpoint).
    """

    def __init__(self, paths, transform=None, scale=1.0, zscore_case=False):
        if not scale > 0:
            raise CamlkitError(f"scale={scale}: expected a positive number")
        self.paths = [Path(p) for p in paths]
        self.transform = transform
        self.scale = scale
        self.zscore_case = zscore_case
        self._cache = {}

    def __len__(self):
        return len(self.paths)

    def load(self, index):
        """The cached (image, label) NumPy pair of one case, before augmentation."""
        if index not in self._cache:
            image, label = read_case(self.paths[index])
            if self.zscore_case:
                image = zscore(image)
            if self.scale != 1.0:
                size = scaled_size(image.shape, self.scale)
                image = resample(torch.from_numpy(image)[None], size, "trilinear")[0].numpy()
                label = resample_label(label, size).numpy()
            self._cache[index] = (image, label)
        return self._cache[index]

    def __getitem__(self, index):
        image, label = self.load(index)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None],  # (1, h, w, d)
            "label": torch.from_numpy(np.ascontiguousarray(label)).long(),  # (h, w, d)
            "case": self.paths[index].parent.name,
        }


# ----------------------------------------------------------------------------- batching

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
