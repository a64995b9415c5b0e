"""Training as a background process: launch it, attach to it again, stop it, resume it, watch it.

A training run inside a notebook kernel dies with the kernel and cannot be seen once its tab is
closed; on a GPU the ``paper`` preset runs for most of a day. As nanoGPT and MONAI users do, the
notebooks instead start ``python -m camlkit.cli train ...`` as a process of its own (its own
session, so a kernel restart or an interrupt of the notebook does not reach it) and watch the
files it writes into its run folder:

* ``train.out``     its stdout and stderr (the progress bar, errors);
* ``log.csv``       one row per logged iteration (written by ``camlkit.train``);
* ``process.json``  written here: pid, command, start time, host, and the process' start time as
  the kernel counts it, so that a later ``attach`` knows the pid is still *this* run and not a
  recycled pid.

Each function works alone from a notebook cell::

    run = launch(config, run_dir)      # or launch(["--preset", "quick", ...]), launch({"preset": ...});
                                       # without run_dir: runs/<preset>-<method>-<labeled>L-seed<seed>
    run = attach(run_dir)              # after a kernel restart or in another notebook
    run.status()                       # running / finished / stopped / failed, iteration, ETA
    run.stop(); run.resume(); run.wait()
    watch(run)                         # live progress bar and curves, redrawn from log.csv
                                       # (camlkit.watch, re-exported here with curves and
                                       # summary_markdown; smoke_runs_dir from camlkit.course)

A run is *finished* when its process is gone and its final files are there, *stopped* when its
process is gone after :meth:`Run.stop` asked it to stop, and *failed* when it is gone otherwise
(``train.out`` then says why).
"""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from camlkit.course import smoke_runs_dir
from camlkit.errors import CamlkitError
from camlkit.files import write_text
from camlkit.runlog import read_log
from camlkit.train_cli import config_from_args, config_to_args, train_parser
from camlkit.watch import curves, summary_markdown, watch

PROCESS_FILE = "process.json"
OUT_FILE = "train.out"
STATES = ("running", "finished", "stopped", "failed")


# ----------------------------------------------------------------------------- commands

def _as_config(spec):
    """A resolved TrainConfig from a TrainConfig, a dict of its fields by path (with "preset";
    ``{"preset": "smoke", "step.similarity": "cosine"}``) or ``camlkit train`` options (read by
    camlkit.train_cli.config_from_args, as the command line reads them)."""
    from camlkit.config import TrainConfig, make_config

    if isinstance(spec, TrainConfig):
        return spec.resolved()
    if isinstance(spec, dict):
        spec = dict(spec)
        return make_config(spec.pop("preset", "quick"), **spec)
    words = [str(w) for w in spec]
    try:
        args = train_parser().parse_args(words)
    except SystemExit:
        raise CamlkitError(f"not valid `camlkit train` options: {' '.join(words)}") from None
    return config_from_args(args)


# ----------------------------------------------------------------------------- processes

def _start_ticks(pid):
    """When the process started, in clock ticks after boot (Linux /proc); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (name) "
    return None if fields[0] == "Z" else int(fields[19])  # state, ..., starttime (field 22)


def _is_alive(record) -> bool:
    """True if the process of ``record`` (process.json) is running and is that run."""
    if record.get("host") != socket.gethostname():
        return False  # launched on another machine: we cannot see it
    pid = record["pid"]
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    if record.get("start_ticks") is not None:
        return _start_ticks(pid) == record["start_ticks"]  # None for a zombie or a vanished pid
    return True


def _write_record(run_dir, record):
    write_text(json.dumps(record, indent=2) + "\n", Path(run_dir) / PROCESS_FILE)


def _spawn(command, run_dir, record_extra):
    """Start ``command`` in its own session, output appended to train.out; write process.json."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
    package_root = str(Path(__file__).resolve().parents[1])  # so the child imports this camlkit
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with open(run_dir / OUT_FILE, "ab") as out:
        out.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                   stderr=subprocess.STDOUT, env=env, start_new_session=True)
    record = {"pid": process.pid, "start_ticks": _start_ticks(process.pid), "command": command,
              "started": time.time(), "host": socket.gethostname(), **record_extra}
    _write_record(run_dir, record)
    return process, record


