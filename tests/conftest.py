"""Shared fixtures: the real LA data (read-only) and small crops of it.

``la_dir``: the preprocessed LA folder: ``$CAMLKIT_DATA`` when set (as the README says), else
``data/LA`` inside the repository (where ``camlkit download`` and scripts/test.sh put it). Tests
use real cases; if the folder is missing the tests fail loudly, naming where they looked, instead
of skipping. Nothing else outside the repository is read: the facts tests compare against are in
tests/data/.
``la_case_paths``: the HDF5 paths of the first two test cases (from ``test.list``).
"""

import os
from pathlib import Path

import pytest

DATA_ENV = "CAMLKIT_DATA"
LA_DIR = Path(__file__).resolve().parents[1] / "data" / "LA"  # used when $CAMLKIT_DATA is not set


def find_la_dir(environ=None) -> tuple[Path | None, str]:
    """(the LA folder, '') or (None, why not). ``$CAMLKIT_DATA`` wins when set: a setting that
    points nowhere is an error, not a silent fall-back to another copy of the data."""
    environ = os.environ if environ is None else environ
    if environ.get(DATA_ENV):
        chosen = Path(environ[DATA_ENV]).expanduser()
        if (chosen / "train.list").is_file():
            return chosen, ""
        return None, (f"{DATA_ENV}={environ[DATA_ENV]}: no train.list there; point it at the "
                      f"preprocessed LA folder or unset it to use {LA_DIR}")
    if (LA_DIR / "train.list").is_file():
        return LA_DIR, ""
    return None, (f"LA data not found at {LA_DIR} and {DATA_ENV} is not set: the tests need the "
                  f"preprocessed LA folder (bash scripts/test.sh fetches it there)")


@pytest.fixture(scope="session")
def la_dir():
    found, why = find_la_dir()
    if found is None:
        pytest.fail(why)
    return found


@pytest.fixture(scope="session")
def la_case_paths(la_dir):
    from camlkit.data import case_path, read_list

    return [case_path(la_dir, case) for case in read_list(la_dir / "test.list")[:2]]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Tests speak HTTP to servers on 127.0.0.1 only: no proxy setting may send them elsewhere."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
