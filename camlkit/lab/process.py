"""One training run as an operating-system process: spawn it, recognise it, its entry point.

camlkit.lab.launch builds the notebook functions (launch, start, attach, Run) on these:
:func:`spawn` claims the run folder's lock, starts ``python -m camlkit.lab.process train ...``
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

from camlkit.cli import main
from camlkit.errors import CamlkitError
from camlkit.files import open_no_link, pid_alive, start_ticks, write_text
from camlkit.runtime.runfolder import HANDOVER_ENV, claim, lock_holder

PROCESS_FILE = "process.json"


OUT_FILE = "train.out"


RECORD_ENV = "CAMLKIT_PROCESS_FILE"  # tells the launched process where its process.json is


def is_alive(record) -> bool:
    """True if the process of ``record`` (process.json) is running and is that run.

    The one rule (camlkit.files.pid_alive): a process we may not signal or look into
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


def ignores_signal(pid, signum) -> bool:
    """Whether the process ignores ``signum`` (Linux /proc: its SigIgn mask). A job that a
    non-interactive shell starts with ``&`` ignores SIGINT: Ctrl-C's signal cannot stop it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    mask = next((line.split()[1] for line in status.splitlines() if line.startswith("SigIgn:")), "0")
    return bool(int(mask, 16) >> (signum - 1) & 1)


def wait_for_start(run_dir, timeout_s):
    """A run whose process holds the folder but has written neither process.json (:func:`spawn`
    writes it just after the start) nor config.json yet: wait for one of them, then one line
    naming the holder. Returns at once when the folder is not held."""
    deadline = time.monotonic() + timeout_s
    while not any((Path(run_dir) / n).is_file() for n in (PROCESS_FILE, "config.json")):
        holder = lock_holder(run_dir)
        if holder is None:
            return
        if time.monotonic() > deadline:
            raise CamlkitError(f"{run_dir} is in use by process {holder}, a run still starting (no "
                               f"{PROCESS_FILE} or config.json yet): attach(run_dir) again in a moment")
        time.sleep(0.05)


def child_command(run_dir, resume=False):
    """The launched process: ``camlkit train --config RUN_DIR/config.json --out RUN_DIR
    [--resume]`` through this module's entry point (default signal handling, see
    :func:`child_main`): the child trains the config the run folder holds."""
    run_dir = Path(run_dir)
    return [sys.executable, "-m", "camlkit.lab.process", "train", "--config", str(run_dir / "config.json"),
            "--out", str(run_dir), *(["--resume"] if resume else [])]


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


def spawn(config_json, run_dir, resume, iterations, hint=""):
    """Claim ``run_dir`` (its lock, then the checks of camlkit.runtime.runfolder.check_new_run),
    write ``config_json`` there as config.json (None: keep the run's own, to resume as it was),
    start ``camlkit train --config`` on it in its own session with the lock handed over, output
    appended to train.out; write process.json. Returns (Popen, record)."""
    run_dir = Path(run_dir)
    command = child_command(run_dir, resume)
    env = child_env()
    lock = claim(run_dir, resume=resume, hint=hint)  # one line if another process holds it
    try:
        if config_json is not None:
            write_text(config_json, run_dir / "config.json")
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
    lock.pass_on(process.pid)  # the process holds the run folder from now on (before process.json:
    # whoever reads process.json then finds its pid holding the lock)
    record = {"pid": process.pid, "start_ticks": start_ticks(process.pid), "command": command,
              "started": time.time(), "host": socket.gethostname(), "iterations": iterations}
    write_record(run_dir, record)
    return process, record


def child_main():
    """``python -m camlkit.lab.process train ...``: ``camlkit train`` as camlkit.lab.launch
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

    return main()


if __name__ == "__main__":
    sys.exit(child_main())
