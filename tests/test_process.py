"""One liveness rule everywhere: a process camlkit may not signal or look into (another user's:
PermissionError) is running, to camlkit.files.pid_alive, the run-folder lock
(camlkit.runtime.runfolder), the leftover cleaner and camlkit.lab.process.is_alive.

The kernel's refusal is simulated (``os.kill`` and the read of ``/proc/<pid>/stat`` raise
PermissionError, as for another user's process under ``/proc`` mounted with ``hidepid``) for a
pid that really is gone, so only the rule can make it count as running. tests/test_launch.py
checks the same with a real process of another user."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from camlkit.files import clean_temps, pid_alive
from camlkit.lab import process
from camlkit.runtime.runfolder import LOCK_NAME, RunLock, lock_holder


def gone_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def denied(monkeypatch):
    """A gone pid that the kernel now answers as another user's: signal 0 and /proc refused."""
    pid = gone_pid()
    real_kill, real_read = os.kill, Path.read_text

    def kill(target, signal):
        if target == pid:
            raise PermissionError(1, "Operation not permitted")
        return real_kill(target, signal)

    def read_text(path, *args, **kwargs):
        if str(path).startswith(f"/proc/{pid}/"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_read(path, *args, **kwargs)

    monkeypatch.setattr(os, "kill", kill)
    monkeypatch.setattr(Path, "read_text", read_text)
    return pid


def record_of(pid, start_ticks):
    return {"pid": pid, "start_ticks": start_ticks, "host": socket.gethostname()}


def test_a_gone_pid_is_not_running():
    pid = gone_pid()
    assert not pid_alive(pid)
    assert not process.is_alive(record_of(pid, None))
    assert not process.is_alive(record_of(pid, 12345))


def test_pid_alive_counts_a_process_it_may_not_signal(denied):
    assert pid_alive(denied)


def test_is_alive_counts_it_even_when_proc_hides_its_start_time(denied):
    with pytest.raises(PermissionError):
        process.start_ticks(denied)
    assert process.is_alive(record_of(denied, None))
    assert process.is_alive(record_of(denied, 12345))  # its start time cannot be read: running


def test_a_recycled_pid_whose_start_time_shows_is_not_the_run():
    here = process.start_ticks(os.getpid())
    assert here is not None  # Linux: /proc tells
    assert process.is_alive(record_of(os.getpid(), here))
    assert not process.is_alive(record_of(os.getpid(), here + 1))


def test_the_run_folder_lock_counts_it_as_its_holder(tmp_path, denied):
    (tmp_path / LOCK_NAME).write_text(f"{denied}\n")
    assert lock_holder(tmp_path) is None  # a pid in the file alone: nobody holds the lock
    lock = RunLock(tmp_path).acquire()
    try:
        assert lock.stale_pid is None  # not reported as killed
    finally:
        lock.release()


def test_the_leftover_cleaner_keeps_its_temporary_file(tmp_path, denied):
    kept = tmp_path / f".log.csv.tmp-{denied}"
    left = tmp_path / f".summary.json.tmp-{gone_pid()}"  # a writer that is really gone
    for path in (kept, left):
        path.write_text("being written")
    assert clean_temps(tmp_path) == [left] and kept.exists()
