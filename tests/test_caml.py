import pytest
import torch

from camlkit.caml import CAMLNet
from camlkit.vnet import count_parameters


def test_released_caml_network_parameter_count():
    assert count_parameters(CAMLNet()) == 20_128_836


def test_paper_projection_width_is_an_option():
    net = CAMLNet(proj_dim=64)
    assert net.proj_v[0].out_features == 64 and net.pred_a[3].out_features == 64
    assert count_parameters(net) > 20_128_836


def test_without_cma_the_branches_are_mcnet_decoders():
    net = CAMLNet(use_cma=False)
    assert net.f_a.encoder.cma is None
    assert count_parameters(CAMLNet()) - count_parameters(net) == 2 * 198_272  # two layers


@pytest.mark.slow  # the full network at the paper's 112x112x80 patch
@torch.no_grad()
def test_outputs_at_the_paper_patch_in_eval_mode():
    out = CAMLNet().eval()(torch.randn(1, 1, 112, 112, 80))
    assert out["logits_v"].shape == out["logits_a"].shape == (1, 2, 112, 112, 80)
    assert out["feat_v"].shape == out["feat_a"].shape == (1, 16, 112, 112, 80)


def test_attention_for_visualisation_leaves_mode_unchanged():
    net = CAMLNet(n_filters=4, cma_heads=2, cma_feedforward=16).train()
    attn = net.attention(torch.randn(2, 1, 32, 32, 16))
    assert attn["intra"].shape == (2, 2, 32, 32)  # k = 4 * 4 * 2 tokens at 1/8 resolution
    assert attn["inter"].shape == (32, 2, 2, 2)
    assert net.training and not net.f_a.encoder.cma.active_in_eval
