"""camlkit/data/preprocess.py on synthetic raw NRRD volumes written with pynrrd."""

import subprocess
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest

from camlkit.cli import run_script
from camlkit.data import case_path, read_case
from camlkit.data.preprocess import MARGIN, preprocess_case
from camlkit.errors import CamlkitError

ROOT = Path(__file__).resolve().parents[1]


def main(argv):
    """``python data_scripts/preprocess_la.py ARGS``: ``camlkit preprocess ARGS``."""
    return run_script("preprocess", argv)


def raw_case(shape=(80, 70, 12), box=((30, 50), (25, 40), (3, 9)), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 200, size=shape).astype(np.uint8)
    label = np.zeros(shape, np.uint8)
    label[box[0][0]:box[0][1], box[1][0]:box[1][1], box[2][0]:box[2][1]] = 255
    return image, label


def write_raw(root, name, image, label):
    folder = root / name
    folder.mkdir(parents=True)
    nrrd.write(str(folder / "lgemri.nrrd"), image)
    nrrd.write(str(folder / "laendo.nrrd"), label)


def test_crop_margins_zscore_and_label():
    image, label = raw_case()
    rng = np.random.default_rng(0)
    for _ in range(20):
        out_image, out_label = preprocess_case(image, label, rng)
        assert out_image.dtype == np.float32 and out_label.dtype == np.uint8
        assert set(np.unique(out_label)) == {0, 1}
        assert out_label.sum() == (label == 255).sum()  # the whole atrium is inside the crop
        assert out_image.shape[2] == 12  # full z
        nz = np.nonzero(out_label)
        for axis, size in ((0, 20), (1, 15)):
            before = nz[axis].min()
            after = out_image.shape[axis] - 1 - nz[axis].max()
            assert MARGIN[0] <= before <= MARGIN[1] and MARGIN[0] <= after <= MARGIN[1]
            assert out_image.shape[axis] == size + before + after
        # z-scored over the whole raw volume, then cropped: the crop is an affine map of the raw crop
        whole = (image - image.mean()) / image.std()
        x0 = np.nonzero(label.any(axis=(1, 2)))[0][0] - nz[0].min()
        y0 = np.nonzero(label.any(axis=(0, 2)))[0][0] - nz[1].min()
        expected = whole[x0:x0 + out_image.shape[0], y0:y0 + out_image.shape[1]]
        np.testing.assert_allclose(out_image, expected, rtol=1e-5, atol=1e-5)


def test_margins_are_clipped_at_the_border():
    image, label = raw_case(box=((2, 20), (60, 68), (0, 12)))
    out_image, out_label = preprocess_case(image, label, np.random.default_rng(0))
    nz = np.nonzero(out_label)
    assert nz[0].min() == 2 and out_image.shape[1] - 1 - nz[1].max() == 2  # 70 - 68


def test_margins_vary_and_are_seeded():
    image, label = raw_case()
    shapes = {preprocess_case(image, label, np.random.default_rng(s))[0].shape for s in range(10)}
    assert len(shapes) > 3
    a = preprocess_case(image, label, np.random.default_rng(4))
    b = preprocess_case(image, label, np.random.default_rng(4))
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("label_values,message", [((0, 1), "255"), ((0,), "no atrium")])
def test_rejects_bad_labels(label_values, message):
    image, label = raw_case()
    label = np.where(label == 255, label_values[-1], 0).astype(np.uint8)
    with pytest.raises(CamlkitError, match=message):
        preprocess_case(image, label, np.random.default_rng(0))


def test_dataset_to_h5_and_reproducible(tmp_path):
    raw = tmp_path / "raw"
    for i, name in enumerate(["CASEB", "CASEA"]):
        write_raw(raw, name, *raw_case(seed=i))
    assert main([str(raw), str(tmp_path / "out1"), "--seed", "3", "--quiet"]) == 0
    assert main([str(raw), str(tmp_path / "out2"), "--seed", "3", "--quiet"]) == 0
    for name in ("CASEA", "CASEB"):
        image, label = read_case(case_path(tmp_path / "out1", name))  # validates the written file
        again, _ = read_case(case_path(tmp_path / "out2", name))
        np.testing.assert_array_equal(image, again)
        assert label.sum() == 20 * 15 * 6
    assert not list((tmp_path / "out1").rglob("*.tmp"))


def test_cli_errors_are_one_line(tmp_path):
    raw = tmp_path / "raw"
    write_raw(raw, "CASEA", *raw_case())
    (raw / "CASEA" / "laendo.nrrd").unlink()
    result = subprocess.run([sys.executable, str(ROOT / "data_scripts" / "preprocess_la.py"), str(raw),
                             str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1 and "laendo.nrrd" in result.stderr
    assert not (tmp_path / "out").exists()


def test_camlkit_preprocess_subcommand_and_killed_leftovers(tmp_path):
    raw = tmp_path / "raw"
    write_raw(raw, "CASEA", *raw_case())
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = case_path(tmp_path / "out", "CASEA").parent
    folder.mkdir(parents=True)
    (folder / f".mri_norm2.h5.tmp-{dead.pid}").write_bytes(b"half a case")  # a killed earlier run
    result = subprocess.run([sys.executable, "-m", "camlkit.cli", "preprocess", str(raw), str(tmp_path / "out"),
                             "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["mri_norm2.h5"]
    read_case(folder / "mri_norm2.h5")


def test_camlkit_preprocess_errors_are_one_line(tmp_path):
    (tmp_path / "out").write_text("x")
    result = subprocess.run([sys.executable, "-m", "camlkit.cli", "preprocess", str(tmp_path / "absent"),
                             str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip() == f"camlkit preprocess: error: {tmp_path / 'out'}: is an existing file, " \
                                    f"expected the output folder"


def test_constant_raw_image_names_the_case(tmp_path):
    image, label = raw_case()
    with pytest.raises(CamlkitError, match="CASEX: image is constant"):
        preprocess_case(np.full_like(image, 7), label, np.random.default_rng(0), name="raw/CASEX")
