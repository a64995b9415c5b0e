"""Where the preprocessed LA data is: the one rule that ``camlkit train``, ``camlkit evaluate``
and the notebooks (camlkit.course) follow when no folder is given.

``$CAMLKIT_DATA`` if set (nothing else then: a wrong setting is an error, not a silent
fallback), else ``data/LA`` relative to the working folder, else ``data/LA`` relative to its
parent (a notebook runs in ``notebooks/``). The folder is the one holding ``train.list``.
"""

import os
from pathlib import Path

from camlkit.errors import CamlkitError

DATA_ENV = "CAMLKIT_DATA"  # where the preprocessed LA folder is, if not in data/LA
DATA_PLACE = "data/LA"  # relative to the working folder, then to its parent


def data_candidates(path=None) -> list[Path]:
    """The folders :func:`find_data_dir` tries, in order: ``path`` if given, else
    ``$CAMLKIT_DATA`` if set, else ``data/LA`` of the working folder and of its parent."""
    if path is not None or os.environ.get(DATA_ENV):
        return [Path(path if path is not None else os.environ[DATA_ENV]).expanduser()]
    return list(dict.fromkeys(base / DATA_PLACE for base in (Path.cwd(), Path.cwd().parent)))


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
