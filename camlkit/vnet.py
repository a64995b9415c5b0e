"""V-Net, the backbone of both CAML branches (paper §3, "we use the V-Net as the backbone").

This is the 16-filter V-Net that semi-supervised LA papers share, as released
(``code/networks/VNet.py`` of github.com/Herschel555/CAML):

    encoder   stage1 (1 conv, 16 ch) -> down1 -> stage2 (2 convs, 32) -> down2 -> stage3 (3, 64)
              -> down3 -> stage4 (3, 128) -> down4 -> stage5 (3, 256) -> Dropout3d(0.5)
    decoder   up4 + stage4 -> dec4 (3 convs) -> up3 + stage3 -> dec3 (3) -> up2 + stage2
              -> dec2 (2) -> up1 + stage1 -> dec1 (1) -> Dropout3d(0.5) -> out_conv (1x1x1, 2 logits)

Every conv is 3x3x3 + BatchNorm + ReLU; downsampling is a 2x2x2 stride-2 conv; skips are *added*.
The two CAML branches differ only in how the decoder upsamples:

* ``upsampling="transpose"`` — ConvTranspose3d(k=2, s=2): the vanilla network f_v;
* ``upsampling="trilinear"`` — trilinear interpolation (align_corners=True) + 3x3x3 conv: the
  auxiliary network f_a (MC-Net's heterogeneous decoders).

The auxiliary encoder also runs CMA (camlkit.cma) on the stage-4 features; pass it as ``cma``.
A plain V-Net (transpose, no CMA) has exactly 9,448,866 parameters.

Speed-ups that change only the order of the arithmetic (equal to float rounding) live in
camlkit.speedups: ``out_conv`` is its ``PointwiseConv3d`` (a 1x1x1 Conv3d, faster on
channels-last CPU tensors) and inference folds BatchNorm into the convolutions with its
``fold_batchnorm``.
"""

import torch
from torch import nn

from camlkit.speedups import PointwiseConv3d


class ConvBlock(nn.Sequential):
    """``n_convs`` x (3x3x3 conv + BatchNorm + ReLU), keeping the spatial size."""

    def __init__(self, n_convs, in_ch, out_ch):
        layers = []
        for i in range(n_convs):
            layers += [
                nn.Conv3d(in_ch if i == 0 else out_ch, out_ch, kernel_size=3, padding=1),
                nn.BatchNorm3d(out_ch),
                nn.ReLU(inplace=True),
            ]
        super().__init__(*layers)


