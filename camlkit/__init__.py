"""camlkit: CAML (Correlation-Aware Mutual Learning, MICCAI 2023) made readable and runnable.

The method, one module per concept:  vnet (V-Net) -> cma (§2.2) -> caml (the two-branch
network) -> cps (l_c) -> occ (§2.3, Eq. 2-3) -> losses / ramps -> step (Eq. 1).
A run is a config tree (config) trained by a short loop (train). The machinery lives in
folders by role: data/ (the LA cases, augmentation, batches, download), evaluation/ (inference,
metrics, evaluate, reports, what a network's CMA and OCC hold), runtime/ (checkpoints, resume,
logs, run folders and processes, trained networks), cli/ (the ``camlkit`` command) and viz/
(the figures). The authors' trained networks: ``camlkit.pretrained(labeled=16)``
(camlkit.runtime.weights).
"""

from camlkit.runtime.threads import share_cpu

# OpenMP reads how its idle threads wait once, when torch loads it: before the imports below.
# A short spin keeps a shared laptop usable (camlkit.runtime.threads); a user's own setting wins.
share_cpu()

from camlkit.caml import CAMLConfig, CAMLNet  # noqa: E402
from camlkit.runtime.released import load_released_checkpoint  # noqa: E402
from camlkit.runtime.weights import pretrained  # noqa: E402  (the authors' trained networks)
from camlkit.vnet import VNet  # noqa: E402

__version__ = "0.2.0"


def __getattr__(name):  # lazy: inference pulls in the I/O libraries
    if name == "sliding_window_predict":
        from camlkit.evaluation.inference import sliding_window_predict

        return sliding_window_predict
    raise AttributeError(f"module 'camlkit' has no attribute {name!r}")


__all__ = ["CAMLConfig", "CAMLNet", "VNet", "load_released_checkpoint", "pretrained",
           "sliding_window_predict"]
