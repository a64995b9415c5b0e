"""How camlkit's CPU threads wait, so that a shared laptop stays usable.

PyTorch runs its CPU kernels on OpenMP threads. When a thread finishes its share of an operation
early it waits for the others, and GNU OpenMP (libgomp, which the PyTorch wheels ship) lets it
*spin* — burn its core — for up to ``GOMP_SPINCOUNT`` iterations (300,000 by default, a few
milliseconds) before it sleeps; Intel's OpenMP spins for ``KMP_BLOCKTIME`` (200 ms). Alone, spinning
saves the wake-up of the next operation. Beside another busy process it is a disaster: the spinning
thread takes the core that the other process, or our own thread that still has work, needs.
(Measured on 2 cores, ``bench/bench_train.py --preset quick --beside-busy``.)

``share_cpu()`` sets a short spin: long enough to bridge the gap between two consecutive
operations of a training step (so the run-alone speed stays), short enough that a waiting thread
gives its core away within a fraction of a millisecond. Measured on the project's 2-core machine,
otherwise quiet (``bench/bench_train.py --preset quick --method caml --iterations 20
--beside-busy --rounds 2 --try OMP_WAIT_POLICY=PASSIVE``, s/it alone -> beside one busy
single-threaded process, two rounds):

* PyTorch's defaults: 0.682 -> 3.262 (x4.78) and 0.692 -> 4.917 (x7.11);
* this policy: 0.676 -> 1.292 (x1.91) and 0.685 -> 1.309 (x1.91) — no slower alone;
* ``OMP_WAIT_POLICY=PASSIVE`` (no spin at all): 0.704 -> 1.284 (x1.82), 3 % slower alone.

With one of the two cores taken, x2 is the fair share for a step that keeps two threads busy.
The settings are read once, when PyTorch loads its OpenMP library, so the function must run
before ``import torch``; a setting the user already made is left alone.
"""

import os

SPIN_COUNT = "10000"  # libgomp spins of a waiting thread before it sleeps (default 300000)
BLOCK_TIME = "1"  # ms, the same for Intel's OpenMP runtime (default 200)

# the variables that decide how an OpenMP thread waits; if any is set, the user has chosen
WAIT_SETTINGS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def share_cpu(environ=None):
    """Make OpenMP threads wait politely. Returns the settings it made ({} if the user chose).

    ``environ``: the environment to change (default ``os.environ``; a dict for a child process).
    Only has an effect in the current process if torch has not been imported yet.
    """
    environ = os.environ if environ is None else environ
    if any(name in environ for name in WAIT_SETTINGS):
        return {}
    made = {"GOMP_SPINCOUNT": SPIN_COUNT, "KMP_BLOCKTIME": BLOCK_TIME}
    environ.update(made)
    return made
