"""pytest settings for running the notebooks with nbval (``pytest --nbval-lax notebooks``).

Kernels inherit this process' environment, so the notebooks run at smoke size unless
CAMLKIT_SMOKE is set explicitly (``CAMLKIT_SMOKE=0`` for the full sizes), with one torch thread
(on a shared 2-core machine two spinning OpenMP threads can make a smoke run 50x slower), and
write their runs to a temporary folder (or ``$CAMLKIT_RUNS`` when set), one subfolder per notebook,
not the repository's runs/.

At smoke size, notebooks 4, 5 and 7 get a throw-away PyTorch cache (``TORCH_HOME``) holding a
tiny stand-in for the authors' 16-labeled network, in their file layout
(``tests/standins.py``), so they take the path a learner takes after
``camlkit download --weights 16`` without the 80 MB file and without touching a real cache. The
stand-in calls bright voxels atrium and its CMA attends to bright tokens (``bright_is_atrium``):
OCC needs a network that predicts both classes, and notebook 4 a map with something in it.
The other notebooks get an empty cache.

Every notebook cell is marked ``slow``: a notebook runs as one kernel whose cells depend on the
ones before, so the fast loop (``-m "not slow"``) leaves whole notebooks out, never single cells.
"""

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("CAMLKIT_SMOKE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# the notebooks' runs go to runs/ beside notebooks/ (camlkit.runtime.places.runs_root); a test
# session writes them to a folder of its own instead, one subfolder per notebook (set before its
# kernel starts, below): a smoke run of one notebook never meets another's of other settings
RUNS = os.environ.get("CAMLKIT_RUNS") or tempfile.mkdtemp(prefix="camlkit-nb-runs-")


AUTHORS_PATH = ("04_cma.ipynb", "05_occ.ipynb", "07_results.ipynb")  # driven through the authors'-weights path


def standin_torch_home() -> str:
    """A fresh TORCH_HOME whose camlkit cache holds a stand-in for the authors' 16-labeled file."""
    from standins import write_standin  # tests/standins.py (pytest's pythonpath)

    from camlkit.runtime.weights import default_dest, entry

    home = tempfile.mkdtemp(prefix="camlkit-torch-home-")
    write_standin(default_dest(home) / entry(16).name, bright_is_atrium=True)
    return home


HOMES = {}  # "standin" / "empty" -> a TORCH_HOME of this test session


def pytest_runtest_setup(item):
    """Before a notebook's kernel starts (its first cell), choose its runs folder and the cache
    it will see."""
    if not str(item.fspath).endswith(".ipynb"):
        return
    name = Path(str(item.fspath)).name
    os.environ["CAMLKIT_RUNS"] = str(Path(RUNS) / Path(name).stem)
    if os.environ["CAMLKIT_SMOKE"] in ("", "0"):
        return
    if not HOMES:
        HOMES.update(standin=standin_torch_home(), empty=tempfile.mkdtemp(prefix="camlkit-torch-home-"))
    os.environ["TORCH_HOME"] = HOMES["standin" if name in AUTHORS_PATH else "empty"]


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items):
    for item in items:
        if str(item.fspath).endswith(".ipynb"):
            item.add_marker(pytest.mark.slow)
