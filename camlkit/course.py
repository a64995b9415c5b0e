"""Notebook setup: the run-size switch (``CAMLKIT_SMOKE``) and the one rule that finds the LA data.

Every notebook starts with ``course.smoke()`` (CI runs them at their smallest size) and
``course.find_data_dir()``; the training command's ``--data`` default follows the same rule.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from camlkit.errors import CamlkitError

SMOKE_ENV = "CAMLKIT_SMOKE"  # CAMLKIT_SMOKE=1: every notebook runs at its smallest size (CI)
DATA_ENV = "CAMLKIT_DATA"  # where the preprocessed LA folder is, if not in a default place
DATA_PLACES = ("data/LA", "../shared/LA")  # tried in this order, see find_data_dir


def smoke() -> bool:
    """True when the environment asks for smoke-sized notebook runs (``CAMLKIT_SMOKE=1``)."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def data_candidates(path=None) -> list[Path]:
    """The folders :func:`find_data_dir` tries, in order.

    ``path`` if given, else ``$CAMLKIT_DATA`` if set (nothing else then: a wrong setting is an
    error, not a silent fallback), else ``data/LA`` and then ``../shared/LA``, each relative to
    the working folder, its parent (a notebook runs in ``notebooks/``) and the repository root.
    """
    if path is not None or os.environ.get(DATA_ENV):
        return [Path(path if path is not None else os.environ[DATA_ENV]).expanduser()]
    repo = Path(__file__).resolve().parents[1]
    bases = dict.fromkeys([Path.cwd(), Path.cwd().parent, repo])
    return [Path(os.path.normpath(base / place)) for place in DATA_PLACES for base in bases]


def find_data_dir(path=None) -> Path:
    """The preprocessed LA folder (the one holding ``train.list``): see :func:`data_candidates`.

    Raises a CamlkitError listing every place it looked.
    """
    candidates = data_candidates(path)
    for candidate in candidates:
        if (candidate / "train.list").is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise CamlkitError(f"no LA data folder (with train.list) found; looked in: {looked}. "
                       f"Set {DATA_ENV}=/path/to/LA or put the preprocessed release in data/LA.")


def smoke_runs_dir() -> Path:
    """A throw-away runs folder for smoke-sized notebook runs (CI): in the temporary folder, one
    per parent process. A notebook kernel's parent is the Jupyter server (or nbval), so a
    restarted kernel finds its runs again while two test sessions never share them."""
    return Path(tempfile.gettempdir()) / f"camlkit-smoke-runs-{os.getppid()}"
