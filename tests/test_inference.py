"""camlkit/evaluation/inference.py: window arithmetic, sliding-window prediction, volume I/O, ``camlkit predict``."""

import math
import os

import h5py
import nibabel
import nrrd
import numpy as np
import pytest
import torch
from torch import nn

import camlkit
from camlkit.data import pad_widths, zscore
from camlkit.data.volumes import read_volume, write_mask_nifti
from camlkit.errors import CamlkitError
from camlkit.evaluation.inference import (
    inference_model,
    predict_volume,
    sliding_window_predict,
    sliding_windows,
    window_batches,
    window_starts,
)
from camlkit.runtime.trained import InputSettings


def tiny_vnet(seed=0):
    torch.manual_seed(seed)
    model = camlkit.VNet(n_filters=2)
    # random BN statistics so the eval-mode network is not close to trivial
    for module in model.modules():
        if isinstance(module, nn.BatchNorm3d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


class Pointwise(nn.Module):
    """logits = 1x1x1 conv of the input: the averaged softmax equals the pointwise softmax."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(1, 2, 1)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor([1.0, -2.0]).view(2, 1, 1, 1, 1))
            self.conv.bias.copy_(torch.tensor([0.3, 0.1]))

    def forward(self, x):
        return self.conv(x)


# ----------------------------------------------------------------------------- window arithmetic

def test_window_starts_by_hand():
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(11, 4, 3) == [0, 3, 6, 7]
    assert window_starts(4, 4, 3) == [0]
    # an LA-sized axis with the paper's settings
    assert window_starts(140, 112, 18) == [0, 18, 28]


@pytest.mark.parametrize("size,patch,stride", [(7, 7, 1), (30, 16, 5), (183, 112, 18), (88, 80, 4), (97, 80, 4)])
def test_window_starts_cover_the_axis(size, patch, stride):
    starts = window_starts(size, patch, stride)
    assert starts[0] == 0 and starts[-1] == size - patch
    assert len(starts) == math.ceil((size - patch) / stride) + 1
    assert all(0 < b - a <= stride for a, b in zip(starts, starts[1:]))
    covered = np.zeros(size, int)
    for a in starts:
        covered[a:a + patch] += 1
    assert covered.min() >= 1


def test_windows_and_padding():
    windows = sliding_windows((20, 16, 17), (16, 16, 16), (3, 8, 1))
    assert len(windows) == 3 * 1 * 2
    assert windows[-1] == (slice(4, 20), slice(0, 16), slice(1, 17))
    assert pad_widths((10, 16, 13), (16, 16, 16)) == [(3, 3), (0, 0), (1, 2)]
    with pytest.raises(CamlkitError):
        window_starts(3, 4, 1)


# ----------------------------------------------------------------------------- prediction

def reference_predict(model, image, patch, stride):
    """The protocol written out plainly with NumPy, one window per forward pass."""
    pads = [max(p - s, 0) for s, p in zip(image.shape, patch)]
    padded = np.pad(image, [(q // 2, q - q // 2) for q in pads])
    score = np.zeros((2,) + padded.shape, np.float64)
    count = np.zeros(padded.shape)
    steps = [math.ceil((s - p) / t) + 1 for s, p, t in zip(padded.shape, patch, stride)]
    for i in range(steps[0]):
        for j in range(steps[1]):
            for k in range(steps[2]):
                x, y, z = (min(n * t, s - p) for n, t, s, p in zip((i, j, k), stride, padded.shape, patch))
                window = (slice(x, x + patch[0]), slice(y, y + patch[1]), slice(z, z + patch[2]))
                with torch.no_grad():
                    logits = model(torch.from_numpy(padded[window].copy())[None, None].float())
                score[(slice(None),) + window] += torch.softmax(logits, 1)[0].numpy()
                count[window] += 1
    score /= count
    crop = tuple(slice(q // 2, q // 2 + s) for q, s in zip(pads, image.shape))
    return score[(slice(None),) + crop]


def test_batched_equals_one_window_at_a_time_and_reference():
    model = tiny_vnet()
    image = np.random.default_rng(0).normal(size=(21, 18, 17)).astype(np.float32)
    patch, stride = (16, 16, 16), (3, 2, 1)
    label_1, prob_1 = sliding_window_predict(model, image, patch, stride, batch_size=1)
    label_4, prob_4 = sliding_window_predict(model, image, patch, stride, batch_size=5)
    assert label_1.dtype == np.uint8 and prob_1.dtype == np.float32
    assert prob_1.shape == (2, 21, 18, 17) and label_1.shape == (21, 18, 17)
    np.testing.assert_allclose(prob_4, prob_1, atol=1e-5)
    np.testing.assert_array_equal(label_4, label_1)
    np.testing.assert_allclose(prob_1, reference_predict(model, image, patch, stride), atol=1e-5)
    np.testing.assert_allclose(prob_1.sum(0), 1.0, atol=1e-5)
    # overlapping windows really differ (zero padding inside the convs), so averaging matters
    assert prob_1[1].std() > 0


def test_window_batches_are_even_and_keep_the_order():
    windows = list(range(45))
    batches = window_batches(windows, 4)
    assert sorted(len(b) for b in batches) == [3] * 3 + [4] * 9
    assert [w for b in batches for w in b] == windows
    assert window_batches(windows, 1) == [[w] for w in windows]
    assert window_batches([0, 1, 2], 8) == [[0, 1, 2]]


def test_inference_model_is_a_folded_copy_and_the_model_is_untouched():
    model = tiny_vnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    net = inference_model(model)
    assert net is not model
    assert not any(isinstance(m, nn.BatchNorm3d) for m in net.modules())
    conv = net.encoder.stage1[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last_3d)  # the CPU layout
    assert any(isinstance(m, nn.BatchNorm3d) for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.encoder.stage1[0].weight.is_contiguous()
    assert inference_model(model.train()) is model  # training mode: BatchNorm uses the batch


def test_real_case_labels_match_the_one_window_reference(la_case_paths):
    """On a real LA crop, the fast path gives the plain protocol's labels (ties aside)."""
    from camlkit.data import read_case

    image, _ = read_case(la_case_paths[0])
    crop = image[30:78, 40:84, 20:52]  # (48, 44, 32), around the atrium
    model = tiny_vnet(seed=3)
    patch, stride = (32, 32, 16), (9, 9, 4)
    with torch.no_grad():  # shift the foreground logit so that both classes appear
        logits = model(torch.from_numpy(crop[:32, :32, :16].copy())[None, None])
        model.decoder.out_conv.bias[1] -= (logits[0, 1] - logits[0, 0]).median()
    label, prob = sliding_window_predict(model, crop, patch, stride, batch_size=4)
    expected = reference_predict(model, crop, patch, stride)
    np.testing.assert_allclose(prob, expected, atol=1e-5)
    differ = label != expected.argmax(0)
    assert not (differ & (np.abs(expected[1] - 0.5) > 1e-5)).any()
    assert 0 < label.mean() < 1  # both classes present: the check means something


def test_small_volume_is_padded_and_cropped_back_in_place():
    image = np.random.default_rng(1).normal(size=(9, 16, 13)).astype(np.float32)
    label, prob = sliding_window_predict(Pointwise(), torch.from_numpy(image), (16, 16, 16), (4, 4, 4))
    assert label.shape == image.shape
    expected = torch.softmax(Pointwise()(torch.from_numpy(image)[None, None]), 1)[0].detach().numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-6)
    np.testing.assert_array_equal(label, expected.argmax(0))


