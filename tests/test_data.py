"""Tests for camlkit/data/cases.py: reading LA cases, the split, augmentation, batching, worker seeds."""

from collections import Counter

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from camlkit import data
from camlkit.data import (
    LADataset,
    RandomCrop,
    RandomRotFlip,
    TwoStreamBatchSampler,
    case_path,
    cases,
    load_split,
    read_case,
    read_list,
    resample,
    resample_label,
    seed_worker,
    train_transform,
)
from camlkit.errors import CamlkitError


def write_h5(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        for key, value in arrays.items():
            f.create_dataset(key, data=value, compression="gzip")
    return path


def small_case(shape=(6, 5, 4)):
    image = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    label = (image > 0.5).astype(np.uint8)
    return image, label


# ----------------------------------------------------------------------------- read_case

def test_read_real_case(la_case_paths):
    image, label = read_case(la_case_paths[0])
    assert image.dtype == np.float32 and label.dtype == np.uint8
    assert image.ndim == 3 and image.shape == label.shape
    assert set(np.unique(label)) == {0, 1}
    assert 0 < label.mean() < 0.5


def test_read_small_case_roundtrip(tmp_path):
    image, label = small_case()
    got_image, got_label = read_case(write_h5(tmp_path / "c.h5", image=image, label=label))
    np.testing.assert_array_equal(got_image, image)
    np.testing.assert_array_equal(got_label, label)


def bad_case_files(tmp_path, la_case_paths):
    image, label = small_case()
    nan_image = image.copy()
    nan_image[1, 2, 3] = np.nan
    truncated = tmp_path / "truncated.h5"
    raw = la_case_paths[0].read_bytes()
    truncated.write_bytes(raw[: len(raw) // 2])
    return {
        "truncated": (truncated, "HDF5"),
        "no_image": (write_h5(tmp_path / "noimage.h5", label=label), "'image'"),
        "no_label": (write_h5(tmp_path / "nolabel.h5", image=image), "'label'"),
        "nan": (write_h5(tmp_path / "nan.h5", image=nan_image, label=label), "NaN"),
        "label2": (write_h5(tmp_path / "label2.h5", image=image, label=label * 2), "[0, 2]"),
        "shape": (write_h5(tmp_path / "shape.h5", image=image, label=label[:-1]), "shape"),
        "int_image": (write_h5(tmp_path / "int.h5", image=label, label=label), "dtype"),
        "2d_image": (write_h5(tmp_path / "2d.h5", image=image[0], label=label[0]), "3-D"),
        "constant": (write_h5(tmp_path / "flat.h5", image=np.zeros_like(image), label=label), "constant"),
        "missing": (tmp_path / "absent.h5", "not found"),
    }


@pytest.mark.parametrize(
    "kind", ["truncated", "no_image", "no_label", "nan", "label2", "shape", "int_image", "2d_image", "missing",
             "constant"]
)
def test_read_case_rejects_bad_files(tmp_path, la_case_paths, kind):
    path, expected = bad_case_files(tmp_path, la_case_paths)[kind]
    with pytest.raises(CamlkitError) as info:
        read_case(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert expected in message


# ----------------------------------------------------------------------------- the split

def test_split_on_real_data(la_dir):
    train = read_list(la_dir / "train.list")
    split = load_split(la_dir, 4)
    assert [p.parent.name for p in split.labeled] == train[:4]
    assert [p.parent.name for p in split.unlabeled] == train[4:]
    assert len(split.test) == 20
    assert all(p.is_file() for p in split.labeled + split.unlabeled + split.test)
    assert not set(split.test) & set(split.labeled + split.unlabeled)


def make_release(root, n_train, n_test):
    """A tiny copy of the release layout with synthetic cases."""
    image, label = small_case()
    names = [f"CASE{i:03d}" for i in range(n_train + n_test)]
    for name in names:
        write_h5(case_path(root, name), image=image, label=label)
    (root / "train.list").write_text("\n".join(names[:n_train]) + "\n")
    (root / "test.list").write_text("\n".join(names[n_train:]) + "\n")
    return names


def test_split_full_release_layout(tmp_path):
    names = make_release(tmp_path, n_train=10, n_test=3)
    split = load_split(tmp_path, 8)
    assert [p.parent.name for p in split.labeled] == names[:8]
    assert [p.parent.name for p in split.unlabeled] == names[8:10]
    assert [p.parent.name for p in split.test] == names[10:]


def test_split_rejects_too_many_labeled(la_dir):
    n_train = len(read_list(la_dir / "train.list"))
    with pytest.raises(CamlkitError, match=f"labeled={n_train + 1}"):
        load_split(la_dir, n_train + 1)


@pytest.mark.parametrize("labeled", [-1, 11])
def test_split_message_gives_the_true_labeled_range(tmp_path, labeled):
    # the split itself takes 0..N; a run's tighter bounds (2 labeled per batch) are
    # camlkit.runtime.preflight.check_data's, tested in test_train.py
    make_release(tmp_path, n_train=10, n_test=1)
    with pytest.raises(CamlkitError, match=rf"labeled={labeled}: expected 0\.\.10, .*cases in .*train.list"):
        load_split(tmp_path, labeled)
    assert len(load_split(tmp_path, 0).unlabeled) == 10 and len(load_split(tmp_path, 10).unlabeled) == 0


def test_split_reports_missing_case(tmp_path):
    make_release(tmp_path, n_train=3, n_test=1)
    with open(tmp_path / "test.list", "a") as f:
        f.write("GHOSTCASE\n")
    with pytest.raises(CamlkitError) as info:
        load_split(tmp_path, 2)
    assert "GHOSTCASE" in str(info.value) and "test.list" in str(info.value)


# ----------------------------------------------------------------------------- dataset

def test_dataset_items_and_cache(la_case_paths, monkeypatch):
    calls = Counter()
    real_read = data.read_case

    def counting_read(path):
        calls[path] += 1
        return real_read(path)

    monkeypatch.setattr(cases, "read_case", counting_read)
    dataset = LADataset(la_case_paths[:1])
    first = dataset[0]
    second = dataset[0]
    assert calls[la_case_paths[0]] == 1
    assert first["image"].dtype == torch.float32 and first["label"].dtype == torch.int64
    assert first["image"].shape == (1, *first["label"].shape)
    assert first["case"] == la_case_paths[0].parent.name
    assert torch.equal(first["image"], second["image"])


def test_dataset_scale_halves_the_grid(la_case_paths):
    full = LADataset(la_case_paths[:1])[0]
    half = LADataset(la_case_paths[:1], scale=0.5)[0]
    expected = tuple(round(s * 0.5) for s in full["label"].shape)
    assert tuple(half["label"].shape) == expected
    assert set(half["label"].unique().tolist()) == {0, 1}
    # the label's foreground fraction survives resampling, roughly
    assert abs(half["label"].float().mean() - full["label"].float().mean()) < 0.01
    assert abs(half["image"].mean() - full["image"].mean()) < 0.05


def test_resampled_label_stays_on_the_image_grid():
    # a ball centred at 11.5 on a 24^3 grid, halved: voxel i of the small grid sits at 2 i + 0.5
    grid = np.stack(np.meshgrid(*[np.arange(24)] * 3, indexing="ij"))
    ball = (((grid - 11.5) ** 2).sum(0) < 49).astype(np.uint8)
    small = resample_label(ball, (12, 12, 12))
    assert small.dtype == torch.uint8 and small.shape == (12, 12, 12)
    centre = np.argwhere(small.numpy() > 0).mean(0) * 2 + 0.5
    np.testing.assert_allclose(centre, 11.5, atol=1e-6)
    nearest = resample(torch.from_numpy(ball)[None].float(), (12, 12, 12), "nearest")[0]
    shifted = np.argwhere(nearest.numpy() > 0).mean(0) * 2 + 0.5
    assert np.all(np.abs(shifted - 11.5) > 0.25)  # what nearest would have done


def test_resampled_label_keeps_every_class():
    label = np.zeros((8, 8, 8), dtype=np.uint8)
    label[:4] = 1
    label[6:] = 2
    small = resample_label(label, (4, 4, 4)).numpy()
    assert small[:2].tolist() == np.ones((2, 4, 4)).tolist()
    assert (small[2] == 0).all() and (small[3] == 2).all()


def test_dataset_can_zscore_each_case_again(la_case_paths):
    stored = LADataset(la_case_paths[:1])[0]["image"]
    again = LADataset(la_case_paths[:1], zscore_case=True)[0]["image"]
    assert abs(float(stored.std()) - 1) > 0.05  # z-scored over the whole scan, before the crop
    assert abs(float(again.mean())) < 1e-4 and abs(float(again.std()) - 1) < 1e-4
    np.testing.assert_allclose(again.numpy(), ((stored - stored.mean()) / stored.std()).numpy(), atol=1e-4)


def test_dataset_with_train_transform(la_case_paths):
    item = LADataset(la_case_paths[:1], transform=train_transform((32, 24, 16)))[0]
    assert item["image"].shape == (1, 32, 24, 16) and item["label"].shape == (32, 24, 16)


# ----------------------------------------------------------------------------- augmentation

def test_rot_flip_keeps_image_and_label_aligned():
    image = np.random.default_rng(1).normal(size=(7, 7, 3)).astype(np.float32)
    label = (image > 0).astype(np.uint8)
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(60):
        out_image, out_label = RandomRotFlip()(image, label, rng)
        np.testing.assert_array_equal(out_label, (out_image > 0).astype(np.uint8))
        # the z axis is untouched: each z slice keeps its own values
        for z in range(3):
            assert sorted(out_image[..., z].ravel()) == sorted(image[..., z].ravel())
        seen.add(out_image.tobytes())
    # a flip always follows the rotation, so the 8 (k, axis) pairs give the 4 reflections of the
    # square: never the identity or a pure rotation
    assert len(seen) == 4
    assert image.tobytes() not in seen and np.rot90(image, 1, axes=(0, 1)).tobytes() not in seen


def test_rot_flip_is_reproducible_with_a_generator():
    image, label = small_case((5, 5, 2))
    a = RandomRotFlip()(image, label, np.random.default_rng(3))
    b = RandomRotFlip()(image, label, np.random.default_rng(3))
    np.testing.assert_array_equal(a[0], b[0])


def test_random_crop_takes_a_window():
    image = np.arange(10 * 9 * 8, dtype=np.float32).reshape(10, 9, 8)
    label = (image % 2).astype(np.uint8)
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(30):
        out_image, out_label = RandomCrop((4, 3, 8), rule="uniform")(image, label, rng)
        assert out_image.shape == (4, 3, 8)
        x, y, z = np.unravel_index(int(out_image[0, 0, 0]), image.shape)
        np.testing.assert_array_equal(out_image, image[x:x + 4, y:y + 3, z:z + 8])
        np.testing.assert_array_equal(out_label, label[x:x + 4, y:y + 3, z:z + 8])
        starts.add((x, y))
    assert len(starts) > 5


def test_random_crop_pads_small_volumes_with_zeros():
    image = np.full((3, 4, 2), 5.0, dtype=np.float32)
    label = np.ones((3, 4, 2), dtype=np.uint8)
    out_image, out_label = RandomCrop((6, 4, 5), rule="uniform")(image, label, np.random.default_rng(0))
    assert out_image.shape == (6, 4, 5) and out_label.shape == (6, 4, 5)
    assert out_image.sum() == 5.0 * image.size and out_label.sum() == label.size
    # symmetric padding: pad 3 in x -> 1 before, 2 after; pad 3 in z -> 1 before, 2 after
    assert out_label[1:4, :, 1:3].all()


def test_random_crop_as_released_never_takes_the_last_offset():
    image = np.arange(10 * 9 * 20, dtype=np.float32).reshape(10, 9, 20)
    label = np.zeros(image.shape, dtype=np.uint8)
    rng = np.random.default_rng(0)
    starts = {"release": set(), "uniform": set()}
    for rule in starts:
        for _ in range(300):
            out, _ = RandomCrop((4, 3, 16), rule=rule)(image, label, rng)
            starts[rule].add(np.unravel_index(int(out[0, 0, 0]), image.shape))
    assert {s[0] for s in starts["release"]} == set(range(6))  # 0 .. 10 - 4 - 1
    assert {s[0] for s in starts["uniform"]} == set(range(7))  # 0 .. 10 - 4
    assert {s[2] for s in starts["release"]} == set(range(4))


def test_random_crop_as_released_pads_every_side_when_one_is_short():
    image = np.full((10, 4, 6), 5.0, dtype=np.float32)  # y is shorter than the patch, z equal
    label = np.ones(image.shape, dtype=np.uint8)
    crop = RandomCrop((4, 6, 6))
    out_image, out_label = crop(image, label, np.random.default_rng(0))
    assert out_image.shape == (4, 6, 6)
    # padded by max((p - s) // 2 + 3, 0): x 0, y 4, z 3 on both ends -> (10, 12, 12), start < 6
    counts = [int(crop(image, label, np.random.default_rng(k))[1].sum()) for k in range(50)]
    assert min(counts) < 4 * 6 * 6 and max(counts) > 0
    with pytest.raises(CamlkitError, match="crop rule"):
        RandomCrop((4, 4, 4), rule="last")


def test_transform_without_generator_uses_numpy_global_stream():
    image, label = small_case((12, 12, 6))
    transform = train_transform((5, 5, 3))
    np.random.seed(7)
    a = transform(image, label)
    np.random.seed(7)
    b = transform(image, label)
    np.testing.assert_array_equal(a[0], b[0])


# ----------------------------------------------------------------------------- batch sampler

def test_two_stream_batches():
    labeled, unlabeled = list(range(4)), list(range(4, 10))
    sampler = TwoStreamBatchSampler(labeled, unlabeled, batch_size=4, secondary_batch_size=2, seed=0,
                                    restart_secondary=False)
    assert len(sampler) == 2
    secondary_seen = []
    for _ in range(3):  # three epochs
        batches = list(sampler)
        assert len(batches) == 2
        assert sorted(i for b in batches for i in b[:2]) == labeled  # each labeled case once per epoch
        for batch in batches:
            assert len(batch) == 4 and set(batch[2:]) <= set(unlabeled)
            secondary_seen += batch[2:]
    # unlabeled indices cycle through full shuffles: 12 draws = two complete passes over 6
    assert sorted(secondary_seen[:6]) == unlabeled and sorted(secondary_seen[6:]) == unlabeled


def test_two_stream_as_released_restarts_the_unlabeled_stream_every_epoch():
    labeled, unlabeled = list(range(4)), list(range(4, 10))
    sampler = TwoStreamBatchSampler(labeled, unlabeled, batch_size=4, secondary_batch_size=2, seed=0)
    epochs = [[i for batch in sampler for i in batch[2:]] for _ in range(20)]
    assert all(len(set(seen)) == 4 for seen in epochs)  # 4 distinct: the head of a fresh shuffle

    def passes(restart):  # is every block of 6 draws a full pass over the 6 unlabeled cases?
        sampler = TwoStreamBatchSampler(labeled, unlabeled, 4, 2, seed=0, restart_secondary=restart)
        seen = [i for _ in range(30) for batch in sampler for i in batch[2:]]
        return all(sorted(seen[k:k + 6]) == unlabeled for k in range(0, len(seen), 6))

    assert passes(restart=False) and not passes(restart=True)


def test_two_stream_is_reproducible_and_shuffled():
    def run(seed):
        sampler = TwoStreamBatchSampler(range(8), range(8, 20), 4, 2, seed=seed)
        return [list(sampler) for _ in range(3)]

    assert run(1) == run(1)
    assert run(1) != run(2)
    epochs = run(1)
    assert epochs[0] != epochs[1]  # a new labeled order every epoch


def test_two_stream_follows_torch_seed_by_default():
    torch.manual_seed(5)
    a = list(TwoStreamBatchSampler(range(8), range(8, 20), 4, 2))
    torch.manual_seed(5)
    b = list(TwoStreamBatchSampler(range(8), range(8, 20), 4, 2))
    assert a == b


def test_two_stream_labeled_only():
    sampler = TwoStreamBatchSampler(range(8), [], batch_size=4, secondary_batch_size=0, seed=0)
    batches = list(sampler)
    assert len(batches) == 2 and sorted(sum(batches, [])) == list(range(8))


@pytest.mark.parametrize("args", [(range(1), range(5), 4, 2), (range(4), range(1), 4, 2), (range(4), range(4), 2, 2)])
def test_two_stream_rejects_bad_sizes(args):
    with pytest.raises(CamlkitError):
        TwoStreamBatchSampler(*args)


def test_two_stream_in_a_dataloader(tmp_path):
    make_release(tmp_path, n_train=6, n_test=1)
    split = load_split(tmp_path, 2)
    dataset = LADataset(split.labeled + split.unlabeled, transform=train_transform((4, 4, 4)))
    sampler = TwoStreamBatchSampler(range(2), range(2, 6), 4, 2, seed=0)
    batch = next(iter(DataLoader(dataset, batch_sampler=sampler)))
    assert batch["image"].shape == (4, 1, 4, 4, 4) and batch["label"].shape == (4, 4, 4, 4)
    assert set(batch["case"][:2]) == {"CASE000", "CASE001"}


# ----------------------------------------------------------------------------- worker seeds

class NumpyDraws(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, index):
        return torch.tensor(np.random.randint(0, 2**31 - 1, size=3))


def draws(seed):
    loader = DataLoader(
        NumpyDraws(), batch_size=1, num_workers=2, worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
    )
    return [batch[0].tolist() for batch in loader]


def test_seed_worker_gives_distinct_and_repeatable_streams():
    first = draws(0)
    # items 0 and 1 come from workers 0 and 1 (round robin), each at the start of its stream
    assert first[0] != first[1]
    assert len({tuple(x) for x in first}) == 4
    assert draws(0) == first
    assert draws(1) != first
