from pathlib import Path

import pytest
import torch

from camlkit import CAMLNet, load_released_checkpoint
from camlkit.errors import CamlkitError
from camlkit.runtime.checkpoint import checkpoint_config, save_inference_model
from camlkit.runtime.released import released_to_camlkit_key
from camlkit.runtime.trained import InputSettings, load_inference_model

KEYS_TSV = Path(__file__).resolve().parent / "data" / "caml_state_dict_keys.tsv"  # the released keys and shapes


def released_state_dict(seed=0):
    """Random tensors with exactly the released keys and shapes."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for line in KEYS_TSV.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, shape = line.partition("\t")
        dims = [int(d) for d in shape.split("x")] if shape.strip() else []
        if name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(int(torch.randint(1, 999, (), generator=gen)))
        else:
            state[name] = torch.randn(dims, generator=gen)
    return state


def test_every_released_value_lands_where_its_key_says(tmp_path):
    state = released_state_dict()
    assert len(state) == 470
    path = tmp_path / "iter_15000.pth"
    torch.save(state, path)
    net = load_released_checkpoint(path)
    mine = net.state_dict()
    for key, value in state.items():
        assert torch.equal(mine[released_to_camlkit_key(key)], value), key
    # spot checks of the mapping, written out by hand
    assert torch.equal(net.f_v.encoder.stage1[0].weight, state["encoder1.block_one.conv.0.weight"])
    assert torch.equal(net.f_a.decoder.up4[1].weight, state["decoder2.block_five_up.conv.1.weight"])
    assert torch.equal(net.f_a.encoder.cma.inter.linear1.weight,
                       state["encoder2.inter_attention.encoder_layers.linear1.weight"])
    assert torch.equal(net.pred_a[3].bias, state["prediction_head2.3.bias"])


def test_missing_key_is_a_clear_error():
    state = released_state_dict()
    del state["decoder1.block_nine.conv.1.running_var"]
    with pytest.raises(CamlkitError, match="missing 1 released key.*decoder1.block_nine.conv.1.running_var"):
        load_released_checkpoint(state)


def test_extra_key_is_a_clear_error():
    state = released_state_dict()
    state["decoder1.block_ten.conv.0.weight"] = torch.zeros(1)
    with pytest.raises(CamlkitError, match="unexpected key 'decoder1.block_ten"):
        load_released_checkpoint(state)


def test_wrong_shape_is_a_clear_error():
    state = released_state_dict()
    state["projection_head1.0.weight"] = torch.zeros(64, 16)
    with pytest.raises(CamlkitError, match=r"projection_head1.0.weight.*\(64, 16\).*\(32, 16\)"):
        load_released_checkpoint(state)


def test_not_a_checkpoint_file(tmp_path):
    bad = tmp_path / "notes.pth"
    bad.write_text("hello")
    with pytest.raises(CamlkitError, match="notes.pth: not a PyTorch file .it starts with .hello"):
        load_inference_model(bad)
    with pytest.raises(CamlkitError, match="no such checkpoint"):
        load_inference_model(tmp_path / "absent.pth")


def test_inference_model_from_released_and_camlkit_checkpoints(tmp_path):
    state = released_state_dict()
    torch.save(state, tmp_path / "released.pth")
    f_v = load_inference_model(tmp_path / "released.pth")
    assert not f_v.training
    assert torch.equal(f_v.decoder.out_conv.weight, state["decoder1.out_conv.weight"])
    assert checkpoint_config(tmp_path / "released.pth") == {}

    net = CAMLNet(n_filters=4, proj_dim=8)
    save_inference_model(net, tmp_path / "mine.pth", inputs=InputSettings(scale=0.5))
    f_v = load_inference_model(tmp_path / "mine.pth")
    assert torch.equal(f_v.encoder.stage1[0].weight, net.f_v.encoder.stage1[0].weight)
    assert checkpoint_config(tmp_path / "mine.pth")["inputs"] == {
        "scale": 0.5, "zscore_case": False, "patch_size": [112, 112, 80], "stride": [18, 18, 4]}
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind


# ----------------------------------------------------------------------------- checks when loading

def one_line(info):
    message = str(info.value)
    assert "\n" not in message
    return message


def test_nan_weight_names_the_file_and_the_tensor(tmp_path):
    net = CAMLNet(n_filters=2, proj_dim=8)
    with torch.no_grad():
        net.f_v.decoder.out_conv.weight[0, 0, 0, 0, 0] = float("nan")
    save_inference_model(net, tmp_path / "model_final.pth")
    with pytest.raises(CamlkitError) as info:
        load_inference_model(tmp_path / "model_final.pth")
    message = one_line(info)
    assert "model_final.pth" in message and "'f_v.decoder.out_conv.weight'" in message and "NaN" in message

    state = released_state_dict()
    state["encoder2.block_one.conv.0.bias"][3] = float("inf")
    torch.save(state, tmp_path / "iter_15000.pth")
    with pytest.raises(CamlkitError, match=r"iter_15000.pth: weight 'encoder2.block_one.conv.0.bias' holds 1 NaN"):
        load_inference_model(tmp_path / "iter_15000.pth")


def test_resume_refuses_an_inference_checkpoint_and_says_which_to_use(tmp_path):
    from camlkit.runtime.checkpoint import checkpoint_kind, read_camlkit_checkpoint, save_checkpoint

    net = CAMLNet(n_filters=2, proj_dim=8)
    save_inference_model(net, tmp_path / "model_final.pth")
    with pytest.raises(CamlkitError) as info:
        read_camlkit_checkpoint(tmp_path / "model_final.pth")  # what --resume calls
    message = one_line(info)
    assert "model_final.pth: is an inference checkpoint" in message and "checkpoints/last.pth" in message

    training = {"format": "camlkit", "version": 1, "iteration": 3, "model": net.state_dict(),
                "config": {"model": {"n_filters": 2, "proj_dim": 8}}, "optimizer": {}}
    save_checkpoint(training, tmp_path / "last.pth")
    ckpt = read_camlkit_checkpoint(tmp_path / "last.pth")
    assert checkpoint_kind(ckpt) == "training"
    assert read_camlkit_checkpoint(tmp_path / "model_final.pth", kind="inference")["format"] == "camlkit"
    # evaluation and prediction take either kind: a training checkpoint holds the model too
    f_v = load_inference_model(tmp_path / "last.pth")
    assert torch.equal(f_v.encoder.stage1[0].weight, net.f_v.encoder.stage1[0].weight)


@pytest.mark.parametrize("content,expected", [
    ([1, 2, 3], "holds a list, expected a checkpoint"),
    (torch.zeros(3), "holds a Tensor, expected a checkpoint"),
    ({"encoder1.block_one.conv.0.weight": [1, 2]}, "is a list, expected a tensor"),
])
def test_torch_files_that_are_no_checkpoint(tmp_path, content, expected):
    torch.save(content, tmp_path / "odd.pth")
    with pytest.raises(CamlkitError) as info:
        load_inference_model(tmp_path / "odd.pth")
    assert "odd.pth" in one_line(info) and expected in str(info.value)


@pytest.mark.parametrize("content,expected", [(b"101\n", "not a PyTorch file (it starts with '101"),
                                              (b"", "empty file")])
def test_text_and_empty_files(tmp_path, content, expected):
    (tmp_path / "ckpt.pth").write_bytes(content)
    with pytest.raises(CamlkitError) as info:
        load_inference_model(tmp_path / "ckpt.pth")
    assert "ckpt.pth" in one_line(info) and expected in str(info.value)


def test_architecture_mismatch_message_is_complete(tmp_path):
    net = CAMLNet(n_filters=2, proj_dim=8)
    save_inference_model(net, tmp_path / "model_final.pth")
    ckpt = torch.load(tmp_path / "model_final.pth", weights_only=True)
    ckpt["config"]["model"]["n_filters"] = 4  # the config no longer describes the weights
    del ckpt["model"]["pred_v.3.bias"]
    del ckpt["sha256"]  # as a file of before the digest (version 1): nothing to contradict
    ckpt["version"] = 1
    torch.save(ckpt, tmp_path / "edited.pth")
    with pytest.raises(CamlkitError) as info:
        load_inference_model(tmp_path / "edited.pth")
    message = one_line(info)
    assert "edited.pth: weights do not fit the architecture" in message
    assert "1 missing (e.g. 'pred_v.3.bias')" in message
    assert "of another shape (e.g. 'f_v.encoder.stage1.0.weight': (2, 1, 3, 3, 3) in the file, " \
           "(4, 1, 3, 3, 3) in the architecture)" in message


# ----------------------------------------------------------------------------- damage, unsafe pickles

def _flip_bytes(path, member_name, fix_crc):
    """Overwrite 64 bytes inside one tensor's storage (zip entry ``<archive>/data/<N>``) of a
    torch file in place with 0x5E: finite float32 values near 4e18. ``fix_crc``: also rewrite the
    entry's CRC-32 in both zip headers, so the archive itself is consistent again."""
    import struct
    import zipfile
    import zlib

    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(f"/data/{member_name}"))
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    assert info.compress_type == zipfile.ZIP_STORED and info.file_size >= 64
    data[start : start + 64] = b"\x5e" * 64
    if fix_crc:
        crc = struct.pack("<I", zlib.crc32(data[start : start + info.file_size]))
        data[info.header_offset + 14 : info.header_offset + 18] = crc
        entry = data.find(b"PK\x01\x02")
        while entry != -1:  # the central directory entry of this member holds its CRC too
            if struct.unpack("<I", data[entry + 42 : entry + 46])[0] == info.header_offset:
                data[entry + 16 : entry + 20] = crc
            entry = data.find(b"PK\x01\x02", entry + 4)
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:  # the first entry whose CRC fails, if any
        assert archive.testzip() == (None if fix_crc else info.filename)