def launch(spec, run_dir=None, runs="runs") -> "Run":
    """Start ``camlkit train`` for ``spec`` in the background, writing ``run_dir``.

    ``spec``: a TrainConfig, a dict of its fields by path (with "preset"), or ``camlkit train``
    options as a list of words. ``run_dir`` defaults to the config's ``out``, else
    ``<runs>/<preset>-<method>-<labeled>L-seed<seed>`` (camlkit.config.run_dir). Returns at once.
    """
    from camlkit.config import run_dir as config_run_dir

    cfg = _as_config(spec)
    run_dir = Path(run_dir if run_dir is not None else config_run_dir(cfg, runs)).resolve()
    for name in (PROCESS_FILE, "checkpoints/last.pth", "summary.json"):
        if (run_dir / name).exists():
            raise CamlkitError(f"{run_dir} already holds a run ({name}): attach(run_dir) to it, "
                               "or choose another folder")
    command = [sys.executable, "-m", "camlkit.cli", "train", *config_to_args(cfg),
               "--out", str(run_dir)]
    process, record = _spawn(command, run_dir, {"iterations": cfg.iterations})
    return Run(run_dir, record, process)


def attach(run_dir) -> "Run":
    """The run that :func:`launch` started in ``run_dir``, running or not (works after a kernel
    restart, from another notebook or another Python process)."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / PROCESS_FILE
    if not path.is_file():
        raise CamlkitError(f"{run_dir}: no {PROCESS_FILE} (not a run started by "
                           "camlkit.launch); launch(config, run_dir) starts one")
    try:
        record = json.loads(path.read_text())
        record["pid"], record["command"]  # noqa: B018 (both must be there)
    except (ValueError, KeyError, TypeError) as err:
        raise CamlkitError(f"{path}: unreadable ({err})") from None
    return Run(run_dir, record)


def start(spec, run_dir=None, runs="runs") -> "Run":
    """What a notebook cell wants: attach if the run folder (as in :func:`launch`) holds a
    launched run (resuming it if it was stopped), launch otherwise. A folder holding a run of
    other settings raises."""
    from camlkit.config import run_dir as config_run_dir

    run_dir = Path(run_dir if run_dir is not None else config_run_dir(_as_config(spec), runs))
    if not (run_dir / PROCESS_FILE).exists():
        return launch(spec, run_dir)
    run = attach(run_dir)
    wanted = config_to_args(_as_config(spec))
    if run.args != wanted:
        raise CamlkitError(f"{run_dir} holds a run of other settings ({' '.join(run.args)}); "
                           "delete it or choose another folder")
    if run.status().state == "stopped":
        run.resume()
    return run


# ----------------------------------------------------------------------------- status

def read_rows(path):
    """log.csv rows as dicts, [] before the first; a line still being written is skipped."""
    return read_log(path, missing_ok=True)


def tail(path, n=5):
    """The last ``n`` non-empty lines of a text file; of a progress bar redrawn with carriage
    returns, only its latest state."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.path.getsize(path) - 20_000))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    lines = (line.rsplit("\r", 1)[-1] for line in text.split("\n"))  # a bar's latest state
    return [line for line in lines if line.strip()][-n:]


