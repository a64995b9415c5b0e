"""The authors' released checkpoints: their key names mapped onto camlkit's, loaded strictly.

The authors' ``iter_15000.pth`` files are plain state_dicts of their ``CAML3d_v1`` (keys listed
in shared/reference/caml_state_dict_keys.tsv). Their names map one to one onto camlkit's:
``encoder1``/``decoder1`` are f_v, ``encoder2``/``decoder2`` f_a, ``block_one`` ...
``block_nine`` the V-Net stages, ``intra_attention``/``inter_attention`` CMA's two layers,
``projection_head1``/``prediction_head1`` the heads of f_v (``...2`` of f_a).
:func:`load_released_checkpoint` maps every key, checks every shape and refuses anything missing
or extra. A plain state_dict has no digest (camlkit.runtime.checkpoint), so its weights are checked
the weaker way there is: finite and below ``MAX_ABS_WEIGHT`` in magnitude. Fetching the files:
camlkit.runtime.weights.
"""

import re

import torch

from camlkit.caml import CAMLConfig, CAMLNet
from camlkit.errors import CamlkitError
from camlkit.runtime.checkpoint import MAX_ABS_WEIGHT, check_finite, read_dict

RELEASED_BLOCKS = {
    "block_one": "stage1", "block_one_dw": "down1", "block_two": "stage2", "block_two_dw": "down2",
    "block_three": "stage3", "block_three_dw": "down3", "block_four": "stage4",
    "block_four_dw": "down4", "block_five": "stage5", "block_five_up": "up4", "block_six": "dec4",
    "block_six_up": "up3", "block_seven": "dec3", "block_seven_up": "up2", "block_eight": "dec2",
    "block_eight_up": "up1", "block_nine": "dec1", "out_conv": "out_conv",
}


RELEASED_PREFIXES = {
    "encoder1": "f_v.encoder", "decoder1": "f_v.decoder",
    "encoder2": "f_a.encoder", "decoder2": "f_a.decoder",
    "projection_head1": "proj_v", "prediction_head1": "pred_v",
    "projection_head2": "proj_a", "prediction_head2": "pred_a",
}


def released_to_camlkit_key(key: str) -> str:
    """Map one released state_dict key to camlkit's name (KeyError if it has no counterpart)."""
    prefix, rest = key.split(".", 1)
    new_prefix = RELEASED_PREFIXES[prefix]
    if prefix.startswith(("projection", "prediction")):
        return f"{new_prefix}.{rest}"
    attention = re.fullmatch(r"(intra|inter)_attention\.encoder_layers\.(.+)", rest)
    if attention:
        return f"{new_prefix}.cma.{attention.group(1)}.{attention.group(2)}"
    block, rest = rest.split(".", 1)
    rest = rest.removeprefix("conv.")  # the release wraps each block's layers in `.conv`
    return f"{new_prefix}.{RELEASED_BLOCKS[block]}.{rest}"


def released_config(state: dict) -> CAMLConfig:
    """The architecture of a released state_dict: its width read from the first convolution.

    ``encoder1.block_one.conv.0.weight`` is (n_filters, in_channels, 3, 3, 3) and
    ``decoder1.out_conv.weight`` (n_classes, n_filters, 1, 1, 1); every other setting is the
    released default. The authors' files give the released network (16 filters); a narrower
    file in the same layout (a test's) gives its own width. A file whose other shapes differ
    still fails on the first such key, named.
    """
    found = {}
    first = state.get("encoder1.block_one.conv.0.weight")
    if torch.is_tensor(first) and first.dim() == 5:
        found.update(n_filters=first.shape[0], in_channels=first.shape[1])
    out = state.get("decoder1.out_conv.weight")
    if torch.is_tensor(out) and out.dim() == 5:
        found["n_classes"] = out.shape[0]
    return CAMLConfig(**found)


def load_released_checkpoint(path_or_state_dict, config: CAMLConfig | None = None,
                             name=None) -> CAMLNet:
    """Build a CAMLNet holding the authors' weights, strictly.

    The architecture is ``config``, else the one the file's shapes describe
    (:func:`released_config`; the released defaults for the authors' files). Every released key
    must map onto a camlkit parameter or buffer with the same shape, and every camlkit
    parameter must be given; otherwise a one-line CamlkitError names the key.
    """
    state = read_dict(path_or_state_dict, "released CAML checkpoint")
    if name is None and not isinstance(path_or_state_dict, dict):
        name = path_or_state_dict
    source = f"{name}: " if name is not None else ""
    net = CAMLNet(config if config is not None else released_config(state))
    expected = net.state_dict()
    mapped = {}
    for key, value in state.items():
        if not torch.is_tensor(value):
            raise CamlkitError(f"{source}{key!r} is a {type(value).__name__}, expected a tensor "
                               f"(not a released CAML checkpoint)")
        try:
            mapped[released_to_camlkit_key(key)] = value
        except (KeyError, ValueError):
            raise CamlkitError(f"{source}unexpected key {key!r} in a released CAML checkpoint") from None
    for key in mapped:
        if key not in expected:
            raise CamlkitError(f"{source}unexpected key {camlkit_to_released_key(key)!r} "
                               f"in a released CAML checkpoint")
    missing = [k for k in expected if k not in mapped]  # before the shapes: a missing first
    if missing:  # convolution leaves the width unknown, and every shape would look wrong
        raise CamlkitError(f"{source}missing {len(missing)} released key(s), e.g. "
                           f"{camlkit_to_released_key(missing[0])!r}")
    for key, value in mapped.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise CamlkitError(f"{source}{camlkit_to_released_key(key)!r} has shape "
                               f"{tuple(value.shape)}, expected {tuple(expected[key].shape)}")
    # no digest to compare: finite and of a sane magnitude is the check there is
    check_finite(state, name if name is not None else "released checkpoint", bound=MAX_ABS_WEIGHT)
    net.load_state_dict(mapped, strict=True)
    return net


def camlkit_to_released_key(key: str) -> str:
    """Inverse of :func:`released_to_camlkit_key`."""
    prefix_map = {v: k for k, v in RELEASED_PREFIXES.items()}
    block_map = {v: k for k, v in RELEASED_BLOCKS.items()}
    for new_prefix, old_prefix in prefix_map.items():  # noqa: B007 (old_prefix is read after the loop)
        if key.startswith(new_prefix + "."):
            rest = key[len(new_prefix) + 1 :]
            break
    else:
        raise KeyError(key)
    if old_prefix.startswith(("projection", "prediction")):
        return f"{old_prefix}.{rest}"
    cma = re.fullmatch(r"cma\.(intra|inter)\.(.+)", rest)
    if cma:
        return f"{old_prefix}.{cma.group(1)}_attention.encoder_layers.{cma.group(2)}"
    block, rest = rest.split(".", 1)
    inner = rest if block == "out_conv" else f"conv.{rest}"
    return f"{old_prefix}.{block_map[block]}.{inner}"