def _largest_storage(path):
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entries = [i for i in archive.infolist() if "/data/" in i.filename]
    return max(entries, key=lambda i: i.file_size).filename.rsplit("/", 1)[1]


def _evaluate(checkpoint, la_dir, out, *extra):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "camlkit.cli", "evaluate", str(checkpoint), "--data",
                           str(la_dir), "--out", str(out), "--cases", "1", "--quiet", "--device", "cpu",
                           *extra], capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # fresh camlkit processes on full-size networks
@pytest.mark.parametrize("fix_crc", [False, True])
def test_flipped_bytes_in_a_camlkit_checkpoint_are_caught(tmp_path, la_dir, fix_crc):
    torch.manual_seed(0)
    path = tmp_path / "model_final.pth"
    save_inference_model(CAMLNet(n_filters=4).eval(), path,
                         inputs=InputSettings(scale=0.25, patch_size=(32, 32, 16), stride=(16, 16, 8)))
    _flip_bytes(path, _largest_storage(path), fix_crc)
    flipped = torch.load(path, weights_only=True)  # torch reads the damaged file without a word
    assert all(torch.isfinite(v).all() for v in flipped["model"].values() if v.is_floating_point())
    out = _evaluate(path, la_dir, tmp_path / "ev")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"{path}: damaged checkpoint, its contents do not match the SHA-256 digest" in out.stderr
    assert not (tmp_path / "ev").exists()