def test_predict_volume_at_half_scale_returns_the_original_grid():
    image = np.random.default_rng(2).normal(size=(40, 34, 36)).astype(np.float32)
    half = InputSettings(scale=0.5, patch_size=(16, 16, 16), stride=(8, 8, 8))
    label, prob = predict_volume(Pointwise(), image, half)
    assert label.shape == image.shape and prob.shape == (2, *image.shape)
    # the pointwise model on a smooth image: the half-scale result follows the full one closely
    smooth = np.cumsum(np.ones_like(image), axis=0) / 40 - 0.5
    label, _ = predict_volume(Pointwise(), smooth, half)
    full, _ = sliding_window_predict(Pointwise(), smooth, (16, 16, 16), (8, 8, 8))
    assert (label != full).mean() < 0.05


def test_rejects_non_3d_image():
    with pytest.raises(CamlkitError, match="3-D"):
        sliding_window_predict(Pointwise(), np.zeros((1, 16, 16, 16), np.float32), (16, 16, 16), (4, 4, 4))


# ----------------------------------------------------------------------------- volume I/O

AFFINE = np.array([[0.0, 0.0, 1.25, -10.0], [0.625, 0.0, 0.0, 20.0], [0.0, 0.625, 0.0, 5.0], [0, 0, 0, 1]])


