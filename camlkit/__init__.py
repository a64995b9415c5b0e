"""camlkit: CAML (Correlation-Aware Mutual Learning, MICCAI 2023) made readable and runnable.

The method, one module per concept:  vnet (V-Net) -> cma (§2.2) -> caml (the two-branch
network) -> cps (l_c) -> occ (§2.3, Eq. 2-3) -> losses / ramps -> step (Eq. 1).
A run is a config tree (config) trained by a short loop (train). The machinery lives in
folders by role, each importing only from the ones below it (README.md, "Layout"; import-linter
checks it): diagnostics/ (what OCC and CMA hold, in numbers), data/ (the LA cases, batches,
download), runtime/ (checkpoints, resume, logs, run folders, trained networks), evaluation/
(inference, metrics, evaluate, reports), viz/ (the figures), cli/ (the ``camlkit`` command) and
lab/ (training as a background process, the runs a notebook finds). The authors' trained
networks: ``camlkit.pretrained(labeled=16)`` (camlkit.runtime.weights).

``import camlkit`` loads nothing else and changes nothing (no environment variable, no thread
count): the names below are loaded on first use, and the CPU-sharing policy
(camlkit.runtime.threads) is applied by the entry points that need it — the command line and a
launched run (camlkit.cli.main), a notebook kernel (camlkit.course.share_cpu).
"""

import importlib

__version__ = "0.2.0"

# camlkit's names at the top, each with the module that defines it
EXPORTS = {"CAMLConfig": "camlkit.caml", "CAMLNet": "camlkit.caml", "VNet": "camlkit.vnet",
           "load_released_checkpoint": "camlkit.runtime.released",
           "pretrained": "camlkit.runtime.weights",  # the authors' trained networks
           "sliding_window_predict": "camlkit.evaluation.inference"}


def __getattr__(name):
    # on first use (PEP 562): importing camlkit must not load torch before camlkit.cli.main has
    # set how OpenMP threads wait, which libgomp reads once, when torch loads it
    if name in EXPORTS:
        return getattr(importlib.import_module(EXPORTS[name]), name)
    raise AttributeError(f"module 'camlkit' has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *EXPORTS])


__all__ = list(EXPORTS)
