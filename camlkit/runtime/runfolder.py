"""A run folder belongs to one run: an exclusive lock, and no silent overwrite of another run.

``camlkit train --out RUN`` writes ``config.json``, ``log.csv``, ``tb/events.out.tfevents.*``,
``checkpoints/last.pth``, ``model_final.pth`` and the results (``cases.csv``, ``summary.md``,
``summary.json``, ``curves.png``) into RUN; a run started by camlkit.lab.launch also has
``process.json`` and ``train.out``. These names (:data:`RUN_FILES`, :data:`CHECKPOINT`,
:data:`TB_EVENTS`, :data:`LAUNCH_FILES`) are the run's; anything else in RUN is the user's and is
never removed. Two processes writing there at once would interleave one log and mix the final
files of two runs, so:

- :class:`RunLock` takes an exclusive ``fcntl.flock`` on ``RUN/.lock`` and writes its pid
  there (and its start time as the kernel counts it: a recycled pid is another process). A
  second process gets one line naming the holder's pid. The kernel drops the lock when its
  holder ends, however it ends; a pid still written in the file after that is the trace of
  a process that was killed (SIGKILL, power loss), and the next taker reports it. camlkit.lab.launch
  takes the lock before it starts the training process and hands it over (the process inherits
  the locked file; ``$CAMLKIT_RUN_LOCK_FD`` names it), so no other run can slip in between.
  :func:`lock_holder` is the one answer to "which process is this run?": the pid written there
  counts only while the lock is actually held (a probe for it fails) and its start time is the
  one written; camlkit signals no other process.
- :func:`check_new_run` refuses a folder that holds a run unless the run resumes (``--resume``)
  or replaces it (``--overwrite``, which removes exactly the run's files first so that nothing
  of the two runs mixes). A start that stopped before its first checkpoint (bad data, Ctrl-C,
  SIGTERM) has nothing to resume or keep: the same command removes it, says so, and starts again.
- No file of the run is written through a symbolic link: a link planted under one of its names
  (or as ``.lock``) is refused in one line, and its target is left untouched.
- :func:`run_folder` does all of it, cleans the temporary files killed writers left
  (camlkit.files), and turns SIGTERM into a clean exit, for the duration of a ``with`` block.
"""

import errno
import fcntl
import os
import sys
import time
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from camlkit.errors import CamlkitError
from camlkit.files import clean_temps, link_message, pid_alive, sigterm_as_exit, start_ticks

LOCK_NAME = ".lock"
HANDOVER_ENV = "CAMLKIT_RUN_LOCK_FD"  # the inherited descriptor of a lock camlkit.lab.launch took
RUN_FILES = ("config.json", "log.csv", "model_final.pth", "summary.md", "summary.json", "cases.csv",
             "curves.png")
CHECKPOINTS = "checkpoints"
CHECKPOINT = "checkpoints/last.pth"
TB_EVENTS = "tb/events.out.tfevents.*"  # TensorBoard's scalars (camlkit.runtime.runlog)
LAUNCH_FILES = ("process.json", "train.out")  # written by camlkit.lab.launch around the process
# what a run has written before its first checkpoint: nothing there to resume or to keep
STARTUP_FILES = ("config.json", "log.csv", TB_EVENTS, *LAUNCH_FILES)
RUN_FOLDERS = (CHECKPOINTS, "tb")
CLI_HINT = "pass --resume to continue it, --overwrite to replace it, or choose another --out"


def run_files(folder) -> list:
    """The run's files present in ``folder``, as names relative to it (sorted)."""
    folder = Path(folder)
    found = [name for name in (*RUN_FILES, CHECKPOINT, *LAUNCH_FILES)
             if os.path.lexists(folder / name)]
    found += [f"tb/{p.name}" for p in folder.glob(TB_EVENTS)]
    return sorted(found)


def is_startup_only(names) -> bool:
    """Whether run files ``names`` are those of a start that stopped before its first checkpoint."""
    return bool(names) and all(any(fnmatch(n, p) for p in STARTUP_FILES) for n in names)


