"""A stand-in for the authors' released network, for tests and the course's CI runs.

:func:`write_standin` saves a CAMLNet in the authors' file layout (a plain state_dict under their
key names), small enough to write in a fraction of a second. It is *not* their network: its git
blob id is no pinned one, so ``camlkit evaluate`` and the report say so. Tests and
``notebooks/conftest.py`` put it in a throw-away PyTorch cache, where camlkit finds it as it finds
a downloaded file (camlkit.runtime.weights.cached).

With ``bright_is_atrium`` a few layers are set by hand so that the stand-in behaves like a trained
network where the course looks:

* **segmentation** (:func:`_threshold_intensity`): both branches call a voxel atrium where the
  (z-scored) image exceeds 1.5. A fresh network predicts one class almost everywhere, and OCC's
  memory bank then lacks a class; this one predicts both.
* **CMA** (:func:`_attend_to_bright`): f_a's stage-4 tokens carry how bright their block is, and
  both attention layers compare that brightness: in E_1 a bright (atrium) token attends to the
  bright tokens of its own sample and a dark one spreads its weight over the dark background; in
  E_2 a bright token attends to the samples that are bright at the same position. A fresh
  network's attention is a uniform wash; this one has something to show.
"""

from pathlib import Path

import torch

from camlkit.caml import CAMLConfig, CAMLNet
from camlkit.files import atomic_path
from camlkit.runtime.released import camlkit_to_released_key

LEVEL = 1.5  # image value above which the stand-in calls a voxel atrium
TOKEN_LEVEL = 2.0  # brightness a token's voxels must exceed to count (see _attend_to_bright)
SHARPNESS = 2.0  # how strongly CMA's queries follow brightness (see _attend_to_bright)


def write_standin(path, n_filters=2, seed=0, bright_is_atrium=False) -> Path:
    """Save a CAMLNet of ``n_filters`` base filters in the authors' layout to ``path``
    (atomically) and return the path; ``bright_is_atrium``: see the module's docstring."""
    torch.manual_seed(seed)
    net = CAMLNet(CAMLConfig(n_filters=n_filters))
    if bright_is_atrium:
        for vnet in (net.f_v, net.f_a):
            _threshold_intensity(vnet, level=LEVEL)
        _attend_to_bright(net.f_a.encoder)
    state = {camlkit_to_released_key(k): v for k, v in net.state_dict().items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


# ----------------------------------------------------------------------------- helpers

def _copy_channel0(conv, bias=0.0):
    """Every output channel of ``conv`` = its input channel 0 (a centred delta kernel, or the
    mean over a stride-2 kernel's block) + ``bias``."""
    conv.weight.zero_()
    conv.bias.fill_(bias)
    kernel = conv.weight.shape[2:]
    if tuple(kernel) == (3, 3, 3):
        conv.weight[:, 0, 1, 1, 1] = 1.0
    else:
        conv.weight[:, 0] = 1.0 / kernel.numel()


@torch.no_grad()
def _threshold_intensity(vnet, level):
    """Make a fresh V-Net compute atrium logit 8 (relu(x) - level) and background 0 from the
    input x (in eval mode, where its fresh BatchNorm is the identity): stage 1 and the last
    decoder block copy relu(x) into every channel (every channel, so that training mode's
    Dropout3d leaves a copy), the deeper path is cut (up1's convolution set to 0), and the 1x1
    output convolution averages the channels. In training mode BatchNorm normalises each copy,
    so the threshold moves, but bright voxels remain atrium."""
    for conv in (vnet.encoder.stage1[0], vnet.decoder.dec1[0]):
        _copy_channel0(conv)
    for layer in vnet.decoder.up1:
        if isinstance(layer, (torch.nn.Conv3d, torch.nn.ConvTranspose3d)):
            layer.weight.zero_()
            layer.bias.zero_()
    out = vnet.decoder.out_conv
    out.weight.zero_()
    out.bias.zero_()
    out.weight[1] = 8.0 / out.weight.shape[1]
    out.bias[1] = -8.0 * level


@torch.no_grad()
def _attend_to_bright(encoder):
    """Give f_a's CMA (on ``encoder``, whose stage 1 already copies relu(x)) attention that
    follows the atrium; the decoder's output does not change (its deeper path is cut).

    Tokens: down1 keeps relu(mean(relu x) - TOKEN_LEVEL) over 2x2x2 voxels, the later stages
    average it, so a stage-4 token's first half of channels holds v, its block's brightness; the
    second half holds the constant c = TOKEN_LEVEL / 4 (stage 4's last convolution). E_1: query
    and key are ``SHARPNESS`` (v - c) in one dimension of every head, so a token with v > c
    (bright) attends most to the brightest tokens, one with v < c to the darkest. E_1's output and
    feed-forward are zero, so E_2 reads LayerNorm(token): +1 on the first half and -1 on the
    second for a bright token, the reverse for a dark one; its query and key are that
    difference, so at each position a bright sample reads the bright samples.
    """
    blocks = [encoder.down1, encoder.stage2, encoder.down2, encoder.stage3, encoder.down3, encoder.stage4]
    convs = [layer for block in blocks for layer in block if isinstance(layer, torch.nn.Conv3d)]
    _copy_channel0(convs[0], bias=-TOKEN_LEVEL)
    for conv in convs[1:]:
        _copy_channel0(conv)
    last, c = convs[-1], TOKEN_LEVEL / 4
    half = last.weight.shape[0] // 2
    last.weight[half:] = 0.0
    last.bias[half:] = c
    cma = encoder.cma
    width, heads = cma.intra.self_attn.embed_dim, cma.intra.self_attn.num_heads
    brightness = torch.zeros(width)  # mean of the first half minus mean of the second
    brightness[:half], brightness[half:] = 1.0 / half, -1.0 / (width - half)
    for layer, scale in ((cma.intra, SHARPNESS), (cma.inter, 4 * SHARPNESS)):
        attn = layer.self_attn
        attn.in_proj_weight.zero_()
        attn.in_proj_bias.zero_()
        for head in range(heads):
            row = head * (width // heads)  # the first dimension of each head
            attn.in_proj_weight[row] = scale * brightness  # query
            attn.in_proj_weight[width + row] = scale * brightness  # key
    for part in (cma.intra.self_attn.out_proj, cma.intra.linear2):  # E_1 passes its input on
        part.weight.zero_()
        part.bias.zero_()