@pytest.mark.slow  # fresh camlkit processes on full-size networks
def test_a_released_checkpoint_without_digest_is_checked_by_magnitude(tmp_path, la_dir):
    state = released_state_dict()
    path = tmp_path / "iter_15000.pth"
    torch.save(state, path)
    _flip_bytes(path, _largest_storage(path), fix_crc=True)
    changed = [k for k, v in torch.load(path, weights_only=True).items() if not torch.equal(v, state[k])]
    assert len(changed) == 1
    out = _evaluate(path, la_dir, tmp_path / "ev", "--scale", "0.25", "--patch", "32", "32", "16",
                    "--stride", "16", "16", "8")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"{path}: weight {changed[0]!r} holds 4" in out.stderr and "(|w| < 1e+06)" in out.stderr


class RunsCode:
    """What a malicious checkpoint pickles: unpickling it would run ``touch <marker>``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


@pytest.mark.slow  # fresh camlkit processes on full-size networks
@pytest.mark.parametrize("command", ["evaluate", "predict"])
def test_a_pickle_that_runs_code_is_refused_without_advice_to_load_it_unsafely(tmp_path, la_dir,
                                                                                la_case_paths, command):
    import subprocess
    import sys

    marker = tmp_path / "code_ran"
    path = tmp_path / "iter_15000.pth"
    torch.save({"encoder1.block_one.conv.0.weight": RunsCode(marker)}, path)
    if command == "evaluate":
        out = _evaluate(path, la_dir, tmp_path / "ev")
    else:
        out = subprocess.run([sys.executable, "-m", "camlkit.cli", "predict", str(path), str(la_case_paths[0]),
                              str(tmp_path / "mask.nii.gz"), "--device", "cpu"],
                             capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"{path}: refused, the file failed the safety check for checkpoints" in out.stderr
    assert "do not load it unsafely" in out.stderr and "likely succeed" not in out.stderr
    assert not marker.exists()
    assert not (tmp_path / "mask.nii.gz").exists() and not (tmp_path / "ev").exists()


def test_the_digest_covers_every_tensor_and_value_of_a_training_checkpoint(tmp_path):
    from camlkit.runtime.checkpoint import content_digest, read_camlkit_checkpoint, save_checkpoint

    net = CAMLNet(n_filters=2, proj_dim=8).to(memory_format=torch.channels_last_3d)
    payload = {"format": "camlkit", "version": 1, "iteration": 3, "model": net.state_dict(),
               "config": {"model": {"n_filters": 2, "proj_dim": 8}, "train": {"patch_size": [32, 32, 16]}},
               "optimizer": torch.optim.SGD(net.parameters(), lr=0.1).state_dict(),
               "rng": {"torch": torch.get_rng_state(), "cuda": []}}
    save_checkpoint(payload, tmp_path / "last.pth")
    ckpt = read_camlkit_checkpoint(tmp_path / "last.pth")  # verified on the way in
    assert ckpt["sha256"] == content_digest(payload)
    for change in (lambda c: c["model"]["f_v.decoder.out_conv.bias"].add_(1e-6),
                   lambda c: c["config"]["train"]["patch_size"].__setitem__(0, 48),
                   lambda c: c.__setitem__("iteration", 4)):
        edited = torch.load(tmp_path / "last.pth", weights_only=True)
        change(edited)
        assert content_digest(edited) != edited["sha256"]


def test_a_checkpoint_whose_digest_was_removed_is_refused(tmp_path):
    # only files of before the digest (version 1) take the weaker check
    from camlkit.runtime.checkpoint import read_camlkit_checkpoint, save_checkpoint

    net = CAMLNet(n_filters=2, proj_dim=8)
    save_inference_model(net, tmp_path / "model_final.pth")
    edited = torch.load(tmp_path / "model_final.pth", weights_only=True)
    edited["model"]["f_v.decoder.out_conv.bias"] += 0.5
    del edited["sha256"]
    torch.save(edited, tmp_path / "edited.pth")
    with pytest.raises(CamlkitError) as info:
        load_inference_model(tmp_path / "edited.pth")
    assert one_line(info) == (f"{tmp_path / 'edited.pth'}: camlkit checkpoint version 2 without its 'sha256' "
                              f"digest, which every such file is written with: the file was edited, its "
                              f"contents cannot be checked; use another copy")
    payload = {"format": "camlkit", "version": 2, "iteration": 3, "model": net.state_dict(),
               "config": {"model": {"n_filters": 2, "proj_dim": 8}}, "optimizer": {}}
    save_checkpoint(payload, tmp_path / "last.pth")
    training = torch.load(tmp_path / "last.pth", weights_only=True)
    del training["sha256"]
    torch.save(training, tmp_path / "last.pth")
    with pytest.raises(CamlkitError, match="without its 'sha256' digest"):
        read_camlkit_checkpoint(tmp_path / "last.pth")  # what --resume reads
    training["version"] = 1  # the same file, as camlkit wrote it before digests existed
    torch.save(training, tmp_path / "last.pth")
    assert read_camlkit_checkpoint(tmp_path / "last.pth")["iteration"] == 3


@pytest.mark.parametrize("which", [0, -1])  # the first key (it gives the width) and the last
def test_a_released_file_missing_a_key_names_it(tmp_path, which):
    # without the first key the width was unknown and a shape mismatch was reported
    from standins import write_standin

    path = write_standin(tmp_path / "standin.pth", n_filters=2)
    state = torch.load(path, weights_only=True)
    key = list(state)[which]
    del state[key]
    torch.save(state, path)
    with pytest.raises(CamlkitError) as info:
        load_released_checkpoint(path)
    assert one_line(info) == f"{path}: missing 1 released key(s), e.g. {key!r}"
