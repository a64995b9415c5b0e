"""The Left Atrium (LA) cases: reading them, the standard split, resampling, the Dataset.

From the paper (Sec. 3, "Implementation Details") and the released data pipeline
(``code/dataloaders/dataset.py`` and ``code/train_caml.py`` of github.com/Herschel555/CAML):

- a case is ``<data_dir>/2018LA_Seg_Training Set/<CASE>/mri_norm2.h5`` holding ``image``
  (float32, z-scored) and ``label`` (uint8, 0 background / 1 atrium);
- "N labeled" means the first N lines of ``train.list``; the other training cases are the
  unlabeled set; ``test.list`` holds the 20 test cases;
- camlkit's addition: ``val`` cases, the **last** K lines of ``train.list`` (taken from the
  unlabeled part, so the labeled cases and the test list do not change). Their labels exist in the
  release; a run with ``val_cases=K`` reads them only to score a model (``camlkit evaluate
  --split val``, ``eval_split="val"``) and leaves them out of training, so that choices are made
  without looking at the test set;
- a training batch of 4 is 2 labeled + 2 unlabeled samples, drawn by a two-stream sampler
  (camlkit.data.sampler);
- augmentation (camlkit.data.augment): random rot90 (k in 0..3, first two axes), random flip along axis 0 or 1, then a
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

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

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
    """Case file paths of the split: labeled / unlabeled / val (from train.list) and test."""
    labeled: list
    unlabeled: list
    test: list
    val: list = field(default_factory=list)


def load_split(data_dir, labeled, val=0):
    """The standard split: the first ``labeled`` lines of train.list are labeled, the rest
    unlabeled; with ``val`` = K > 0 the last K lines are validation cases instead of unlabeled."""
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
    if not 0 <= labeled <= len(train):  # a run's own bounds: camlkit.runtime.preflight.check_data
        raise CamlkitError(
            f"labeled={labeled}: expected 0..{len(train)}, the number of cases in {data_dir / 'train.list'}"
        )
    if not 0 <= val <= len(train) - labeled:
        raise CamlkitError(f"val_cases={val}: expected 0..{len(train) - labeled}, the unlabeled "
                           f"cases of {data_dir / 'train.list'} with labeled={labeled}")
    end = len(train) - val
    return LASplit(labeled=train[:labeled], unlabeled=train[labeled:end], test=paths["test.list"],
                   val=train[end:])


def case_ids(paths) -> list:
    """The case ids (folder names) of case file paths: what a run stores to name its cases."""
    return [Path(p).parent.name for p in paths]


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
    (camlkit.evaluation.inference.predict_volume with ``InputSettings(zscore_case=True)``, which
    evaluation and ``camlkit predict`` read from the checkpoint).
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