def test_read_nifti(tmp_path):
    image = np.random.default_rng(0).normal(size=(5, 6, 7)).astype(np.float32)
    for name in ("a.nii", "a.nii.gz"):
        nibabel.save(nibabel.Nifti1Image(image, AFFINE), tmp_path / name)
        got, affine = read_volume(tmp_path / name)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, image)
        np.testing.assert_allclose(affine, AFFINE)


def test_read_nrrd_affine(tmp_path):
    image = np.arange(60, dtype=np.uint8).reshape(3, 4, 5)
    header = {"space": "left-posterior-superior",
              "space directions": np.array([[0.625, 0, 0], [0, 0.625, 0], [0, 0, 1.25]]),
              "space origin": np.array([1.0, 2.0, 3.0])}
    nrrd.write(str(tmp_path / "a.nrrd"), image, header)
    got, affine = read_volume(tmp_path / "a.nrrd")
    np.testing.assert_array_equal(got, image.astype(np.float32))
    # LPS -> RAS flips the first two world axes
    np.testing.assert_allclose(affine, [[-0.625, 0, 0, -1], [0, -0.625, 0, -2], [0, 0, 1.25, 3], [0, 0, 0, 1]])


def test_read_h5(tmp_path, la_case_paths):
    got, affine = read_volume(la_case_paths[0])
    with h5py.File(la_case_paths[0], "r") as f:
        np.testing.assert_array_equal(got, f["image"][()])
    np.testing.assert_array_equal(affine, np.eye(4))


def test_read_rejects_4d_and_unknown(tmp_path):
    nibabel.save(nibabel.Nifti1Image(np.zeros((4, 4, 4, 2), np.float32), np.eye(4)), tmp_path / "v4.nii.gz")
    with pytest.raises(CamlkitError, match="4-D"):
        read_volume(tmp_path / "v4.nii.gz")
    (tmp_path / "a.png").write_bytes(b"x")
    with pytest.raises(CamlkitError, match="unknown volume format"):
        read_volume(tmp_path / "a.png")
    (tmp_path / "broken.nii.gz").write_bytes(b"not a nifti")
    with pytest.raises(CamlkitError, match="broken.nii.gz"):
        read_volume(tmp_path / "broken.nii.gz")


def test_zscore():
    image = np.random.default_rng(0).normal(3.0, 5.0, size=(8, 8, 8))
    out = zscore(image)
    assert out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-5
    with pytest.raises(CamlkitError):
        zscore(np.ones((2, 2, 2)))


def test_write_mask_nifti_roundtrip_and_atomic(tmp_path):
    mask = (np.random.default_rng(0).random((5, 6, 7)) > 0.5).astype(np.uint8)
    write_mask_nifti(mask, AFFINE, tmp_path / "m.nii.gz")
    written = nibabel.load(tmp_path / "m.nii.gz")
    assert written.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), mask)
    np.testing.assert_allclose(written.affine, AFFINE)
    assert os.listdir(tmp_path) == ["m.nii.gz"]  # no temporary file left behind
    with pytest.raises(CamlkitError, match="does not exist"):
        write_mask_nifti(mask, AFFINE, tmp_path / "nowhere" / "m.nii.gz")
    assert not (tmp_path / "nowhere").exists()


# ----------------------------------------------------------------------------- camlkit predict

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.runtime.checkpoint import save_inference_model

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)).eval(), path)
    return path


def run_cli(argv, capsys):
    from camlkit.cli import main

    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


WINDOW = ["--patch", 16, 16, 16, "--stride", 8, 8, 8, "--device", "cpu"]


