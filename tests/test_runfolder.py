"""camlkit/runfolder.py: one run per folder, with real concurrent processes and real signals."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from camlkit.errors import CamlkitError
from camlkit.runfolder import RUN_FILES, RunLock, check_new_run, run_folder, run_files

# Takes the run folder (argv[1]) and holds it until told to stop (stdin closes) or killed.
HOLDER = textwrap.dedent("""
    import sys
    from camlkit.errors import CamlkitError
    from camlkit.runfolder import run_folder
    try:
        with run_folder(sys.argv[1], resume=False, overwrite=False):
            (__import__("pathlib").Path(sys.argv[1]) / "log.csv").write_text("iteration\\n")
            print("holding", flush=True)
            sys.stdin.read()
    except CamlkitError as err:
        print(f"camlkit train: error: {err}", file=sys.stderr)
        sys.exit(2)
""")


def take(folder, **kwargs):
    """Start a process that takes ``folder``; returns it once it holds the folder or has ended."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)
    line = process.stdout.readline()
    return process, line.strip() == "holding"


def finish(process):
    process.stdin.close()
    process.wait(timeout=30)
    return process.stderr.read()


def test_second_process_on_the_same_folder_gets_one_line_naming_the_first(tmp_path):
    run = tmp_path / "run"
    first, holding = take(run)
    assert holding
    try:
        second, second_holding = take(run)
        err = finish(second)
        assert not second_holding and second.returncode == 2
        assert len(err.strip().splitlines()) == 1
        assert f"process {first.pid}" in err and str(run) in err and "in use" in err
    finally:
        assert finish(first) == ""
    assert first.returncode == 0
    assert (run / ".lock").read_text() == ""  # released: the pid is gone from the lock file


def test_killed_holder_leaves_a_stale_lock_that_the_next_run_reports_and_takes(tmp_path):
    run = tmp_path / "run"
    first, holding = take(run)
    assert holding
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert (run / ".lock").read_text().strip() == str(first.pid)
    (run / "log.csv").unlink()  # the killed run's files are the next test's business
    second, holding = take(run)
    try:
        assert holding
        assert (run / ".lock").read_text().strip() == str(second.pid)
    finally:
        err = finish(second)
    assert second.returncode == 0
    assert len(err.strip().splitlines()) == 1 and f"process {first.pid}" in err and "killed" in err


def test_sigterm_releases_the_lock_cleanly(tmp_path):
    run = tmp_path / "run"
    first, holding = take(run)
    assert holding
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=30) == 143
    assert (run / ".lock").read_text() == ""
    with RunLock(run) as lock:
        assert lock.stale_pid is None


def test_a_finished_run_is_not_overwritten_by_a_new_one(tmp_path):
    run = tmp_path / "run"
    first, _ = take(run)
    finish(first)
    second, holding = take(run)
    err = finish(second)
    assert not holding and second.returncode == 2
    assert len(err.strip().splitlines()) == 1 and "already holds a run (log.csv)" in err and "--resume" in err


@pytest.mark.parametrize("name", list(RUN_FILES) + ["checkpoints/best.pth", "tb/events.out"])
def test_any_run_file_makes_the_folder_taken(tmp_path, name):
    (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text("x")
    with pytest.raises(CamlkitError, match=f"already holds a run .*{name.split('/')[0]}.*--overwrite"):
        check_new_run(tmp_path)


def test_empty_or_foreign_folder_is_free(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "checkpoints").mkdir()
    check_new_run(tmp_path)
    check_new_run(tmp_path / "not-yet")


def test_resume_needs_a_training_checkpoint(tmp_path):
    (tmp_path / "model_final.pth").write_text("x")
    with pytest.raises(CamlkitError, match="last.pth: nothing to resume"):
        check_new_run(tmp_path, resume=True)
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pth").write_text("x")
    check_new_run(tmp_path, resume=True)
    with pytest.raises(CamlkitError, match="choose one"):
        check_new_run(tmp_path, resume=True, overwrite=True)


def test_overwrite_removes_the_old_run_files_only(tmp_path):
    for name in ("config.json", "summary.md", "checkpoints/last.pth", "tb/events.out"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("old")
    (tmp_path / "notes.txt").write_text("mine")
    with run_folder(tmp_path, overwrite=True) as folder:
        assert folder == tmp_path and run_files(folder) == []
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "checkpoints").is_dir()


def test_out_naming_a_file(tmp_path):
    (tmp_path / "run").write_text("x")
    with pytest.raises(CamlkitError, match="existing file"):
        with run_folder(tmp_path / "run"):
            pass


def test_run_folder_cleans_the_temporaries_of_killed_writers(tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / "checkpoints").mkdir()
    stale = tmp_path / "checkpoints" / f".last.pth.tmp-{dead.pid}"
    stale.write_bytes(b"half")
    (tmp_path / "checkpoints" / "last.pth").write_bytes(b"whole")
    with run_folder(tmp_path, resume=True):
        assert not stale.exists() and (tmp_path / "checkpoints" / "last.pth").exists()
    assert str(stale) in capsys.readouterr().err


def test_lock_in_this_process_is_released_on_error(tmp_path):
    with pytest.raises(RuntimeError):
        with run_folder(tmp_path):
            assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
            raise RuntimeError("the training failed")
    assert (tmp_path / ".lock").read_text() == ""
    with run_folder(tmp_path):  # free again
        pass


def test_holder_script_imports_this_checkout():
    # the subprocesses above must test this worktree's camlkit, not another installed copy
    out = subprocess.run([sys.executable, "-c", "import camlkit; print(camlkit.__file__)"],
                         capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).parent.parent == Path(__file__).resolve().parents[1]
