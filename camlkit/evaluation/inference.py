"""Whole-volume prediction with the paper's sliding-window protocol, and ``camlkit predict``.

Protocol (the paper, Sec. 3 "Implementation Details": "a general sliding window strategy without
any post-processing"; the details as released, ``code/utils/test_patch.py`` of
github.com/Herschel555/CAML, called by ``code/test_3d.py``):

1. zero-pad the volume to at least the patch size, ``pad // 2`` before and the rest after;
2. along each axis, windows start at ``min(k * stride, size - patch)`` for
   ``k = 0 .. ceil((size - patch) / stride)``: the last window ends exactly at the border;
3. the softmax of every window is summed into a score map and divided by the number of windows
   covering each voxel;
4. the padding is cropped away and the label is the argmax over classes.

The release runs one window per forward pass; here ``batch_size`` windows share one forward
pass (in eval mode each window's result does not depend on its batch neighbours), and an
eval-mode network runs as a copy with its BatchNorms folded into the convolutions, in the
channels_last_3d layout on the CPU (``inference_model``): on a 2-core CPU about 1.7x the
release's speed per window, with the same labels (``bench/bench_evaluate.py`` measures both).
The default patch 112x112x80 and stride 18/18/4 are the paper's. How a network's inputs were
prepared (scale, per-case z-score, patch, stride) comes as one camlkit.runtime.trained.InputSettings,
read from its checkpoint (``InputSettings.from_config``) or from its run's config (``.of``).
"""

import dataclasses
import math
from itertools import product
from pathlib import Path

import numpy as np
import torch

from camlkit.data import resample, scaled_size, zscore
from camlkit.data.augment import pad_widths
from camlkit.data.volumes import check_output_path, read_volume, write_mask_nifti
from camlkit.errors import CamlkitError
from camlkit.files import clean_temps, sigterm_as_exit
from camlkit.runtime.checkpoint import checkpoint_config
from camlkit.runtime.device import resolve_device
from camlkit.runtime.trained import (  # the paper's patch and stride
    PATCH_SIZE,
    STRIDE,
    InputSettings,
    load_inference_model,
)
from camlkit.speedups import fold_batchnorm

# ----------------------------------------------------------------------------- window arithmetic

def window_starts(size, patch, stride):
    """Start offsets of the windows along one axis of length ``size`` (>= ``patch``)."""
    if size < patch:
        raise CamlkitError(f"axis of size {size} is smaller than the patch {patch}: pad first")
    if stride < 1:
        raise CamlkitError(f"stride={stride}: expected a positive integer")
    count = math.ceil((size - patch) / stride) + 1
    return [min(k * stride, size - patch) for k in range(count)]


def sliding_windows(shape, patch_size, stride):
    """All windows over a volume of ``shape`` (already padded), as tuples of slices."""
    per_axis = [window_starts(s, p, t) for s, p, t in zip(shape, patch_size, stride)]
    return [tuple(slice(a, a + p) for a, p in zip(starts, patch_size)) for starts in product(*per_axis)]


# ----------------------------------------------------------------------------- prediction

def inference_model(model):
    """The network that ``sliding_window_predict`` runs in place of ``model``.

    For an eval-mode model, a copy with every BatchNorm folded into the convolution before it
    (camlkit.speedups.fold_batchnorm: the same outputs up to float rounding) and, on the CPU, in the
    channels_last_3d memory layout, where oneDNN's 3-D convolutions run faster
    (bench/bench_evaluate.py). A model in training mode or compiled with ``torch.compile`` is
    returned as it is. The caller's model is never changed.
    """
    if model.training or hasattr(model, "_orig_mod"):  # _orig_mod: a torch.compile wrapper
        return model
    folded = fold_batchnorm(model)
    if next(model.parameters()).device.type == "cpu":
        folded = folded.to(memory_format=torch.channels_last_3d)
    return folded