def test_predict_cli_writes_mask_with_input_affine(tmp_path, checkpoint, capsys):
    from camlkit.runtime.trained import load_inference_model

    image = np.random.default_rng(0).normal(50.0, 10.0, size=(20, 18, 17)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(image, AFFINE), tmp_path / "in.nii.gz")
    code, out, err = run_cli(["predict", checkpoint, tmp_path / "in.nii.gz", tmp_path / "out.nii.gz", *WINDOW], capsys)
    assert code == 0, err
    written = nibabel.load(tmp_path / "out.nii.gz")
    np.testing.assert_allclose(written.affine, AFFINE)
    assert written.get_data_dtype() == np.uint8 and written.shape == image.shape
    expected, _ = sliding_window_predict(load_inference_model(checkpoint), zscore(image), (16, 16, 16), (8, 8, 8))
    np.testing.assert_array_equal(np.asanyarray(written.dataobj), expected)


@pytest.mark.parametrize("image_class", [nibabel.Nifti1Image, nibabel.Nifti2Image])
@pytest.mark.parametrize("codes", [(1, 1), (2, 1), (1, 0)])
def test_predict_keeps_the_input_header(tmp_path, checkpoint, capsys, image_class, codes):
    """The mask has the input's NIfTI version and its qform and sform, codes and matrices, as
    they are, even where they disagree; only the values' description changes."""
    qform = AFFINE.copy()
    sform = AFFINE.copy()
    sform[:3, 3] += [4.0, -3.0, 2.0]  # another placement than the qform's
    sform[0, 1] = 0.1  # and a shear, which a qform cannot hold
    image = np.random.default_rng(0).normal(50.0, 10.0, size=(20, 18, 17)).astype(np.float32)
    source = image_class(image, None)
    source.set_qform(qform, code=codes[0])
    source.set_sform(sform, code=codes[1])
    source.header["cal_max"] = 900.0
    nibabel.save(source, tmp_path / "in.nii.gz")
    source = nibabel.load(tmp_path / "in.nii.gz")
    code, out, err = run_cli(["predict", checkpoint, tmp_path / "in.nii.gz", tmp_path / "out.nii", *WINDOW], capsys)
    assert code == 0, err
    written = nibabel.load(tmp_path / "out.nii")
    assert type(written) is image_class
    for key in ("qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d", "qoffset_x",
                "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z", "pixdim", "xyzt_units"):
        np.testing.assert_array_equal(written.header[key], source.header[key], err_msg=key)
    np.testing.assert_allclose(written.get_qform(), source.get_qform())
    np.testing.assert_allclose(written.affine, source.affine)  # sform if coded, else qform
    assert written.get_data_dtype() == np.uint8 and written.header["cal_max"] == 0
    assert set(np.unique(np.asanyarray(written.dataobj))) <= {0, 1}


def test_a_mask_from_an_h5_input_has_the_identity_as_its_sform(tmp_path, checkpoint, la_case_paths, capsys):
    code, out, err = run_cli(["predict", checkpoint, la_case_paths[0], tmp_path / "out.nii.gz", *WINDOW,
                              "--scale", "0.25"], capsys)
    assert code == 0, err
    written = nibabel.load(tmp_path / "out.nii.gz")
    assert type(written) is nibabel.Nifti1Image and written.header["sform_code"] > 0
    np.testing.assert_allclose(written.affine, np.eye(4))


def test_model_trained_on_zscored_cases_predicts_on_zscored_h5(tmp_path, la_case_paths, capsys):
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.runtime.checkpoint import checkpoint_config, save_inference_model
    from camlkit.runtime.trained import load_inference_model

    window = ["--patch", 32, 32, 32, "--stride", 32, 32, 32, "--device", "cpu"]
    path = tmp_path / "z.pth"
    torch.manual_seed(0)
    save_inference_model(CAMLNet(CAMLConfig(n_filters=2)).eval(), path, inputs=InputSettings(zscore_case=True))
    assert InputSettings.from_config(checkpoint_config(path)).zscore_case is True
    code, _, err = run_cli(["predict", path, la_case_paths[0], tmp_path / "out.nii.gz", *window], capsys)
    assert code == 0, err
    with h5py.File(la_case_paths[0], "r") as f:
        image = f["image"][:]
    assert abs(float(image.std()) - 1) > 0.05  # the stored crop is not itself z-scored
    model = load_inference_model(path)
    expected, _ = sliding_window_predict(model, zscore(image), (32, 32, 32), (32, 32, 32))
    np.testing.assert_array_equal(np.asanyarray(nibabel.load(tmp_path / "out.nii.gz").dataobj), expected)
    direct, _ = predict_volume(model, image, InputSettings(zscore_case=True, patch_size=(32, 32, 32),
                                                           stride=(32, 32, 32)))
    np.testing.assert_array_equal(direct, expected)


