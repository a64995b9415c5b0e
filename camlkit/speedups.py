"""Speed-ups that change how fast the V-Net runs, not the function it computes.

Each computes the same function with its operations in another order (a matrix product instead
of a convolution kernel, a BatchNorm folded into the weights), so the results agree to float
rounding, not bit for bit; tests/test_vnet.py holds them to the plain computation within a
tolerance.

They live here so that camlkit.vnet reads as the architecture alone:

* :class:`PointwiseConv3d` — the 1x1x1 logits layer as a matrix product over the channels when
  the activations are channels-last (a Conv3d's parameters and state_dict keys, the same
  numbers); camlkit.vnet's decoder uses it for ``out_conv``.
* :func:`fold_batchnorm` — for inference, a copy of a network with every eval-mode BatchNorm
  folded into the convolution before it (camlkit.evaluation.inference uses it).
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


class PointwiseConv3d(nn.Conv3d):
    """A 1x1x1 convolution (the logits layer), computed as what it is: the same linear map of
    the channels at every voxel, ``logits[:, k] = sum_c weight[k, c] x[:, c] + bias[k]``.

    The parameters and state_dict keys are a Conv3d's (so checkpoints load either way). On the
    CPU, PyTorch has no fast kernel for a 1x1x1 conv on a channels_last_3d tensor and falls back
    to a slow generic one plus layout copies; a matrix product over the channels-last view
    gives the same numbers, to float rounding, several times faster (the default layout keeps the conv).
    """

    def __init__(self, in_ch, out_ch):
        super().__init__(in_ch, out_ch, kernel_size=1)

    def forward(self, x):  # (b, c, h, w, d) -> (b, out_ch, h, w, d)
        if not x.is_contiguous(memory_format=torch.channels_last_3d):
            return super().forward(x)  # the default layout: the conv kernel is the fast one
        y = F.linear(x.movedim(1, -1), self.weight.flatten(1), self.bias)  # (b, h, w, d, out_ch)
        return y.movedim(-1, 1)


def fold_batchnorm(net: nn.Module) -> nn.Module:
    """A copy of ``net`` in which every eval-mode BatchNorm3d is folded into the convolution before it.

    In eval mode BatchNorm is a fixed affine map per channel, ``gamma (x - mean) / sqrt(var + eps)
    + beta``, so a convolution followed by it is one convolution with each output channel's
    weights scaled by ``gamma / sqrt(var + eps)`` and its bias shifted. The folded layer computes
    the same function up to float rounding and saves one pass over the activations.
    Pairs are found inside ``nn.Sequential`` blocks (ConvBlock, DownBlock, UpBlock); the folded
    BatchNorm becomes ``nn.Identity``. A BatchNorm in training mode (it would use the batch's
    statistics) is left as it is. ``net`` itself is not changed. For inference only.
    """
    folded = copy.deepcopy(net)
    for block in folded.modules():
        if not isinstance(block, nn.Sequential):
            continue
        for i in range(len(block) - 1):
            conv, bn = block[i], block[i + 1]
            if (isinstance(conv, (nn.Conv3d, nn.ConvTranspose3d)) and isinstance(bn, nn.BatchNorm3d)
                    and not conv.training and not bn.training and bn.running_mean is not None):
                transpose = isinstance(conv, nn.ConvTranspose3d)  # weights (in, out, ...): scale dim 1
                block[i] = fuse_conv_bn_eval(conv, bn, transpose=transpose)
                block[i + 1] = nn.Identity()
    return folded