def refuse_links(folder) -> None:
    """One line if a name the run writes (or a folder it writes into) is a symbolic link."""
    folder = Path(folder)
    for name in (*RUN_FOLDERS, *RUN_FILES, CHECKPOINT, *LAUNCH_FILES):
        if (folder / name).is_symlink():
            raise CamlkitError(link_message(folder / name))
    for path in folder.glob(TB_EVENTS):
        if path.is_symlink():
            raise CamlkitError(link_message(path))


def remove_run_files(folder, names) -> None:
    """Remove the run files ``names`` (from :func:`run_files`); ``tb/`` too once it is empty."""
    folder = Path(folder)
    for name in names:
        (folder / name).unlink(missing_ok=True)
    try:
        (folder / "tb").rmdir()
    except OSError:  # absent, or it holds something that is not the run's
        pass


def check_new_run(folder, resume=False, overwrite=False, launched=False, hint=CLI_HINT) -> None:
    """Refuse to start a run in a folder that holds one, unless resuming or overwriting.

    ``resume``: the folder must hold ``checkpoints/last.pth``. ``overwrite``: the old run's files
    are removed (exactly :func:`run_files`; a user's own files stay). A start that stopped
    before its first checkpoint is removed, with one line on stderr, and the run starts again
    (with or without ``resume``). ``launched``: this process was started by camlkit.lab.launch, so
    ``process.json``, ``train.out`` and ``config.json`` (the config it trains) are its own.
    ``hint``: what the refusal suggests.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise CamlkitError("--resume and --overwrite: choose one (continue the run, or replace it)")
    if folder.exists() and not folder.is_dir():
        raise CamlkitError(f"--out {folder}: is an existing file, expected a run folder")
    refuse_links(folder)
    present = [n for n in run_files(folder) if not (launched and n in (*LAUNCH_FILES, "config.json"))]
    if resume and (folder / CHECKPOINT).is_file():
        return
    if is_startup_only(present):
        remove_run_files(folder, present)
        print(f"camlkit: {folder}: removed {', '.join(present)}, left by a run that stopped before "
              f"its first checkpoint (nothing to resume); starting it again", file=sys.stderr)
        return
    if resume:
        raise CamlkitError(f"{folder / CHECKPOINT}: nothing to resume (no training checkpoint in "
                           f"{folder})")
    if present and not overwrite:
        shown = ", ".join(present[:4]) + (", ..." if len(present) > 4 else "")
        raise CamlkitError(f"{folder} already holds a run ({shown}): {hint}")
    remove_run_files(folder, present)


class RunLock:
    """An exclusive, process-wide lock on a run folder (``<folder>/.lock`` holds the pid).

    ``acquire()`` creates the folder if needed and raises a one-line CamlkitError naming the
    holder's pid if another process holds the lock. ``stale_pid`` is the pid a killed holder
    left in the file (None if the last holder released the lock normally); ``handed_over`` is
    True when camlkit.lab.launch took the lock for this process before starting it.
    """

    def __init__(self, folder):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd = None
        self.stale_pid = None
        self.handed_over = False

    def acquire(self):
        if self.folder.exists() and not self.folder.is_dir():
            raise CamlkitError(f"{self.folder}: is an existing file, expected a run folder")
        fd = self._inherited()
        if fd is None:
            fd = self._open()
            if not _lock_now(fd):
                holder = self._holder(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise CamlkitError(f"{self.folder} is in use by {who} (another camlkit run): wait "
                                   f"for it to end or choose another --out") from None
            previous = _read_pid(fd)
            if previous and previous != os.getpid() and not pid_alive(previous):
                self.stale_pid = previous
        try:
            _write_holder(fd, os.getpid())
        except OSError as err:  # a full disk (ENOSPC), a quota, `ulimit -f`
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            raise CamlkitError(f"{self.path}: cannot write the run folder's lock ({err.strerror}); "
                               f"nothing was started") from None
        self.fd = fd
        return self

    def _open(self):
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise CamlkitError(link_message(self.path)) from None
            raise CamlkitError(f"{self.path}: cannot create the run folder's lock "
                               f"({err.strerror})") from None

    def _inherited(self):
        """The descriptor of this folder's lock that camlkit.lab.launch locked and passed to this
        process ($CAMLKIT_RUN_LOCK_FD), or None."""
        text = os.environ.get(HANDOVER_ENV, "")
        try:
            fd = int(text)
            same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
        except (ValueError, OSError):
            return None
        if not same:
            return None
        del os.environ[HANDOVER_ENV]  # ours now: not for processes this one starts
        self.handed_over = True
        return fd

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

    def pass_on(self, pid):
        """Write ``pid`` into the lock file and close this process' descriptor without unlocking:
        the process ``pid``, started with the descriptor (``pass_fds``), holds the lock from now
        on, until it releases it or ends."""
        if self.fd is not None:
            try:
                _write_holder(self.fd, pid)
            finally:
                os.close(self.fd)
                self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


def _lock_now(fd, tries=5) -> bool:
    """Take the exclusive lock on ``fd`` without waiting; a few quick tries, since a
    :func:`lock_holder` probe holds a shared lock for an instant."""
    for attempt in range(tries):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.02 * (attempt + 1))
    return False


def _write_holder(fd, pid):
    """``<pid> <start ticks>`` into the lock file: who holds it, and since when (Linux)."""
    try:
        ticks = start_ticks(pid)
    except PermissionError:
        ticks = None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{pid}{'' if ticks is None else f' {ticks}'}\n".encode(), 0)
    os.fsync(fd)


def _read_holder(fd):
    """(pid, start ticks or None) written in the lock file, or (None, None)."""
    words = os.pread(fd, 64, 0).decode(errors="replace").split()
    if not words or not words[0].isdigit():
        return None, None
    ticks = int(words[1]) if len(words) > 1 and words[1].isdigit() else None
    return int(words[0]), ticks


def _read_pid(fd):
    return _read_holder(fd)[0]


def _is_held(fd) -> bool:
    """Whether some process holds the lock: a shared lock cannot be taken beside it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def lock_holder(folder):
    """The process that holds ``folder``'s lock (a run in progress), else None.

    The pid written in the lock file counts only if the lock is actually held (a probe for it
    fails: a killed run's pid left in the file is no holder, even once the pid is reused) and,
    where the file gives its start time, the process with that pid started then. Every signal
    camlkit sends to a run goes to this pid (camlkit.lab.launch.Run)."""
    try:
        fd = os.open(Path(folder) / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        pid, ticks = _read_holder(fd)
        held = pid is not None and _is_held(fd)
    finally:
        os.close(fd)
    if not held or not pid_alive(pid):
        return None
    try:
        return pid if ticks is None or start_ticks(pid) == ticks else None
    except PermissionError:  # another user's process, its start time hidden: it holds the lock
        return pid


def claim(path, resume=False, overwrite=False, hint=CLI_HINT) -> RunLock:
    """Take the run folder ``path`` for a run: the lock (one line and no work if another process
    holds it; a killed holder's stale lock is reported on stderr and taken over), the temporary
    files of killed writers removed, and :func:`check_new_run`. Returns the held RunLock."""
    folder = Path(path)
    lock = RunLock(folder).acquire()
    try:
        if lock.stale_pid:
            print(f"camlkit: {folder}: process {lock.stale_pid} held this run folder and was "
                  f"killed; taking it over", file=sys.stderr)
        refuse_links(folder)  # before cleaning: never into a linked checkpoints/
        for place in (folder, folder / CHECKPOINTS):  # safe whatever comes next: we hold the lock
            for leftover in clean_temps(place):
                print(f"camlkit: removed {leftover}, left by an interrupted writer", file=sys.stderr)
        check_new_run(folder, resume, overwrite, launched=lock.handed_over, hint=hint)
    except BaseException:
        lock.release()
        raise
    return lock


@contextmanager
def run_folder(path, resume=False, overwrite=False):
    """Own the run folder ``path`` for the duration of the block (:func:`claim`), with SIGTERM
    ending the block like Ctrl-C, so partial files are removed. Yields the folder as a Path."""
    lock = claim(path, resume, overwrite)
    try:
        with sigterm_as_exit():
            yield Path(path)
    finally:
        lock.release()