def test_predict_uses_an_old_checkpoints_inputs_and_a_flag_changes_one(tmp_path, capsys):
    """A file of the oldest layout (top-level ``patch``, ``stride``, ``zscore_case``; torch.save'd
    as it was) predicts with them; ``--stride`` changes the stride and keeps the rest."""
    import dataclasses

    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.runtime.trained import load_inference_model

    torch.manual_seed(0)
    net = CAMLNet(CAMLConfig(n_filters=2)).eval()
    path = tmp_path / "old.pth"
    torch.save({"format": "camlkit", "version": 1, "model": net.state_dict(),
                "config": {"model": dataclasses.asdict(net.config), "patch": [16, 16, 16],
                           "stride": [4, 4, 4], "zscore_case": True}}, path)
    # an .h5 input is not z-scored by `predict` itself: only zscore_case does it
    image = np.random.default_rng(0).normal(50.0, 10.0, size=(20, 18, 17)).astype(np.float32)
    with h5py.File(tmp_path / "in.h5", "w") as f:
        f["image"] = image
    model = load_inference_model(path)
    for extra, stride in (([], (4, 4, 4)), (["--stride", 16, 16, 16], (16, 16, 16))):
        out = tmp_path / f"out{stride[0]}.nii.gz"
        code, _, err = run_cli(["predict", path, tmp_path / "in.h5", out, "--device", "cpu", *extra], capsys)
        assert code == 0, err
        expected, _ = sliding_window_predict(model, zscore(image), (16, 16, 16), stride)
        np.testing.assert_array_equal(np.asanyarray(nibabel.load(out).dataobj), expected)
        unscored, _ = sliding_window_predict(model, image, (16, 16, 16), stride)
        assert (unscored != expected).any()  # the check can tell whether zscore_case was read