@dataclass
class Status:
    run_dir: Path
    state: str  # one of STATES
    iteration: int  # iterations done (from log.csv)
    total: int  # iterations of the run
    seconds_per_iteration: float | None
    tail: list  # last lines of train.out

    @property
    def eta_s(self):
        if self.state != "running" or not self.seconds_per_iteration:
            return None
        return self.seconds_per_iteration * max(self.total - self.iteration, 0)

    def line(self) -> str:
        text = f"{self.run_dir.name}: {self.state}, iteration {self.iteration:,} / {self.total:,}"
        if self.seconds_per_iteration:
            text += f", {self.seconds_per_iteration:.2f} s/it"
        if self.eta_s is not None:
            text += f", about {_duration(self.eta_s)} left"
        return text

    def __str__(self):
        return "\n".join([self.line(), *(f"  | {l}" for l in self.tail)])


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _speed(rows):
    """Seconds per iteration over the rows of the latest process (``seconds`` restarts at 0 when
    a run resumes)."""
    segment = rows[-1:]
    for row in reversed(rows[:-1]):
        if row["seconds"] >= segment[0]["seconds"]:
            break
        segment.insert(0, row)
    if len(segment) < 2:
        return None
    first, last = segment[0], segment[-1]
    return (last["seconds"] - first["seconds"]) / max(last["iteration"] - first["iteration"], 1)


class Run:
    """A training process and its run folder (from :func:`launch` or :func:`attach`)."""

    def __init__(self, run_dir, record, process=None):
        self.run_dir, self.record = Path(run_dir), record
        self._process = process  # a Popen when this Python process started it

    def __repr__(self):
        return f"Run({str(self.run_dir)!r}, pid={self.pid})"

    @property
    def pid(self):
        return self.record["pid"]

    @property
    def args(self):
        """The ``camlkit train`` options of this run (without --out and --resume)."""
        words = self.record["command"][4:]
        out = words.index("--out")
        return [w for w in words[:out] + words[out + 2:] if w != "--resume"]

    def is_running(self) -> bool:
        if self._process is not None and self._process.poll() is not None:
            return False  # our child has exited (poll also reaps it)
        return _is_alive(self.record)

    def status(self) -> Status:
        rows = read_rows(self.run_dir / "log.csv")
        if self.is_running():
            state = "running"
        elif (self.run_dir / "summary.json").exists() or (
                "--no-eval" in self.args and (self.run_dir / "model_final.pth").exists()):
            state = "finished"
        elif self.record.get("stop_requested"):
            state = "stopped"
        else:
            state = "failed"
        done = rows[-1]["iteration"] + 1 if rows else 0
        return Status(self.run_dir, state, done, self.record.get("iterations", done),
                      _speed(rows), tail(self.run_dir / OUT_FILE))

    def wait(self, timeout_s=None, poll_s=1.0) -> Status:
        """Until the process ends (or ``timeout_s`` passes); returns the status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.is_running():
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(poll_s)
        return self.status()

    def stop(self, timeout_s=120) -> Status:
        """Interrupt the run as Ctrl-C would (SIGINT) and wait for it to end. It keeps its last
        checkpoint (every ``checkpoint_every`` iterations): :meth:`resume` continues from there."""
        if not self.is_running():
            return self.status()
        self.record["stop_requested"] = time.time()
        _write_record(self.run_dir, self.record)
        os.killpg(self.pid, signal.SIGINT)  # its own session: the group is the run
        status = self.wait(timeout_s, poll_s=0.2)
        if status.state == "running":
            raise CamlkitError(f"{self.run_dir}: pid {self.pid} still runs {timeout_s} s after "
                               "SIGINT (evaluating? try again, or kill it)")
        return status

    def resume(self) -> "Run":
        """Start the run again from ``checkpoints/last.pth`` (``camlkit train ... --resume``)."""
        state = self.status().state
        if state in ("running", "finished"):
            raise CamlkitError(f"{self.run_dir}: the run is {state}; nothing to resume")
        if not (self.run_dir / "checkpoints" / "last.pth").exists():
            raise CamlkitError(f"{self.run_dir}: no checkpoints/last.pth to resume from "
                               "(stopped before its first checkpoint): launch it again")
        command = [w for w in self.record["command"] if w != "--resume"] + ["--resume"]
        extra = {k: v for k, v in self.record.items() if k == "iterations"}
        self._process, self.record = _spawn(command, self.run_dir, extra)
        return self


__all__ = ["launch", "attach", "start", "Run", "Status", "watch", "curves", "smoke_runs_dir",
           "config_to_args", "read_rows", "summary_markdown"]