def window_batches(windows, batch_size):
    """Split the windows into consecutive batches of at most ``batch_size``, as even as possible
    (45 windows by 4: nine of 4 and three of 3, rather than eleven of 4 and one of 1)."""
    n_batches = math.ceil(len(windows) / batch_size)
    bounds = [k * len(windows) // n_batches for k in range(n_batches + 1)]
    return [windows[a:b] for a, b in zip(bounds, bounds[1:])]


def sliding_window_predict(model, image, patch_size=PATCH_SIZE, stride=STRIDE, batch_size=4, num_classes=2):
    """Predict a whole volume with the sliding-window protocol.

    Args:
        model: maps (b, 1, *patch_size) to logits (b, num_classes, *patch_size); run as given
            (call ``model.eval()`` first), on the device of its parameters. An eval-mode model
            runs as its ``inference_model`` copy (BatchNorm folded, CPU layout).
        image: (h, w, d) array or tensor, already normalised.
    Returns:
        label_map: (h, w, d) uint8 argmax of the averaged softmax.
        prob_map: (num_classes, h, w, d) float32 averaged softmax.

    The windows' softmax maps are summed in the release's order (x, then y, then z start), so
    the averaged probabilities match the release's ``test_single_case_first_output`` up to the
    float rounding of the network itself.
    """
    image = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image, dtype=torch.float32)
    if image.ndim != 3:
        raise CamlkitError(f"image has shape {tuple(image.shape)}, expected a 3-D volume (h, w, d)")
    if batch_size < 1:
        raise CamlkitError(f"batch_size={batch_size}: expected a positive integer")
    patch_size, stride = tuple(patch_size), tuple(stride)
    device = next(model.parameters()).device
    net = inference_model(model)
    layout = torch.channels_last_3d if device.type == "cpu" else torch.contiguous_format
    shape = tuple(image.shape)
    pads = pad_widths(shape, patch_size)
    # F.pad wants the last axis first
    flat_pads = [w for pair in reversed(pads) for w in pair]
    padded = torch.nn.functional.pad(image, flat_pads).to(device)  # (H, W, D)
    scores = torch.zeros((num_classes, *padded.shape), device=device)  # (C, H, W, D)
    counts = torch.zeros(padded.shape, device=device)  # (H, W, D)

    with torch.inference_mode():
        for group in window_batches(sliding_windows(padded.shape, patch_size, stride), batch_size):
            x = torch.stack([padded[w] for w in group])[:, None]  # (b, 1, *patch): the one copy
            probs = torch.softmax(net(x.to(memory_format=layout)), dim=1)  # (b, C, *patch)
            for window, prob in zip(group, probs):
                scores[(slice(None), *window)] += prob
                counts[window] += 1
    scores /= counts  # every voxel is covered by at least one window
    crop = tuple(slice(before, before + s) for (before, _), s in zip(pads, shape))
    prob_map = np.ascontiguousarray(scores[(slice(None), *crop)].cpu().numpy())  # float32
    return prob_map.argmax(axis=0).astype(np.uint8), prob_map


def predict_volume(model, image, inputs: InputSettings, batch_size=4):
    """Sliding-window prediction of a model whose inputs were prepared as ``inputs`` says.

    ``inputs.zscore_case``: z-score the image first, as a model trained with it saw its cases
    (camlkit.data.LADataset). With ``inputs.scale`` != 1 the image is resampled by ``scale``
    (trilinear), predicted there with ``inputs.patch_size`` and ``inputs.stride``, and the class
    probabilities are brought back to the image's own grid (trilinear) before the argmax, so the
    mask matches the input voxel for voxel. Returns (label_map uint8, prob_map float32).
    """
    window = (inputs.patch_size, inputs.stride, batch_size)
    if inputs.zscore_case:
        image = zscore(image)
    if inputs.scale == 1.0:
        return sliding_window_predict(model, image, *window)
    image = torch.as_tensor(np.asarray(image, dtype=np.float32))
    small = resample(image[None], scaled_size(image.shape, inputs.scale), "trilinear")[0]  # (h', w', d')
    _, prob = sliding_window_predict(model, small, *window)  # (C, h', w', d')
    prob = resample(torch.from_numpy(prob), image.shape, "trilinear").numpy()  # (C, h, w, d)
    return prob.argmax(axis=0).astype(np.uint8), prob.astype(np.float32)


