"""pytest settings for running the notebooks with nbval (``pytest --nbval-lax notebooks``).

Kernels inherit this process' environment, so the notebooks run at smoke size unless
CAMLKIT_SMOKE is set explicitly (``CAMLKIT_SMOKE=0`` for the full sizes), with one torch thread:
on a shared 2-core machine two spinning OpenMP threads can make a smoke run 50x slower.

At smoke size the kernels also get a throw-away PyTorch cache (``TORCH_HOME``) holding a tiny
stand-in for the authors' 16-labeled network, in their file layout
(camlkit.weights.write_standin): notebooks 4, 5 and 7 then take the path a learner takes after
``camlkit download --weights 16``, without the 80 MB file and without touching a real cache.
"""

import os
import tempfile
from pathlib import Path

os.environ.setdefault("CAMLKIT_SMOKE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


def standin_torch_home() -> Path:
    """Point TORCH_HOME at a fresh folder whose camlkit cache holds a stand-in for the authors'
    16-labeled file; returns the folder."""
    from camlkit.weights import default_dest, entry, write_standin

    home = Path(tempfile.mkdtemp(prefix="camlkit-torch-home-"))
    os.environ["TORCH_HOME"] = str(home)  # camlkit.weights.default_dest() follows it
    write_standin(default_dest() / entry(16).name)
    return home


if os.environ["CAMLKIT_SMOKE"] not in ("", "0"):
    standin_torch_home()
