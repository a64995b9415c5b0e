"""From the raw 2018 Atrial Segmentation Challenge release to the preprocessed LA HDF5 files.

Raw layout: ``<RAW>/<CASE>/lgemri.nrrd`` (the LGE-MRI image) and ``<RAW>/<CASE>/laendo.nrrd``
(the left-atrium mask, 255 = atrium). Output: ``<OUT>/2018LA_Seg_Training Set/<CASE>/mri_norm2.h5``
with ``image`` (float32) and ``label`` (uint8, 0/1), gzip-compressed, as the standard release.

Steps (the preprocessing behind the standard LA files, ``data/`` of github.com/yulequan/UA-MT;
the paper, Sec. 3 "Dataset": "cropped accordingly, and then normalized to zero mean and unit
variance"):

1. label = (laendo == 255);
2. z-score the image over the **whole** volume (the released files confirm the order: their
   cropped images have a mean well above 0, e.g. 1.46, so the statistics came from the uncropped
   volume);
3. crop x and y to the label's bounding box widened by a random margin of 10 to 20 voxels on each
   side (clipped at the volume border); keep the full z range.

The margins are drawn from one seeded generator over the cases in sorted order, so a run repeats
exactly; the released files came from an unseeded run, so their crops cannot be reproduced.

Each file is written atomically (camlkit.files): an interrupted run leaves no half-written case.
Command line: ``camlkit preprocess RAW OUT`` (or ``python data_scripts/preprocess_la.py``).
"""

from pathlib import Path

import h5py
import numpy as np

from camlkit.data import CASE_FILE, CASES_FOLDER, check_image, check_label
from camlkit.errors import CamlkitError
from camlkit.files import atomic_path, clean_temps, sigterm_as_exit

MARGIN = (10, 20)  # inclusive range of the random x / y margin, in voxels


def preprocess_case(image, label, rng, name="case"):
    """(raw image, raw label with 255 = atrium) -> (z-scored cropped image float32, label uint8 0/1)."""
    image = check_image(np.asarray(image, dtype=np.float32), name)
    label = (check_label(label, image.shape, (0, 255), name) == 255).astype(np.uint8)  # 255 = atrium
    if not label.any():
        raise CamlkitError(f"{name}: the label has no atrium voxel (255), cannot crop around it")
    std = image.std()
    if std == 0:
        raise CamlkitError(f"{name}: the image is constant, cannot z-score it")
    image = ((image - image.mean()) / std).astype(np.float32)  # whole volume, before the crop

    box = []
    for axis in (0, 1):
        where = np.nonzero(label.any(axis=tuple(a for a in range(3) if a != axis)))[0]
        low = where[0] - int(rng.integers(MARGIN[0], MARGIN[1] + 1))
        high = where[-1] + 1 + int(rng.integers(MARGIN[0], MARGIN[1] + 1))
        box.append(slice(max(low, 0), min(high, image.shape[axis])))
    crop = (box[0], box[1], slice(None))
    return np.ascontiguousarray(image[crop]), np.ascontiguousarray(label[crop])


def write_case_h5(path, image, label):
    """Write ``image`` and ``label`` as gzip HDF5 through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_temps(path.parent)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image, compression="gzip")
            f.create_dataset("label", data=label, compression="gzip")


def raw_cases(raw_dir):
    """Sorted case folders of a raw release (folders holding ``lgemri.nrrd``)."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise CamlkitError(f"{raw_dir}: raw data folder not found")
    cases = sorted(p.parent for p in raw_dir.glob("*/lgemri.nrrd"))
    if not cases:
        raise CamlkitError(f"{raw_dir}: no <CASE>/lgemri.nrrd found (expected the challenge's raw layout)")
    return cases


def _read_nrrd(path):
    import nrrd

    if not path.is_file():
        raise CamlkitError(f"{path}: file not found")
    try:
        data, _ = nrrd.read(str(path))
    except Exception as err:  # pynrrd raises several kinds for damaged headers or data
        raise CamlkitError(f"{path}: cannot read NRRD ({type(err).__name__}: {err})".splitlines()[0]) from None
    if data.ndim != 3:
        raise CamlkitError(f"{path}: volume has shape {data.shape}, expected 3-D")
    return data


def preprocess_dataset(raw_dir, out_dir, seed=0, progress=True):
    """Preprocess every case of ``raw_dir`` into ``out_dir``; returns the case names."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(seed)
    names = []
    for folder in tqdm(raw_cases(raw_dir), desc="preprocess", unit="case", disable=not progress):
        image = _read_nrrd(folder / "lgemri.nrrd")
        label = _read_nrrd(folder / "laendo.nrrd")
        image, label = preprocess_case(image, label, rng, name=str(folder))
        write_case_h5(Path(out_dir) / CASES_FOLDER / folder.name / CASE_FILE, image, label)
        names.append(folder.name)
    return names


DESCRIPTION = "Raw LA challenge NRRD (<CASE>/lgemri.nrrd, laendo.nrrd) -> the standard preprocessed HDF5."


def add_arguments(parser):
    """The arguments of ``camlkit preprocess`` and ``data_scripts/preprocess_la.py``."""
    parser.add_argument("raw_dir", help="folder of <CASE>/lgemri.nrrd + laendo.nrrd")
    parser.add_argument("out_dir", help="output folder (gets '2018LA_Seg_Training Set/<CASE>/mri_norm2.h5')")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random crop margins (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def preprocess_command(args):
    """Run the preprocessing from parsed arguments; raises CamlkitError for any failure."""
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise CamlkitError(f"{out}: is an existing file, expected the output folder")
    try:
        with sigterm_as_exit():
            names = preprocess_dataset(args.raw_dir, out, args.seed, progress=not args.quiet)
    except OSError as err:  # a full disk, a folder without write permission
        raise CamlkitError(f"{out}: {err}".splitlines()[0]) from None
    print(f"wrote {len(names)} cases into {out / CASES_FOLDER}")
    return 0


def add_cli(subparsers):
    parser = subparsers.add_parser("preprocess", help="raw LA challenge NRRD files -> the preprocessed HDF5",
                                   description=DESCRIPTION + " Example: camlkit preprocess raw/ data/LA")
    add_arguments(parser)
    parser.set_defaults(func=preprocess_command)

