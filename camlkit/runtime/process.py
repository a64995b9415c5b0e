"""One training run as an operating-system process: spawn it, recognise it, its entry point.

camlkit.runtime.launch builds the notebook functions (launch, start, attach, Run) on these:
:func:`spawn` claims the run folder's lock, starts ``python -m camlkit.runtime.process train ...``
in a session of its own with the lock handed over, and writes ``process.json`` (pid, command,
start time, host and the process' start time as the kernel counts it, so that :func:`is_alive`
can tell this run from a recycled pid).
"""

import json
import os
import signal
import site
import socket
import subprocess
import sys
import time
from pathlib import Path

from camlkit.runtime.files import open_no_link, pid_alive, write_text
from camlkit.runtime.runfolder import HANDOVER_ENV, claim

PROCESS_FILE = "process.json"


OUT_FILE = "train.out"


RECORD_ENV = "CAMLKIT_PROCESS_FILE"  # tells the launched process where its process.json is


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


def is_alive(record) -> bool:
    """True if the process of ``record`` (process.json) is running and is that run.

    The one rule (camlkit.runtime.files.pid_alive): a process we may not signal or look into
    (another user's, PermissionError) counts as running. Where /proc shows its start time, that
    time must be the recorded one: a recycled pid is another process, not the run.
    """
    if record.get("host") != socket.gethostname():
        return False  # launched on another machine: we cannot see it
    pid = record["pid"]
    if not pid_alive(pid):
        return False
    if record.get("start_ticks") is None:
        return True
    try:
        return start_ticks(pid) == record["start_ticks"]  # None for a zombie or a vanished pid
    except PermissionError:  # another user's process, hidden: running, and we cannot tell more
        return True


def child_command(args, run_dir, resume=False):
    """The launched process: ``camlkit train ARGS --out RUN_DIR [--resume]`` through this
    module's entry point (default signal handling, see :func:`child_main`)."""
    return [sys.executable, "-m", "camlkit.runtime.process", "train", *args, "--out", str(run_dir),
            *(["--resume"] if resume else [])]


def child_env(environ=None) -> dict:
    """The launched process's environment: this one, unbuffered, with the folder that holds
    this ``camlkit`` package first on ``PYTHONPATH`` so that the child imports the same camlkit
    (a checkout used without installing it) — the folder *above* the package, never ``camlkit/``
    itself (that would make ``config``, ``errors``, ... importable as top-level modules), and
    nothing when that folder is one of the interpreter's site-packages (an installed camlkit)."""
    env = dict(os.environ if environ is None else environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
    above = Path(__file__).resolve().parents[2]  # the folder holding camlkit/
    installed = {Path(p).resolve() for p in site.getsitepackages() + [site.getusersitepackages()]}
    if above not in installed:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(above), env.get("PYTHONPATH")) if p)
    return env


def write_record(run_dir, record):
    write_text(json.dumps(record, indent=2) + "\n", Path(run_dir) / PROCESS_FILE)


def spawn(args, run_dir, resume, iterations, hint=""):
    """Claim ``run_dir`` (its lock, then the checks of camlkit.runtime.runfolder.check_new_run), start
    ``camlkit train ARGS`` there in its own session with the lock handed over, output appended
    to train.out; write process.json. Returns (Popen, record)."""
    run_dir = Path(run_dir)
    command = child_command(args, run_dir, resume)
    env = child_env()
    lock = claim(run_dir, resume=resume, hint=hint)  # one line if another process holds it
    try:
        env[HANDOVER_ENV], env[RECORD_ENV] = str(lock.fd), str(run_dir / PROCESS_FILE)
        with open_no_link(run_dir / OUT_FILE, "ab") as out:
            out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n".encode())
            out.flush()
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                       pass_fds=(lock.fd,))
    except BaseException:
        lock.release()
        raise
    try:
        record = {"pid": process.pid, "start_ticks": start_ticks(process.pid), "command": command,
                  "started": time.time(), "host": socket.gethostname(), "iterations": iterations}
        write_record(run_dir, record)
    finally:
        lock.pass_on(process.pid)  # the process holds the run folder from now on
    return process, record


def child_main():
    """``python -m camlkit.runtime.process train ...``: ``camlkit train`` as camlkit.runtime.launch
    starts it.

    A process inherits the signals its parent ignores (a background job of a shell, a service
    ignores SIGINT): the run puts SIGINT and SIGTERM back to their defaults, so that
    :meth:`Run.stop` (SIGINT, as Ctrl-C) reaches it. A stop that came while Python was still
    starting (its SIGINT ignored, lost) is read from process.json, which stop() writes first."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    record_path = os.environ.pop(RECORD_ENV, None)
    try:
        record = json.loads(Path(record_path).read_text()) if record_path else {}
    except (OSError, ValueError):
        record = {}
    if record.get("pid") == os.getpid() and record.get("stop_requested"):
        print("camlkit train: interrupted before it started", file=sys.stderr)
        return 130
    from camlkit.cli import main

    return main()


if __name__ == "__main__":
    sys.exit(child_main())
