"""tests/conftest.py's ``la_dir``: ``$CAMLKIT_DATA`` when set (a wrong setting fails naming it),
else ``data/LA`` inside the repository; never a folder beside it. Each case runs a tiny test in a
fresh pytest process, under a copy of the conftest placed in a repository of this test's own
(``root/repo``), with an LA folder beside it (``root/shared/LA``) that must never be taken.
And its slow watch: an unmarked test over the limit is named, and fails the run under CI=true."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from camlkit.data import case_path, read_list

CONFTEST = Path(__file__).resolve().parent / "conftest.py"
pytestmark = pytest.mark.slow  # a fresh pytest process per case (about 5 s each)

TINY = '''
def test_where(la_dir, la_case_paths):
    print(f"LA_DIR={la_dir}")
    assert len(la_case_paths) == 2 and all(p.is_file() for p in la_case_paths)
'''


def few_cases(la_dir, folder, n=2):
    """An LA folder holding copies of the first ``n`` test cases and lists naming only them."""
    cases = read_list(la_dir / "test.list")[:n]
    for case in cases:
        shutil.copytree(case_path(la_dir, case).parent, case_path(folder, case).parent)
    for name in ("train.list", "test.list"):
        (folder / name).write_text("".join(f"{case}\n" for case in cases))
    return folder


def run_tiny(root, data_env, tests=TINY, env=(), args=()):
    """pytest on ``root/repo/tests`` (the conftest and ``tests``); its ``data/LA`` is
    ``root/repo/data/LA``. Returns (exit code, output)."""
    folder = root / "repo" / "tests"
    folder.mkdir(parents=True)
    shutil.copy(CONFTEST, folder / "conftest.py")
    (folder / "test_tiny.py").write_text(tests)
    markers = "[pytest]\nmarkers =\n    slow: slow\n    browser: browser\n"
    (root / "repo" / "pytest.ini").write_text(markers)  # the rootdir
    environ = {k: v for k, v in os.environ.items() if k not in ("CAMLKIT_DATA", "CI", "CAMLKIT_SLOW_LIMIT_S")}
    if data_env is not None:
        environ["CAMLKIT_DATA"] = str(data_env)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *args,
                           str(folder)], cwd=root / "repo", env={**environ, **dict(env)}, capture_output=True,
                          text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_camlkit_data_is_used_when_set(tmp_path, la_dir):
    copy = few_cases(la_dir, tmp_path / "copy")  # and no data/LA in the repository
    code, out = run_tiny(tmp_path, copy)
    assert code == 0, out
    assert f"LA_DIR={copy}" in out


def test_camlkit_data_wins_over_data_la(tmp_path, la_dir):
    copy = few_cases(la_dir, tmp_path / "copy")
    few_cases(la_dir, tmp_path / "repo" / "data" / "LA")
    code, out = run_tiny(tmp_path, copy)
    assert code == 0, out
    assert f"LA_DIR={copy}" in out


def test_camlkit_data_pointing_nowhere_fails_naming_it(tmp_path, la_dir):
    few_cases(la_dir, tmp_path / "repo" / "data" / "LA")  # a fall-back that must not be taken
    code, out = run_tiny(tmp_path, tmp_path / "nowhere")
    assert code == 1, out
    assert f"CAMLKIT_DATA={tmp_path / 'nowhere'}: no train.list there" in out
    assert "LA_DIR=" not in out


@pytest.mark.parametrize("present", [True, False])
def test_without_camlkit_data_data_la_in_the_repository(tmp_path, la_dir, present):
    few_cases(la_dir, tmp_path / "shared" / "LA")  # beside the repository: never looked at
    if present:
        few_cases(la_dir, tmp_path / "repo" / "data" / "LA")
    code, out = run_tiny(tmp_path, None)
    if present:
        assert code == 0, out
        assert f"LA_DIR={tmp_path / 'repo' / 'data' / 'LA'}" in out
    else:
        assert code == 1, out
        assert f"LA data not found at {tmp_path / 'repo' / 'data' / 'LA'} and CAMLKIT_DATA is not set" in out


SLEEPY = """
import time
import pytest

def test_sleepy_and_unmarked():
    time.sleep(0.6)

@pytest.mark.slow
def test_sleepy_and_marked():
    time.sleep(0.6)

@pytest.mark.browser
def test_sleepy_in_a_browser():
    time.sleep(0.6)

def test_quick():
    pass
"""


@pytest.mark.parametrize("ci, args", [(False, ()), (True, ()), (True, ("-n", "1"))])
def test_an_unmarked_slow_test_is_named_and_fails_ci(tmp_path, ci, args):
    env = {"CAMLKIT_SLOW_LIMIT_S": "0.4", **({"CI": "true"} if ci else {})}
    code, out = run_tiny(tmp_path, None, tests=SLEEPY, env=env, args=args)
    assert code == (1 if ci else 0), out
    assert "4 passed" in out
    named = out[out.index("unmarked tests over 0.4 s: mark them slow"):]
    assert "test_tiny.py::test_sleepy_and_unmarked" in named
    assert "test_sleepy_and_marked" not in named and "test_quick" not in named
    assert "test_sleepy_in_a_browser" not in named  # the fast loop leaves browser tests out too
    assert ("CI=true: the run fails" in named) == ci


def test_nothing_is_named_under_the_limit(tmp_path):
    code, out = run_tiny(tmp_path, None, tests=SLEEPY, env={"CAMLKIT_SLOW_LIMIT_S": "5", "CI": "true"})
    assert code == 0, out
    assert "unmarked tests over" not in out
