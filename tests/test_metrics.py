"""camlkit/evaluation/metrics.py against medpy.metric.binary on real LA labels and perturbed predictions."""

import numpy as np
import pytest
from medpy.metric import binary as medpy_binary
from scipy.ndimage import binary_dilation, binary_erosion

from camlkit.data import read_case
from camlkit.errors import CamlkitError
from camlkit.evaluation.metrics import asd, case_metrics, dice, hd95, jaccard, surface


@pytest.fixture(scope="module")
def labels(la_case_paths):
    """Two real labels, cropped to a small box around the atrium; the crop cuts the atrium on
    one side so the mask touches the volume border (medpy counts outside as background)."""
    out = []
    for path in la_case_paths:
        _, label = read_case(path)
        nz = np.nonzero(label)
        lo = [int(a.min()) for a in nz]
        hi = [int(a.max()) + 1 for a in nz]
        box = tuple(slice(max(a - 4, 0), min(a + 4 + (h - a) * 2 // 3, s))  # cut at 2/3 of the atrium
                    for a, h, s in zip(lo, hi, label.shape))
        out.append(label[box][::2, ::2, ::2].copy())  # subsample to keep the test fast
    return out


def perturbations(gt):
    rng = np.random.default_rng(0)
    noisy = gt.copy()
    flip = rng.random(gt.shape) < 0.03
    noisy[flip] = 1 - noisy[flip]
    return {
        "identical": gt.copy(),
        "shifted": np.roll(gt, shift=(3, -2, 1), axis=(0, 1, 2)),
        "eroded": binary_erosion(gt, iterations=2).astype(np.uint8),
        "dilated": binary_dilation(gt, iterations=3).astype(np.uint8),
        "noisy": noisy,
        "blob": np.pad(np.ones((3, 3, 3), np.uint8), [(2, s - 5) for s in gt.shape]),
    }


@pytest.mark.parametrize("kind", ["identical", "shifted", "eroded", "dilated", "noisy", "blob"])
def test_metrics_match_medpy(labels, kind):
    for gt in labels:
        pred = perturbations(gt)[kind]
        assert pred.any() and gt.any()
        assert dice(pred, gt) == pytest.approx(medpy_binary.dc(pred, gt), rel=1e-12)
        assert jaccard(pred, gt) == pytest.approx(medpy_binary.jc(pred, gt), rel=1e-12)
        assert hd95(pred, gt) == pytest.approx(medpy_binary.hd95(pred, gt), rel=1e-9, abs=1e-12)
        assert asd(pred, gt) == pytest.approx(medpy_binary.asd(pred, gt), rel=1e-9, abs=1e-12)
        # asd is directed, as in medpy: swapping the arguments changes it (except when equal)
        if kind != "identical":
            assert asd(gt, pred) == pytest.approx(medpy_binary.asd(gt, pred), rel=1e-9)


def test_hand_checked_values():
    gt = np.zeros((10, 10, 10), np.uint8)
    gt[2:6, 2:6, 2:6] = 1  # 64 voxels
    pred = np.zeros_like(gt)
    pred[3:7, 2:6, 2:6] = 1  # shifted by one voxel along x: overlap 48
    assert dice(pred, gt) == pytest.approx(2 * 48 / 128)
    assert jaccard(pred, gt) == pytest.approx(48 / 80)
    assert hd95(gt, gt) == 0.0 and asd(gt, gt) == 0.0
    assert hd95(pred, gt) == pytest.approx(1.0)
    # a single voxel's surface is itself
    one = np.zeros((3, 3, 3), bool)
    one[1, 1, 1] = True
    assert surface(one).sum() == 1


def test_empty_prediction_scores_zero_with_a_warning(labels):
    with pytest.warns(UserWarning, match="CASE_X"):
        scores = case_metrics(np.zeros_like(labels[0]), labels[0], case="CASE_X")
    assert scores == {"dice": 0.0, "jaccard": 0.0, "hd95": 0.0, "asd": 0.0}


def test_case_metrics_keys_and_values(labels):
    gt = labels[0]
    pred = perturbations(gt)["shifted"]
    scores = case_metrics(pred, gt, case="A")
    assert set(scores) == {"dice", "jaccard", "hd95", "asd"}
    assert 0 < scores["dice"] < 1 and scores["hd95"] > 0 and scores["asd"] > 0
    assert scores["dice"] == pytest.approx(medpy_binary.dc(pred, gt))


def test_case_metrics_rejects_shape_mismatch_and_empty_label(labels):
    with pytest.raises(CamlkitError, match="shape"):
        case_metrics(labels[0][:-1], labels[0], case="A")
    with pytest.raises(CamlkitError, match="empty"):
        case_metrics(labels[0], np.zeros_like(labels[0]), case="A")
