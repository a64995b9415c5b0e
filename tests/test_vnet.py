import pytest
import torch

from camlkit.vnet import VNet, count_parameters


def test_standard_vnet_has_the_published_parameter_count():
    assert count_parameters(VNet()) == 9_448_866


def test_trilinear_decoder_changes_only_the_upsampling_layers():
    vnet_t, vnet_a = VNet(upsampling="transpose"), VNet(upsampling="trilinear")
    up_t = {k: v.shape for k, v in vnet_t.state_dict().items() if ".up" in k}
    up_a = {k: v.shape for k, v in vnet_a.state_dict().items() if ".up" in k}
    assert up_t["decoder.up4.0.weight"] == (256, 128, 2, 2, 2)  # ConvTranspose3d
    assert up_a["decoder.up4.1.weight"] == (128, 256, 3, 3, 3)  # Upsample, then Conv3d
    rest_t = {k: v.shape for k, v in vnet_t.state_dict().items() if ".up" not in k}
    rest_a = {k: v.shape for k, v in vnet_a.state_dict().items() if ".up" not in k}
    assert rest_t == rest_a


@torch.no_grad()
def test_logits_and_features_at_the_paper_patch():
    net = VNet().eval()
    logits, features = net(torch.randn(1, 1, 112, 112, 80), return_features=True)
    assert logits.shape == (1, 2, 112, 112, 80)
    assert features.shape == (1, 16, 112, 112, 80)


def test_small_patch_and_dropout_only_in_training():
    torch.manual_seed(0)
    net = VNet(n_filters=4)
    x = torch.randn(2, 1, 32, 32, 16)
    net.train()
    assert not torch.equal(net(x), net(x))  # Dropout3d draws new masks
    net.eval()
    assert torch.equal(net(x), net(x))
    assert net(x).shape == (2, 2, 32, 32, 16)


def test_sizes_not_divisible_by_16_are_refused():
    with pytest.raises(ValueError, match="divisible by 16"):
        VNet(n_filters=2)(torch.zeros(1, 1, 32, 32, 20))


def test_unknown_upsampling_is_refused():
    with pytest.raises(ValueError, match="upsampling"):
        VNet(upsampling="nearest")