# ----------------------------------------------------------------------------- command line

def add_window_arguments(parser):
    """--patch / --stride / --scale / --batch-size / --device, shared by ``predict`` and ``evaluate``."""
    parser.add_argument("--patch", type=int, nargs=3, default=None, metavar=("H", "W", "D"),
                        help=f"sliding-window patch size (default {PATCH_SIZE}, or the checkpoint's)")
    parser.add_argument("--stride", type=int, nargs=3, default=None, metavar=("H", "W", "D"),
                        help=f"sliding-window stride (default {STRIDE}, or the checkpoint's)")
    parser.add_argument("--scale", type=float, default=None,
                        help="resolution the model was trained at (default 1, or the checkpoint's)")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per forward pass (default 4)")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")


def window_inputs(args, stored: InputSettings) -> InputSettings:
    """The checkpoint's stored inputs with ``--patch`` / ``--stride`` / ``--scale`` put in place
    of the fields they give (the others are kept), checked (:func:`check_window`)."""
    flags = {"patch_size": args.patch, "stride": args.stride, "scale": args.scale}
    inputs = dataclasses.replace(stored, **{k: v for k, v in flags.items() if v is not None})
    check_window(inputs, args.batch_size)
    return inputs


def check_window(inputs: InputSettings, batch_size):
    """The sliding-window settings of ``predict`` / ``evaluate``, checked before any work.

    Patch sides must be positive multiples of 16 (the V-Net halves the grid four times), stride
    sides positive, ``scale`` > 0, ``batch_size`` >= 1.
    """
    patch_size, stride, scale = inputs.patch_size, inputs.stride, inputs.scale
    if any(p < 16 or p % 16 for p in patch_size):
        raise CamlkitError(f"--patch {' '.join(map(str, patch_size))}: each side must be a positive "
                           f"multiple of 16 (the V-Net halves the grid four times), e.g. 112 112 80")
    if any(t < 1 for t in stride):
        raise CamlkitError(f"--stride {' '.join(map(str, stride))}: each side must be 1 or more")
    if not scale > 0:
        raise CamlkitError(f"--scale {scale}: expected a positive number (1 = the image as given)")
    if batch_size < 1:
        raise CamlkitError(f"--batch-size {batch_size}: expected 1 or more")


def predict_command(args):
    output = check_output_path(args.output, overwrite=args.overwrite)
    if output.exists() and Path(args.input).exists() and output.samefile(args.input):
        raise CamlkitError(f"{output}: is the input volume; choose another output name")
    inputs = window_inputs(args, InputSettings.from_config(checkpoint_config(args.checkpoint)))
    device = resolve_device(args.device)
    image, affine = read_volume(args.input)
    model = load_inference_model(args.checkpoint, map_location=device)
    if not str(args.input).lower().endswith(".h5"):  # LA .h5 images are already z-scored
        image = zscore(image)
    clean_temps(output.parent)
    with sigterm_as_exit():
        mask, _ = predict_volume(model, image, inputs, batch_size=args.batch_size)
        write_mask_nifti(mask, affine, output, like=args.input)  # the input's header
    print(f"wrote {output}: {int(mask.sum())} foreground voxels of {mask.size}")
    return 0


def add_cli(subparsers):
    parser = subparsers.add_parser(
        "predict", help="segment one volume with a trained model",
        description="Segment the left atrium in one volume (.nii, .nii.gz, .nrrd or LA .h5) with the "
                    "paper's sliding-window protocol and write a uint8 NIfTI mask with the input's "
                    "geometry (a NIfTI input's own header: its version, qform and sform). "
                    "NIfTI and NRRD inputs are z-scored first; LA .h5 images are used as stored.",
    )
    parser.add_argument("checkpoint", help="camlkit checkpoint or the authors' released .pth")
    parser.add_argument("input", help="input volume")
    parser.add_argument("output", help="output mask, .nii or .nii.gz (its folder must exist)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace OUTPUT if it exists (default: refuse, so no file is lost)")
    add_window_arguments(parser)
    parser.set_defaults(func=predict_command)
