"""Writing outputs so that none is ever half-written, and cleaning up after interrupted writers.

Every file camlkit writes — checkpoints, run results, predicted masks, downloaded and
preprocessed cases — goes through :func:`atomic_path`:

1. the writer fills ``.<name>.tmp-<pid>`` in the destination folder (``<pid>``: the writing
   process), created by a plain ``open`` so its mode follows the user's umask (0644 under the
   usual 022; ``tempfile.mkstemp`` would make it 0600);
2. the file is flushed to disk (``fsync``) and renamed over ``<name>``: a reader sees the old
   file or the new one, never a part of either;
3. if the writer raises (a bad value, a full disk, Ctrl-C, SIGTERM under
   :func:`sigterm_as_exit`), the temporary file is removed and ``<name>`` is untouched; a full
   disk is one line, :class:`DiskFullError`.

A process killed outright (SIGKILL, power loss) cannot clean up, so its temporary files stay.
They are recognisable by name, and :func:`clean_temps` removes those whose process no longer
runs — each command calls it on the folders it writes to before it starts.

Symbolic links: the rename of step 2 replaces a link planted at ``<name>`` by the new file and
leaves the link's target untouched, and the temporary file is created with ``O_EXCL |
O_NOFOLLOW``. A file that is written in place instead (a run's ``log.csv``, a launched run's
``train.out``) is opened by :func:`open_no_link`, which refuses a link in one line.
"""

import errno
import os
import re
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

from camlkit.errors import CamlkitError

# .<name>.tmp-<pid>, optionally followed by the suffix some writers need (nibabel reads it)
TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)(?P<suffix>\.[^.]+(\.gz)?)?$")


def temp_path(path, suffix="") -> Path:
    """The temporary name :func:`atomic_path` uses for ``path`` in this process."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DiskFullError(CamlkitError):
    """No space left on the device (or over quota) while writing ``path``; ``path`` is unchanged."""

    def __init__(self, path):
        path = Path(path)
        kept = f"; {path} still holds its previous version" if path.exists() else ""
        super().__init__(f"no space left on the device writing {path}{kept}")
        self.path = path


@contextmanager
def atomic_path(path, suffix=""):
    """Yield a temporary path beside ``path``; when the block ends without an error, the file
    written there is flushed to disk and renamed to ``path``. On an error it is removed, and a
    full disk is reported as :class:`DiskFullError`.

    ``suffix`` is appended to the temporary name for writers that choose the format by the
    extension (``".nii.gz"`` for nibabel).
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise CamlkitError(f"{path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise CamlkitError(f"{path}: is a folder, expected a file name to write")
    tmp = temp_path(path, suffix)
    tmp.unlink(missing_ok=True)  # left by an earlier process that had our pid
    try:
        yield tmp
        if not tmp.is_file():
            raise RuntimeError(f"{tmp}: the writer did not create its file")
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)  # make the rename itself durable
    except OSError as err:
        if is_disk_full(err):
            tmp.unlink(missing_ok=True)
            raise DiskFullError(path) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(data: bytes, path) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        # a new file: never an existing one, nor the target of a link planted under its name
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(text: str, path) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return write_bytes(text.encode("utf-8"), path)


def link_message(path) -> str:
    """The one line that refuses to write through the symbolic link ``path``."""
    path = Path(path)
    return (f"{path} is a symbolic link (to {os.readlink(path)}): camlkit writes this file itself "
            f"and never through a link; remove the link (its target is left untouched)")


def open_no_link(path, mode="a", **kwargs):
    """Open ``path`` for writing in place ("w" truncates, "a" appends; add "b" for bytes) without
    following a symbolic link: a link at ``path`` is a one-line CamlkitError and its target is
    not opened. ``kwargs`` go to ``open`` (``newline=""`` for csv)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise CamlkitError(link_message(path)) from None
        raise
    return os.fdopen(fd, mode, **kwargs)


# ----------------------------------------------------------------------------- leftovers

def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours counts as running).

    camlkit's one liveness rule, for run-folder locks, leftover temporary files and launched runs
    (camlkit.lab.process.is_alive): a process we may not signal (another user's: the kernel
    answers PermissionError) exists, so it counts as running."""
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


def start_ticks(pid):
    """When the process started, in clock ticks after boot (Linux /proc); None when the process
    is gone or a zombie, or elsewhere than Linux. Raises PermissionError when /proc hides another
    user's process (mounted with ``hidepid``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except PermissionError:
        raise
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) "
    return None if fields[0] == "Z" else int(fields[19])  # state, ..., starttime (field 22)


def clean_temps(folder) -> list:
    """Remove the temporary files of :func:`atomic_path` that dead processes left in ``folder``.

    Only names of the form ``.<name>.tmp-<pid>[suffix]`` whose ``<pid>`` no longer runs are
    removed; a running writer's file is kept. Returns the removed paths.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in folder.iterdir():
        match = TEMP_NAME.match(entry.name)
        if match and entry.is_file() and not pid_alive(int(match["pid"])):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


# ----------------------------------------------------------------------------- signals

@contextmanager
def sigterm_as_exit():
    """While active, SIGTERM raises ``SystemExit(143)`` instead of ending the process at once, so
    that ``finally`` blocks (temporary files, locks) run as they do for Ctrl-C.

    Only the main thread can install a signal handler; elsewhere this does nothing. Processes
    forked meanwhile (data-loader workers) keep the default behaviour: they simply end.
    """
    owner = os.getpid()

    def exit_on_sigterm(signum, frame):
        if os.getpid() != owner:  # a forked child: end it as SIGTERM normally would
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        print("camlkit: stopped by SIGTERM", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM)

    try:
        previous = signal.signal(signal.SIGTERM, exit_on_sigterm)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def is_disk_full(err: BaseException) -> bool:
    """Whether an error raised while writing means the disk is full (ENOSPC) or over quota."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)
