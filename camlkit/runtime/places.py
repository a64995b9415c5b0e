"""Where run folders go: one rule for ``camlkit train``, a launched run and the notebooks.

Like the data folder's rule (camlkit.data.folder), it reads the working folder and one
environment variable, never where camlkit itself is installed.
"""

import os
from pathlib import Path

RUNS_ENV = "CAMLKIT_RUNS"  # where run folders go, if not in runs/ (see runs_root)


def runs_root(root=None) -> Path:
    """The folder holding run folders, by one rule: ``root`` if given, else ``$CAMLKIT_RUNS``,
    else ``runs/`` beside ``notebooks/`` when the working folder is a ``notebooks/`` folder (a
    notebook's kernel runs there), else ``runs/`` in the working folder. It never depends on
    where camlkit is installed, nor on which folders exist yet: notebook 4 and notebook 5 (and
    ``camlkit train`` started beside ``notebooks/``) always name the same folder."""
    if root is None:
        root = os.environ.get(RUNS_ENV) or None
    if root is not None:
        return Path(root).expanduser()
    here = Path.cwd()
    return (here.parent if here.name == "notebooks" else here) / "runs"
