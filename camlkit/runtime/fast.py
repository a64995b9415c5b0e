"""``--fast``: one switch that makes the paper step use a GPU, and changes nothing by default.

The released step is fp32 and deterministic cuDNN, and its OCC part (camlkit.occ) selects
voxels by boolean indexing: each selection makes the host wait for the GPU. On CUDA, ``--fast``
(``TrainConfig.fast``) turns on:

* **mixed precision**: bf16 autocast where the GPU supports it (``torch.cuda.is_bf16_supported``),
  else fp16 autocast with a ``torch.amp.GradScaler``; OCC's logits and l_o stay fp32;
* **channels_last_3d** activations and weights (cuDNN's fast 3-D convolution layout), TF32
  matrix products and cuDNN autotuning (``cudnn.benchmark``; not deterministic);
* **the memory bank and the sampling on the device** with fixed shapes and masks instead of
  boolean indexing and ``.tolist()`` (camlkit.occ_device.DeviceBank): no host synchronisation
  inside the step; OCC's health figures are not computed (logged as NaN);
* ``torch.compile`` of both V-Nets stays its own opt-in: ``--fast --compile`` (minutes of
  compilation, worth it for the paper's 15,000 iterations).

Not the release's arithmetic: bf16 rounding, another random stream for the bank's draw, and
non-deterministic cuDNN kernels. The default (``fast=False``) is the release's step, bit for bit
(tests/test_step_parity.py). On a CPU ``--fast`` is refused in one line: none of it helps there.
``python -m bench.gpu_clock`` times the paper step with and without it.
"""

import contextlib

import torch

from camlkit.errors import CamlkitError
from camlkit.occ import MemoryBank
from camlkit.occ_device import DeviceBank


def check(cfg, device: torch.device):
    """Refuse ``--fast`` off CUDA, in one line."""
    if cfg.fast and device.type != "cuda":
        raise CamlkitError(f"--fast needs a CUDA device (this run is on {device.type}): it turns on "
                           f"mixed precision and GPU-side OCC sampling, which do not help a CPU; drop --fast")


def autocast_dtype(device: torch.device):
    """bf16 where the GPU supports it, else fp16."""
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def setup(cfg, device: torch.device):
    """cuDNN and TF32 settings for the run; returns its GradScaler (fp16 only) or None."""
    if not (cfg.fast and device.type == "cuda"):
        return None
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = True, False
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    return torch.amp.GradScaler("cuda") if autocast_dtype(device) == torch.float16 else None


def layout(cfg, device: torch.device):
    """The memory format of the network and its inputs."""
    if cfg.fast and device.type == "cuda":
        return torch.channels_last_3d
    return torch.channels_last_3d if cfg.channels_last else torch.contiguous_format


def memory_bank(cfg, sync_free=None):
    """OCC's memory bank: camlkit.occ's (released), or the fixed-shape one under ``--fast``."""
    if not cfg.step.use_occ:
        return None
    kind = DeviceBank if (cfg.fast if sync_free is None else sync_free) else MemoryBank
    return kind(cfg.labeled, cfg.model.proj_dim)


def autocast(cfg, device: torch.device):
    """The step's autocast: ``--fast``'s dtype, ``--amp``'s bf16, or none (fp32, released)."""
    if device.type != "cuda" or not (cfg.fast or cfg.amp):
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=autocast_dtype(device) if cfg.fast else torch.bfloat16)


def backward_and_update(loss, optimizer, scaler=None):
    """loss.backward() and optimizer.step(), through the GradScaler when there is one."""
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
