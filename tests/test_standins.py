"""tests/standins.py: the stand-in for the authors' network segments bright voxels and its CMA
attends to bright tokens, so the course's CI runs show maps with something in them."""

import pytest
import torch
from einops import rearrange
from standins import write_standin

import camlkit
from camlkit.data import load_split
from camlkit.diagnostics import measure
from camlkit.runtime import trained


def test_standin_cma_attends_bright_to_bright(tmp_path):
    net = camlkit.load_released_checkpoint(write_standin(tmp_path / "s.pth", bright_is_atrium=True))
    x = torch.zeros(4, 1, 32, 32, 32)  # tokens: a 4x4x4 grid per sample
    x[[0, 2], :, :8, :8, :8] = 4.0  # samples 0 and 2 bright in the first token, 1 and 3 dark
    attn = net.attention(x)
    intra, inter = attn["intra"], attn["inter"]  # (b, heads, k, k), (k, heads, b, b)
    assert intra[0, :, 0, 0].min() > 0.8  # E_1: the bright token of sample 0 reads itself
    dark_row = intra[0, :, 5]  # a dark token: broad over the dark tokens, less on the bright one
    assert dark_row[:, 1:].std() < 1e-3 and dark_row[:, 0].max() < 1 / 64
    first = inter[0]  # E_2 at the first position: (heads, b, b)
    for bright in (0, 2):
        assert first[:, bright, [0, 2]].sum(-1).min() > 0.9  # bright samples read bright samples
    for dark in (1, 3):
        assert first[:, dark, [1, 3]].sum(-1).min() > 0.9
    uniform = camlkit.load_released_checkpoint(write_standin(tmp_path / "plain.pth")).attention(x)["inter"]
    assert first.max() > 1.5 * uniform.max()  # a fresh network reads every sample alike


@pytest.mark.slow  # a network on real LA crops: 5-13 s on 2 cores
def test_standin_attention_on_la_crops_is_above_chance(tmp_path, la_dir):
    net, settings = trained.load_trained(write_standin(tmp_path / "s.pth", bright_is_atrium=True))
    split = load_split(la_dir, labeled=4)
    batch = trained.matched_crops(split.labeled[:2] + split.unlabeled[:2], settings, seed=0)
    result = measure.network_attention(net, batch["image"], batch["label"])
    figures = result["figures"]
    assert figures["atrium_mass"] > 1.3 * figures["chance"]  # atrium queries favour atrium tokens
    assert figures["entropy"] < 0.999 and figures["entropy_inter"] < 0.9  # not a uniform wash
    k = result["intra"].shape[-1]
    assert rearrange(result["intra"], "b h q k -> (b h q) k").max() * k > 10  # hot spots a map shows
