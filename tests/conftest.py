"""Shared fixtures: the real LA data (read-only) and small crops of it.

``la_dir``: the preprocessed LA folder: ``$CAMLKIT_DATA`` when set (as the README says), else
``data/LA`` inside the repository (where ``camlkit download`` and scripts/test.sh put it). Tests
use real cases; if the folder is missing the tests fail loudly, naming where they looked, instead
of skipping. Nothing else outside the repository is read: the facts tests compare against are in
tests/data/.
``la_case_paths``: the HDF5 paths of the first two test cases (from ``test.list``).

The ``slow`` marker keeps ``-m "not slow"`` a fast loop; :class:`SlowWatch` keeps the marker
honest: an unmarked test whose setup, call and teardown take more than ``SLOW_LIMIT_S`` together
is named at the end of the run, and under ``CI=true`` the run fails (``$CAMLKIT_SLOW_LIMIT_S``
sets another limit).
"""

import os
from pathlib import Path

import pytest

DATA_ENV = "CAMLKIT_DATA"
SLOW_LIMIT_S = 10.0  # the marker's rule is 5 s; the limit leaves room for a busy machine
SLOW_LIMIT_ENV = "CAMLKIT_SLOW_LIMIT_S"  # another limit, in seconds (tests/test_conftest.py uses it)
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


class SlowWatch:
    """Adds up each test's setup, call and teardown seconds and names the unmarked ones over the
    limit. Registered on the process that reports (the controller under pytest-xdist), so it sees
    the notebooks' cells too."""

    def __init__(self, limit_s=SLOW_LIMIT_S, fail=False):
        self.limit_s, self.fail = limit_s, fail
        self.seconds, self.marked = {}, {}

    def pytest_runtest_logreport(self, report):
        self.seconds[report.nodeid] = self.seconds.get(report.nodeid, 0.0) + report.duration
        # the fast loop leaves out what is marked slow or browser (a browser test is never fast)
        self.marked[report.nodeid] = "slow" in report.keywords or "browser" in report.keywords

    def too_slow(self):
        """[(seconds, test id)] of the unmarked tests over the limit, slowest first."""
        return sorted(((s, name) for name, s in self.seconds.items()
                       if s > self.limit_s and not self.marked[name]), reverse=True)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session):
        if self.fail and self.too_slow() and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        found = self.too_slow()
        if not found:
            return
        terminalreporter.section(f"unmarked tests over {self.limit_s:g} s: mark them slow", sep="=")
        for seconds, name in found:
            terminalreporter.line(f"{seconds:6.1f} s  {name}")
        if self.fail:
            terminalreporter.line("CI=true: the run fails until they are marked @pytest.mark.slow")


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # an xdist worker: its controller watches
        limit_s = float(os.environ.get(SLOW_LIMIT_ENV) or SLOW_LIMIT_S)
        config.pluginmanager.register(SlowWatch(limit_s, fail=os.environ.get("CI") == "true"), "camlkit-slow-watch")
