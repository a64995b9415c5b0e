"""The one rule that turns a ``--device`` name into a torch.device, with one clear line if it cannot.

``auto`` is CUDA when this PyTorch sees a GPU, else the CPU (nanoGPT's ``device='auto'``);
``cpu``, ``cuda``, ``cuda:N`` and ``mps`` are taken as named, after checking that this machine
has them, so a typo or a missing GPU stops a run before any work instead of mid-way.
"""

import torch

from camlkit.errors import CamlkitError


def resolve_device(name="auto") -> torch.device:
    """``auto`` -> cuda if available, else cpu; any other name is checked to exist here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise CamlkitError(f"--device {name}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build that sees no GPU"
            raise CamlkitError(f"--device {name}: this PyTorch ({torch.__version__}) is {build}; "
                               f"use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise CamlkitError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                               f"GPU(s), cuda:0..cuda:{torch.cuda.device_count() - 1}")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise CamlkitError(f"--device {name}: MPS is not available here; use --device cpu or auto")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise CamlkitError(f"--device {name}: expected auto, cpu, cuda or cuda:N")
    return device
