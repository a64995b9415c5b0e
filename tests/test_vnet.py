import pytest
import torch

from camlkit.speedups import fold_batchnorm
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


def eval_vnet_with_random_batchnorm(upsampling, seed=0):
    torch.manual_seed(seed)
    net = VNet(n_filters=4, upsampling=upsampling)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm3d):  # statistics and affine far from identity
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.3, 0.3)
    return net.eval()


@pytest.mark.parametrize("upsampling", ["transpose", "trilinear"])
@torch.no_grad()
def test_folded_batchnorm_gives_the_same_outputs(upsampling):
    net = eval_vnet_with_random_batchnorm(upsampling)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in net.modules()) == 29  # the original keeps them
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    x = torch.randn(2, 1, 32, 32, 16)
    logits, features = net(x, return_features=True)
    logits_f, features_f = folded(x, return_features=True)
    torch.testing.assert_close(logits_f, logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(features_f, features, rtol=1e-4, atol=1e-5)


def test_folding_leaves_training_batchnorm_alone():
    net = VNet(n_filters=2).train()
    folded = fold_batchnorm(net)
    assert sum(isinstance(m, torch.nn.BatchNorm3d) for m in folded.modules()) == 29
    assert folded is not net


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last_3d])
def test_the_logits_layer_is_a_1x1x1_conv_in_either_layout(layout):
    from camlkit.speedups import PointwiseConv3d

    torch.manual_seed(0)
    fast, conv = PointwiseConv3d(16, 2), torch.nn.Conv3d(16, 2, kernel_size=1)
    conv.load_state_dict(fast.state_dict())  # the same keys and shapes: checkpoints load either way
    x = torch.randn(2, 16, 8, 6, 4).to(memory_format=layout)
    x_fast, x_conv = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_fast, y_conv = fast(x_fast), conv(x_conv)
    assert y_fast.shape == (2, 2, 8, 6, 4)
    torch.testing.assert_close(y_fast, y_conv, rtol=1e-6, atol=1e-6)
    (y_fast * y_conv.detach()).sum().backward()
    (y_conv * y_conv.detach()).sum().backward()
    torch.testing.assert_close(x_fast.grad, x_conv.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(fast.weight.grad, conv.weight.grad, rtol=1e-5, atol=1e-5)