def test_predict_cli_rejects_4d_input(tmp_path, checkpoint, capsys):
    nibabel.save(nibabel.Nifti1Image(np.zeros((16, 16, 16, 2), np.float32), AFFINE), tmp_path / "v4.nii.gz")
    code, _, err = run_cli(["predict", checkpoint, tmp_path / "v4.nii.gz", tmp_path / "out.nii.gz", *WINDOW], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "4-D" in err and "v4.nii.gz" in err
    assert not (tmp_path / "out.nii.gz").exists()


def test_predict_cli_rejects_missing_output_folder(tmp_path, checkpoint, capsys):
    nibabel.save(nibabel.Nifti1Image(np.zeros((16, 16, 16), np.float32), AFFINE), tmp_path / "in.nii.gz")
    target = tmp_path / "missing" / "out.nii.gz"
    code, _, err = run_cli(["predict", checkpoint, tmp_path / "in.nii.gz", target, *WINDOW], capsys)
    assert code != 0
    assert len(err.strip().splitlines()) == 1 and "does not exist" in err and "missing" in err
    assert not target.parent.exists()


@pytest.mark.parametrize("kind", ["truncated", "nan", "no_image"])
def test_predict_cli_rejects_bad_h5(tmp_path, checkpoint, la_case_paths, capsys, kind):
    path = tmp_path / f"{kind}.h5"
    if kind == "truncated":
        raw = la_case_paths[0].read_bytes()
        path.write_bytes(raw[: len(raw) // 2])
    else:
        image = np.zeros((16, 16, 16), np.float32)
        image[0, 0, 0] = np.nan
        with h5py.File(path, "w") as f:
            f["image" if kind == "nan" else "label"] = image
    code, _, err = run_cli(["predict", checkpoint, path, tmp_path / "out.nii.gz", *WINDOW], capsys)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and path.name in err
    assert not (tmp_path / "out.nii.gz").exists()


# ----------------------------------------------------------------------------- predict: checks before the work

@pytest.fixture
def no_prediction(monkeypatch):
    """Fail the test if the sliding window runs: every check must come before it."""
    import camlkit.evaluation.inference

    def refuse(*args, **kwargs):
        raise AssertionError("the volume was predicted before the input was checked")

    monkeypatch.setattr(camlkit.evaluation.inference, "predict_volume", refuse)


@pytest.fixture
def volume(tmp_path):
    image = np.random.default_rng(0).normal(50.0, 10.0, size=(20, 18, 17)).astype(np.float32)
    nibabel.save(nibabel.Nifti1Image(image, AFFINE), tmp_path / "in.nii.gz")
    return tmp_path / "in.nii.gz"


@pytest.mark.parametrize("argv,expected", [
    (["--scale", -1], "--scale -1.0: expected a positive number"),
    (["--patch", 30, 30, 30], "--patch 30 30 30: each side must be a positive multiple of 16"),
    (["--patch", 0, 16, 16], "--patch 0 16 16"),
    (["--stride", 8, 0, 8], "--stride 8 0 8"),
    (["--batch-size", 0], "--batch-size 0"),
    (["--device", "gpu0"], "--device gpu0: expected auto, cpu, cuda or cuda:N"),
    pytest.param(["--device", "cuda"], "--device cuda: this PyTorch", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="about a machine without CUDA")),
])
def test_predict_cli_rejects_bad_settings(tmp_path, checkpoint, volume, capsys, no_prediction, argv, expected):
    code, _, err = run_cli(["predict", checkpoint, volume, tmp_path / "out.nii.gz", *WINDOW, *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and expected in err
    assert not (tmp_path / "out.nii.gz").exists()


def test_predict_cli_refuses_to_replace_a_file_unless_asked(tmp_path, checkpoint, volume, capsys):
    target = tmp_path / "out.nii.gz"
    target.write_bytes(b"an earlier mask")
    code, _, err = run_cli(["predict", checkpoint, volume, target, *WINDOW], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--overwrite" in err
    assert target.read_bytes() == b"an earlier mask"
    code, _, err = run_cli(["predict", checkpoint, volume, target, *WINDOW, "--overwrite"], capsys)
    assert code == 0, err
    assert nibabel.load(target).shape == (20, 18, 17)


def test_predict_cli_never_writes_over_its_input(tmp_path, checkpoint, volume, capsys, no_prediction):
    before = volume.read_bytes()
    code, _, err = run_cli(["predict", checkpoint, volume, volume, *WINDOW, "--overwrite"], capsys)
    assert code == 2 and "is the input volume" in err
    assert volume.read_bytes() == before


def test_predict_cli_rejects_a_folder_as_output(tmp_path, checkpoint, volume, capsys, no_prediction):
    (tmp_path / "out.nii.gz").mkdir()
    code, _, err = run_cli(["predict", checkpoint, volume, tmp_path / "out.nii.gz", *WINDOW], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "is a folder" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_predict_cli_rejects_an_unwritable_folder(tmp_path, checkpoint, volume, capsys, no_prediction):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    code, _, err = run_cli(["predict", checkpoint, volume, locked / "out.nii.gz", *WINDOW], capsys)
    assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1


def test_predict_cli_rejects_a_constant_volume_naming_it(tmp_path, checkpoint, capsys, no_prediction):
    nibabel.save(nibabel.Nifti1Image(np.full((16, 16, 16), 3.0, np.float32), AFFINE), tmp_path / "flat.nii.gz")
    code, _, err = run_cli(["predict", checkpoint, tmp_path / "flat.nii.gz", tmp_path / "out.nii.gz", *WINDOW],
                           capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "flat.nii.gz: image is constant (3 everywhere)" in err


def test_predict_cli_rejects_a_nan_checkpoint(tmp_path, volume, capsys, no_prediction):
    from camlkit.caml import CAMLConfig, CAMLNet
    from camlkit.runtime.checkpoint import save_inference_model

    net = CAMLNet(CAMLConfig(n_filters=2))
    with torch.no_grad():
        net.f_v.encoder.stage1[0].weight.fill_(float("nan"))
    save_inference_model(net, tmp_path / "diverged.pth")
    code, _, err = run_cli(["predict", tmp_path / "diverged.pth", volume, tmp_path / "out.nii.gz", *WINDOW], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "diverged.pth: weight 'f_v.encoder.stage1.0.weight'" in err
