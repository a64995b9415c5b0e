from pathlib import Path

import pytest
import torch

from camlkit import CAMLNet, load_released_checkpoint
from camlkit.checkpoint import (checkpoint_config, load_inference_model, released_to_camlkit_key,
                                save_inference_model)
from camlkit.errors import CamlkitError

KEYS_TSV = Path(__file__).resolve().parents[2] / "shared" / "reference" / "caml_state_dict_keys.tsv"


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
    save_inference_model(net, tmp_path / "mine.pth", scale=0.5)
    f_v = load_inference_model(tmp_path / "mine.pth")
    assert torch.equal(f_v.encoder.stage1[0].weight, net.f_v.encoder.stage1[0].weight)
    assert checkpoint_config(tmp_path / "mine.pth")["scale"] == 0.5
    assert not list(tmp_path.glob(".*tmp*"))  # nothing half-written left behind
