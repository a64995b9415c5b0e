"""How pytest-xdist shares the suite between its workers (scripts/test.sh: ``--dist loadfile``).

``--dist loadfile`` runs a test file on one worker, in order (its module fixtures are made once, a
notebook's cells run in one kernel in sequence). Here it does so for every file but those in
:data:`SPLIT`: each of their tests starts its own kernel or JupyterLab and needs nothing from its
neighbours, and together they are the longest files of the suite (minutes each), so their tests
go one by one to whichever worker is free.
"""

import pytest

SPLIT = ("tests/test_notebooks.py", "tests/test_browser.py", "tests/test_browser_course.py")

try:
    from xdist.scheduler import LoadFileScheduling
except ImportError:  # pytest-xdist is in the test extra; without it there is nothing to share
    LoadFileScheduling = None


def scope_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its file, or the test itself in a file of SPLIT."""
    where = nodeid.split("::")[0]
    return nodeid if where in SPLIT else where


if LoadFileScheduling is not None:
    class SplitLongFiles(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(config, log):
        if config.getvalue("dist") == "loadfile":
            return SplitLongFiles(config, log)
        return None
