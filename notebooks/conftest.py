"""pytest settings for running the notebooks with nbval (``pytest --nbval-lax notebooks``).

Kernels inherit this process' environment, so the notebooks run at smoke size unless
CAMLKIT_SMOKE is set explicitly (``CAMLKIT_SMOKE=0`` for the full sizes), with one torch thread:
on a shared 2-core machine two spinning OpenMP threads can make a smoke run 50x slower.
"""

import os

os.environ.setdefault("CAMLKIT_SMOKE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
