"""Volume files for ``camlkit predict``: read an image (NIfTI, NRRD or LA HDF5) with its affine,
and write a uint8 mask as NIfTI with the input's geometry (a NIfTI input's own header: version,
qform and sform), atomically.

NRRD headers give the voxel -> world mapping as space directions and an origin, often in LPS;
NIfTI affines are RAS, so x and y are negated (``_nrrd_affine``). The raw 2018 challenge release
is NRRD (``lgemri.nrrd``); the preprocessed LA release is HDF5 without geometry (identity affine).
"""

import os
from pathlib import Path

import numpy as np

from camlkit.data import check_image, read_h5_image
from camlkit.errors import CamlkitError
from camlkit.files import atomic_path
from camlkit.limits import limit_reached


def _nrrd_affine(header):
    """Voxel -> world (RAS) 4x4 affine from an NRRD header's space directions and origin."""
    affine = np.eye(4)
    directions = header.get("space directions")
    if directions is not None:
        directions = np.asarray(directions, dtype=float)  # (3 axes, 3 world coordinates)
        affine[:3, :3] = directions.T
    elif header.get("spacings") is not None:
        affine[:3, :3] = np.diag(np.asarray(header["spacings"], dtype=float))
    if header.get("space origin") is not None:
        affine[:3, 3] = np.asarray(header["space origin"], dtype=float)
    space = str(header.get("space", "")).lower()
    if space in ("left-posterior-superior", "lps"):  # NIfTI is RAS: negate x and y
        affine[:2] *= -1
    return affine


def read_volume(path):
    """Read an image volume -> (image float32 (h, w, d), affine 4x4).

    Formats: ``.nii`` / ``.nii.gz`` (nibabel), ``.nrrd`` (pynrrd; affine from the space
    directions and origin), LA ``.h5`` (its ``image``; identity affine).
    """
    path = Path(path)
    name = path.name.lower()
    if not path.is_file():
        raise CamlkitError(f"{path}: input file not found")
    try:
        if name.endswith((".nii", ".nii.gz")):
            import nibabel

            volume = nibabel.load(str(path))
            image, affine = np.asanyarray(volume.dataobj), volume.affine
        elif name.endswith(".nrrd"):
            import nrrd

            image, header = nrrd.read(str(path))
            affine = _nrrd_affine(header)
        elif name.endswith(".h5"):
            return read_h5_image(path), np.eye(4)
        else:
            raise CamlkitError(f"{path}: unknown volume format, expected .nii, .nii.gz, .nrrd or .h5")
    except CamlkitError:
        raise
    except Exception as err:  # nibabel / pynrrd raise many kinds for damaged files
        raise CamlkitError(f"{path}: cannot read the volume ({type(err).__name__}: {err})".splitlines()[0]) from None
    if image.ndim != 3:
        raise CamlkitError(f"{path}: volume has shape {image.shape}, expected a 3-D image (not 4-D or 2-D)")
    return check_image(np.asarray(image, dtype=np.float32), path), np.asarray(affine, dtype=float)


def check_output_path(path, overwrite=True):
    """Fail before any work if the output cannot be written where asked: its folder must exist
    and be writable, the name must end in .nii or .nii.gz and must not be a folder, nor an
    existing file unless ``overwrite``."""
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise CamlkitError(f"{path}: output must be a NIfTI file ending in .nii or .nii.gz")
    if not path.parent.is_dir():
        raise CamlkitError(f"{path}: output folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise CamlkitError(f"{path}: output folder {path.parent} is not writable")
    if path.is_dir():
        raise CamlkitError(f"{path}: is a folder, expected the name of the mask file to write")
    if path.exists() and not overwrite:
        raise CamlkitError(f"{path}: exists already; pass --overwrite to replace it")
    return path


def write_mask_nifti(mask, affine, path, like=None):
    """Write a uint8 mask as NIfTI atomically (camlkit.files.atomic_path).

    ``like``: the input volume the mask was predicted from. A NIfTI input gives the mask its
    header: the same NIfTI version (a NIfTI-2 input gives a NIfTI-2 mask), the same qform and
    sform, codes and matrices as they are (a viewer that prefers the qform then places the mask
    where it places the image, even when the two forms differ), voxel sizes and units; only
    what describes the values changes (uint8, no scaling, no display range). Any other input
    (NRRD, LA .h5) gives a NIfTI-1 mask whose sform is ``affine``.
    """
    import nibabel

    path = check_output_path(path)
    suffix = ".nii.gz" if path.name.lower().endswith(".nii.gz") else ".nii"
    mask = np.asarray(mask, dtype=np.uint8)
    source = _nifti_header(like)
    if source is None:
        image = nibabel.Nifti1Image(mask, np.asarray(affine, dtype=float))
    else:
        header = source.copy()
        header["cal_min"], header["cal_max"] = 0, 0  # the input's display range means nothing here
        image_class = nibabel.Nifti2Image if isinstance(header, nibabel.Nifti2Header) else nibabel.Nifti1Image
        image = image_class(mask, None, header=header)  # forms and codes come from the header
    image.set_data_dtype(np.uint8)
    try:
        with atomic_path(path, suffix=suffix) as tmp:
            nibabel.save(image, tmp)
    except (OSError, MemoryError) as err:
        reached = limit_reached(err)
        if reached is None:
            raise
        kept = "it still holds its previous version" if path.exists() else "no mask was written"
        raise CamlkitError(f"{reached} writing {path}; {kept}") from None


def _nifti_header(path):
    """The header of a NIfTI file (read lazily, without its data), or None for any other input."""
    if path is None or not str(path).lower().endswith((".nii", ".nii.gz")):
        return None
    import nibabel

    return nibabel.load(str(path)).header
