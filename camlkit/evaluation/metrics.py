"""Segmentation metrics of the paper's Table 1: Dice, Jaccard, 95HD, ASD (the paper, Sec. 3
"Quantitative Evaluation and Comparison").

The release computes them (``code/utils/test_patch.py`` of github.com/Herschel555/CAML) per case,
on the binary foreground, in voxel units, with the ``medpy`` package (``medpy.metric.binary``:
``dc``, ``jc``, ``hd95``, ``asd``). This module reimplements exactly those definitions with SciPy,
so the package does not need medpy at run time (the tests check the two agree):

- surface of a mask = mask XOR its binary erosion by the 3-D cross (connectivity 1), with
  voxels outside the volume counted as background;
- the distance of each surface voxel of A to B = Euclidean distance transform of the complement
  of B's surface, read at A's surface voxels;
- hd95 = 95th percentile of both directed sets (A->B and B->A) pooled together;
- asd = mean of the prediction -> ground truth distances only (medpy's ``asd`` is directed).

Dice and Jaccard are returned as fractions in [0, 1]; the paper prints them in %.
"""

import warnings

import numpy as np
from scipy.ndimage import binary_erosion, distance_transform_edt, generate_binary_structure

from camlkit.errors import CamlkitError


def _binary(mask):
    return np.atleast_1d(np.asarray(mask).astype(bool))


def dice(pred, gt):
    """2 |P & G| / (|P| + |G|); 0 when both are empty."""
    pred, gt = _binary(pred), _binary(gt)
    total = np.count_nonzero(pred) + np.count_nonzero(gt)
    return 2.0 * np.count_nonzero(pred & gt) / total if total else 0.0


def jaccard(pred, gt):
    """|P & G| / |P | G|; 0 when both are empty."""
    pred, gt = _binary(pred), _binary(gt)
    union = np.count_nonzero(pred | gt)
    return np.count_nonzero(pred & gt) / union if union else 0.0


def surface(mask):
    """The surface voxels of a binary mask: mask XOR erosion(mask) with 6-connectivity."""
    mask = _binary(mask)
    cross = generate_binary_structure(mask.ndim, 1)
    return mask ^ binary_erosion(mask, structure=cross, iterations=1)


def surface_distances(a, b):
    """Distances (voxels) from every surface voxel of ``a`` to the nearest surface voxel of ``b``."""
    a, b = _binary(a), _binary(b)
    if not a.any() or not b.any():
        raise CamlkitError("surface distances need two non-empty masks")
    distance_to_b = distance_transform_edt(~surface(b))  # (h, w, d): 0 on b's surface
    return distance_to_b[surface(a)]


def hd95(pred, gt):
    """95th percentile of the symmetric surface distances (medpy's ``hd95``)."""
    both = np.concatenate([surface_distances(pred, gt), surface_distances(gt, pred)])
    return float(np.percentile(both, 95))


def asd(pred, gt):
    """Mean distance from the prediction's surface to the ground truth's (medpy's ``asd``)."""
    return float(surface_distances(pred, gt).mean())


def case_metrics(pred, gt, case=None):
    """The four metrics of one case; an empty prediction scores 0 on all four (with a warning)."""
    pred, gt = _binary(pred), _binary(gt)
    if pred.shape != gt.shape:
        raise CamlkitError(f"case {case}: prediction shape {pred.shape} differs from label shape {gt.shape}")
    if not gt.any():
        raise CamlkitError(f"case {case}: the ground-truth label is empty, metrics are undefined")
    if not pred.any():
        warnings.warn(f"case {case}: empty prediction, scored 0 on all four metrics", stacklevel=2)
        return {"dice": 0.0, "jaccard": 0.0, "hd95": 0.0, "asd": 0.0}
    return {"dice": dice(pred, gt), "jaccard": jaccard(pred, gt), "hd95": hd95(pred, gt), "asd": asd(pred, gt)}
