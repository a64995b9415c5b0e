"""Shared fixtures: the real LA data (read-only) and small crops of it.

``la_dir``: the preprocessed LA folder ``../shared/LA`` beside the repository. Tests use real
cases; if the folder is missing the tests fail loudly instead of skipping.
``la_case_paths``: the HDF5 paths of the first two test cases (from ``test.list``).
"""

from pathlib import Path

import pytest

LA_DIR = Path(__file__).resolve().parents[2] / "shared" / "LA"


@pytest.fixture(scope="session")
def la_dir():
    if not (LA_DIR / "train.list").is_file():
        pytest.fail(f"LA data not found at {LA_DIR}: the tests need the shared preprocessed LA folder")
    return LA_DIR


@pytest.fixture(scope="session")
def la_case_paths(la_dir):
    from camlkit.data import case_path, read_list

    return [case_path(la_dir, case) for case in read_list(la_dir / "test.list")[:2]]


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """Tests speak HTTP to servers on 127.0.0.1 only: no proxy setting may send them elsewhere."""
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
