"""A run folder belongs to one run: an exclusive lock, and no silent overwrite of another run.

``camlkit train --out RUN`` writes ``config.json``, ``log.csv``, ``tb/``,
``checkpoints/last.pth``, ``model_final.pth`` and the results (``cases.csv``, ``summary.md``,
``summary.json``, ``curves.png``) into RUN. Two processes writing there at once would
interleave one log and mix the final files of two runs, so:

- :class:`RunLock` takes an exclusive ``fcntl.flock`` on ``RUN/.lock`` and writes its pid
  there. A second process gets one line naming the holder's pid. The kernel drops the lock when
  its holder ends, however it ends; a pid still written in the file after that is the trace of
  a process that was killed (SIGKILL, power loss), and the next taker reports it.
- :func:`check_new_run` refuses a folder that holds any run file unless the run resumes
  (``--resume``) or replaces it (``--overwrite``, which removes the old run's files first so
  that nothing of the two runs mixes).
- :func:`run_folder` does both, cleans the temporary files killed writers left
  (camlkit.files), and turns SIGTERM into a clean exit, for the duration of a ``with`` block.
"""

import fcntl
import os
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from camlkit.errors import CamlkitError
from camlkit.files import clean_temps, pid_alive, sigterm_as_exit

LOCK_NAME = ".lock"
RUN_FILES = ("config.json", "log.csv", "model_final.pth", "summary.md", "summary.json", "cases.csv",
             "curves.png")
RUN_FOLDERS = ("tb",)
CHECKPOINTS = "checkpoints"


def run_files(folder) -> list:
    """The run files present in ``folder``, as names relative to it (sorted)."""
    folder = Path(folder)
    found = [name for name in RUN_FILES if (folder / name).exists()]
    found += [name + "/" for name in RUN_FOLDERS if (folder / name).exists()]
    found += [f"{CHECKPOINTS}/{p.name}" for p in sorted((folder / CHECKPOINTS).glob("*.pth"))]
    return sorted(found)


def check_new_run(folder, resume=False, overwrite=False) -> None:
    """Refuse to start a run in a folder that holds one, unless resuming or overwriting.

    ``resume``: the folder must hold ``checkpoints/last.pth``. ``overwrite``: the old run's files
    are removed (only the names in RUN_FILES, RUN_FOLDERS and ``checkpoints/*.pth``).
    """
    folder = Path(folder)
    if resume and overwrite:
        raise CamlkitError("--resume and --overwrite: choose one (continue the run, or replace it)")
    if folder.exists() and not folder.is_dir():
        raise CamlkitError(f"--out {folder}: is an existing file, expected a run folder")
    if resume:
        last = folder / CHECKPOINTS / "last.pth"
        if not last.is_file():
            raise CamlkitError(f"{last}: nothing to resume (no training checkpoint in {folder})")
        return
    present = run_files(folder)
    if present and not overwrite:
        shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
        raise CamlkitError(f"{folder} already holds a run ({shown}): pass --resume to continue it, "
                           f"--overwrite to replace it, or choose another --out")
    for name in present:
        path = folder / name.rstrip("/")
        shutil.rmtree(path) if path.is_dir() else path.unlink()


class RunLock:
    """An exclusive, process-wide lock on a run folder (``<folder>/.lock`` holds the pid).

    ``acquire()`` creates the folder if needed and raises a one-line CamlkitError naming the
    holder's pid if another process holds the lock. ``stale_pid`` is the pid a killed holder
    left in the file (None if the last holder released the lock normally).
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd = None
        self.stale_pid = None

    def acquire(self):
        if self.folder.exists() and not self.folder.is_dir():
            raise CamlkitError(f"{self.folder}: is an existing file, expected a run folder")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise CamlkitError(f"{self.path}: cannot create the run folder's lock ({err.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder(fd)
            os.close(fd)
            who = f"process {holder}" if holder else "another process"
            raise CamlkitError(f"{self.folder} is in use by {who} (another camlkit run): wait for it "
                               f"to end or choose another --out") from None
        previous = _read_pid(fd)
        if previous and previous != os.getpid() and not pid_alive(previous):
            self.stale_pid = previous
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    @staticmethod
    def _holder(fd):
        for _ in range(20):  # the holder writes its pid just after it takes the lock
            pid = _read_pid(fd)
            if pid:
                return pid
            time.sleep(0.05)
        return None

    def release(self):
        """Empty the pid file and drop the lock (the file stays: removing it would race)."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _read_pid(fd):
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None


@contextmanager
def run_folder(path, resume=False, overwrite=False):
    """Own the run folder ``path`` for the duration of the block.

    Takes the lock (one line and no work if another process holds it; a killed holder's stale
    lock is reported on stderr and taken over), removes temporary files of killed writers,
    checks that a new run does not overwrite another (:func:`check_new_run`), and makes
    SIGTERM end the block like Ctrl-C, so partial files are removed. Yields the folder as a Path.
    """
    folder = Path(path)
    lock = RunLock(folder).acquire()
    try:
        if lock.stale_pid:
            print(f"camlkit: {folder}: process {lock.stale_pid} held this run folder and was killed; "
                  f"taking it over", file=sys.stderr)
        for place in (folder, folder / CHECKPOINTS):  # safe whatever comes next: we hold the lock
            for leftover in clean_temps(place):
                print(f"camlkit: removed {leftover}, left by an interrupted writer", file=sys.stderr)
        check_new_run(folder, resume, overwrite)
        with sigterm_as_exit():
            yield folder
    finally:
        lock.release()