class DownBlock(nn.Sequential):
    """Halve the resolution with a 2x2x2 stride-2 conv + BatchNorm + ReLU."""

    def __init__(self, in_ch, out_ch):
        super().__init__(
            nn.Conv3d(in_ch, out_ch, kernel_size=2, stride=2),
            nn.BatchNorm3d(out_ch),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Sequential):
    """Double the resolution: transposed conv (f_v) or trilinear + conv (f_a)."""

    def __init__(self, in_ch, out_ch, upsampling="transpose"):
        if upsampling == "transpose":
            layers = [nn.ConvTranspose3d(in_ch, out_ch, kernel_size=2, stride=2)]
        elif upsampling == "trilinear":
            layers = [
                nn.Upsample(scale_factor=2, mode="trilinear", align_corners=True),
                nn.Conv3d(in_ch, out_ch, kernel_size=3, padding=1),
            ]
        else:
            raise ValueError(f"upsampling must be 'transpose' or 'trilinear', got {upsampling!r}")
        super().__init__(*layers, nn.BatchNorm3d(out_ch), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """Five stages, four downsamplings; returns the five stage outputs (the skips)."""

    def __init__(self, in_channels=1, n_filters=16, cma=None):
        super().__init__()
        f = n_filters
        self.stage1 = ConvBlock(1, in_channels, f)
        self.down1 = DownBlock(f, 2 * f)
        self.stage2 = ConvBlock(2, 2 * f, 2 * f)
        self.down2 = DownBlock(2 * f, 4 * f)
        self.stage3 = ConvBlock(3, 4 * f, 4 * f)
        self.down3 = DownBlock(4 * f, 8 * f)
        self.stage4 = ConvBlock(3, 8 * f, 8 * f)
        self.down4 = DownBlock(8 * f, 16 * f)
        self.stage5 = ConvBlock(3, 16 * f, 16 * f)
        self.dropout = nn.Dropout3d(p=0.5)  # as released, training mode only
        self.cma = cma  # None for f_v; a camlkit.cma.CMA for f_a (stage-4 output, 1/8 res)

    def to_stage4(self, x):
        """The first four stage outputs, before CMA."""
        x1 = self.stage1(x)  # (b, f, h, w, d)
        x2 = self.stage2(self.down1(x1))  # (b, 2f, h/2, w/2, d/2)
        x3 = self.stage3(self.down2(x2))  # (b, 4f, h/4, ...)
        x4 = self.stage4(self.down3(x3))  # (b, 8f, h/8, ...)
        return x1, x2, x3, x4

    def forward(self, x):
        x1, x2, x3, x4 = self.to_stage4(x)
        if self.cma is not None:
            x4 = self.cma(x4)
        x5 = self.dropout(self.stage5(self.down4(x4)))  # (b, 16f, h/16, ...)
        return x1, x2, x3, x4, x5


class Decoder(nn.Module):
    """Four upsamplings with additive skips; returns logits and the last feature map."""

    def __init__(self, n_classes=2, n_filters=16, upsampling="transpose"):
        super().__init__()
        f = n_filters
        self.up4 = UpBlock(16 * f, 8 * f, upsampling)
        self.dec4 = ConvBlock(3, 8 * f, 8 * f)
        self.up3 = UpBlock(8 * f, 4 * f, upsampling)
        self.dec3 = ConvBlock(3, 4 * f, 4 * f)
        self.up2 = UpBlock(4 * f, 2 * f, upsampling)
        self.dec2 = ConvBlock(2, 2 * f, 2 * f)
        self.up1 = UpBlock(2 * f, f, upsampling)
        self.dec1 = ConvBlock(1, f, f)
        self.dropout = nn.Dropout3d(p=0.5)  # as released, training mode only
        self.out_conv = PointwiseConv3d(f, n_classes)

    def forward(self, skips):
        x1, x2, x3, x4, x5 = skips
        x = self.dec4(self.up4(x5) + x4)
        x = self.dec3(self.up3(x) + x3)
        x = self.dec2(self.up2(x) + x2)
        features = self.dropout(self.dec1(self.up1(x) + x1))  # (b, f, h, w, d): OCC's source
        return self.out_conv(features), features


class VNet(nn.Module):
    """V-Net for 3-D segmentation.

    Args:
        in_channels: image channels (1 for LA MRI).
        n_classes: output logits (2: background, atrium).
        n_filters: channels of the first stage (16 in the paper; smaller for CPU presets).
        upsampling: "transpose" (f_v) or "trilinear" (f_a).
        cma: an optional module applied to the stage-4 encoder features (CAML's f_a).

    As released, Dropout3d(0.5) acts on the deepest encoder and the last decoder feature, in
    training mode only. The input's spatial size must be divisible by 16.
    """

    def __init__(self, in_channels=1, n_classes=2, n_filters=16, upsampling="transpose", cma=None):
        super().__init__()
        self.encoder = Encoder(in_channels, n_filters, cma)
        self.decoder = Decoder(n_classes, n_filters, upsampling)

    def forward(self, x, return_features=False):
        """x: (b, in_channels, h, w, d) -> logits (b, n_classes, h, w, d) [, features]."""
        bad = [s for s in x.shape[2:] if s % 16]
        if bad:
            raise ValueError(f"V-Net input size {tuple(x.shape[2:])} must be divisible by 16")
        logits, features = self.decoder(self.encoder(x))
        return (logits, features) if return_features else logits


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters (the figure papers quote)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


if __name__ == "__main__":  # python -m camlkit.vnet
    net = VNet()
    print(f"V-Net parameters: {count_parameters(net):,}")
    with torch.no_grad():
        print(net.eval()(torch.zeros(1, 1, 32, 32, 32)).shape)
