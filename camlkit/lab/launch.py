"""Training as a background process: launch it, attach to it again, stop it, resume it, watch it.

A training run inside a notebook kernel dies with the kernel and cannot be seen once its tab is
closed; on a GPU the ``paper`` preset runs for most of a day. As nanoGPT and MONAI users do, the
notebooks instead start ``python -m camlkit.lab.process train ...`` (``camlkit train`` with SIGINT and
SIGTERM at their defaults, whatever the parent ignores) as a process of its own (its own session,
so a kernel restart or an interrupt of the notebook does not reach it) and watch the files it
writes into its run folder:

* ``train.out``     its stdout and stderr (the progress bar, errors);
* ``log.csv``       one row per logged iteration (written by ``camlkit.train``);
* ``process.json``  written here: pid, command, start time, host, and the process' start time as
  the kernel counts it, so that a later ``attach`` knows the pid is still *this* run and not a
  recycled pid.

Before it starts the process, the launcher takes the run folder's lock (camlkit.runtime.runfolder) and
checks the folder under it; the process inherits the locked file. Two launches into one folder
at once: one starts, the other gets one line naming the holder.

Each function works alone from a notebook cell::

    run = launch(config, run_dir)      # or launch(["--preset", "quick", ...]), launch({"preset": ...});
                                       # without run_dir: runs/<preset>-<method>-<labeled>L-seed<seed>
    run = start(config, run_dir)       # launch, or show the run run_dir holds (resumed if stopped)
    run = attach(run_dir)              # after a kernel restart, in another notebook, or a run
                                       # started from the command line (`camlkit train --out`)
    run.status()                       # running / finished / stopped / failed, iteration, ETA
    run.stop(); run.resume(); run.wait()
    watch(run)                         # live progress bar and curves, redrawn from log.csv
                                       # (camlkit.lab.watch, re-exported here with curves and
                                       # summary_markdown)

A run is *finished* when its process is gone and its final files are there, *stopped* when its
process is gone after :meth:`Run.stop` asked it to stop (a run of the command line: whenever it
is gone unfinished), and *failed* when it is gone otherwise (``train.out`` then says why).
"""

import json
import os
import signal
import time
from pathlib import Path

from camlkit.cli.train import config_from_args, config_to_args, train_parser
from camlkit.config import TrainConfig, from_dict, make_config, to_dict, with_fields
from camlkit.config import run_dir as config_run_dir
from camlkit.data.folder import find_data_dir
from camlkit.errors import CamlkitError
from camlkit.lab.process import (
    OUT_FILE,
    PROCESS_FILE,
    child_command,
    ignores_signal,
    is_alive,
    spawn,
    wait_for_start,
    write_record,
)
from camlkit.lab.watch import (  # noqa: F401
    STATES,
    Status,
    curves,
    read_rows,
    speed,
    summary_markdown,
    tail,
    training_seconds,
    watch,
)
from camlkit.runtime.places import runs_root
from camlkit.runtime.preflight import check_config
from camlkit.runtime.resume import MAY_CHANGE
from camlkit.runtime.runfolder import CHECKPOINT, is_startup_only, lock_holder, run_files

START_WAIT_S = 10  # how long attach waits for a run that holds its folder to write its first file
HINT = ("attach(run_dir) shows it, start(config, run_dir) shows it or resumes it if stopped; or "
        "choose another folder")


# ----------------------------------------------------------------------------- settings

def _as_config(spec):
    """A resolved TrainConfig from a TrainConfig, a dict of its fields by path (with "preset";
    ``{"preset": "smoke", "step.similarity": "cosine"}``) or ``camlkit train`` options (read by
    camlkit.cli.train.config_from_args, as the command line reads them)."""
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


def _run_dir(spec_config, run_dir, runs):
    chosen = run_dir if run_dir is not None else config_run_dir(spec_config, runs_root(runs))
    return Path(chosen).resolve()


def config_json(cfg) -> str:
    """``cfg`` as the config.json the launched child trains (camlkit train --config): its data
    folder an absolute path, since the child may start elsewhere."""
    data = Path(cfg.data) if cfg.data is not None else find_data_dir()
    return json.dumps(to_dict(with_fields(cfg, {"data": str(data.resolve())})), indent=2) + "\n"


def _differs(have, want):
    """The first setting where two configs differ, as resume compares them (camlkit.runtime.resume:
    where the run is written, its data folder's name and how it logs may differ); None if none."""
    theirs, mine = to_dict(have), to_dict(want)
    for key in mine:
        if key not in MAY_CHANGE and theirs.get(key) != mine[key]:
            return f"{key}={theirs.get(key)!r} there, {mine[key]!r} asked"
    return None


# ----------------------------------------------------------------------------- the functions

def launch(spec, run_dir=None, runs=None) -> "Run":
    """Start ``camlkit train`` for ``spec`` in the background, writing ``run_dir``.

    ``spec``: a TrainConfig, a dict of its fields by path (with "preset"), or ``camlkit train``
    options as a list of words. ``run_dir`` defaults to the config's ``out``, else
    ``<runs>/<preset>-<method>-<labeled>L-seed<seed>`` (camlkit.config.run_dir; ``runs``: by
    camlkit.runtime.places.runs_root's rule when not given). Returns at once.
    A folder holding a run is refused in one line (a start that stopped before its first
    checkpoint is removed and started again).
    """
    cfg = _as_config(spec)
    check_config(cfg)  # a value out of its bounds: one line here, not a process that fails
    run_dir = _run_dir(cfg, run_dir, runs)
    process, record = spawn(config_json(cfg), run_dir, False, cfg.iterations, HINT)
    return Run(run_dir, record, process)


def attach(run_dir) -> "Run":
    """The run in ``run_dir``, running or not: one :func:`launch` started (after a kernel
    restart, from another notebook or another Python process), or one ``camlkit train --out
    run_dir`` started from the command line (its settings from ``config.json``)."""
    run_dir = Path(run_dir).resolve()
    path = run_dir / PROCESS_FILE
    wait_for_start(run_dir, START_WAIT_S)  # a run still starting: its first file, or one line
    if not path.is_file():
        return Run(run_dir, _command_line_record(run_dir))
    try:
        record = json.loads(path.read_text())
        record["pid"], record["command"]  # noqa: B018 (both must be there)
        pid = record["pid"]
        if not isinstance(pid, int) or isinstance(pid, bool) or pid < 1:
            raise ValueError(f"pid {pid!r} is not a process id")
        if not isinstance(record["command"], list) or "--out" not in record["command"]:
            raise ValueError(f"command {record['command']!r} is not a camlkit train command")
    except (ValueError, KeyError, TypeError) as err:
        raise CamlkitError(f"{path}: unreadable ({err})") from None
    return Run(run_dir, record)


def _command_line_record(run_dir):
    """What process.json would say of a run ``camlkit train`` started itself: its settings from
    config.json; its pid, while it runs, from the run folder's lock."""
    path = run_dir / "config.json"
    if not path.is_file():
        held = ", ".join(run_files(run_dir)) or "nothing"
        raise CamlkitError(f"{run_dir}: no run to attach to (no {PROCESS_FILE} or config.json; "
                           f"it holds {held}); start(config, run_dir) starts one")
    try:
        cfg = from_dict(json.loads(path.read_text()))
    except (ValueError, TypeError, AttributeError, CamlkitError) as err:
        raise CamlkitError(f"{path}: unreadable ({err})") from None
    return {"pid": lock_holder(run_dir), "command": child_command(run_dir), "iterations": cfg.iterations,
            "launched": False}


def start(spec, run_dir=None, runs=None) -> "Run":
    """What a notebook cell wants: the run of ``spec`` in its folder (as in :func:`launch`).

    Nothing there (or a start that stopped before its first checkpoint): launch it. A run of the
    same settings, launched or run from the command line: attach to it (a finished run is shown,
    a stopped one resumes). A run of other settings raises."""
    cfg = _as_config(spec)
    run_dir = _run_dir(cfg, run_dir, runs)
    present = run_files(run_dir)
    if not present or (is_startup_only(present) and lock_holder(run_dir) is None):
        return launch(cfg, run_dir)  # (the launch's claim removes a start that stopped early)
    run = attach(run_dir)
    different = _differs(run.config(), cfg)
    if different:
        raise CamlkitError(f"{run_dir} holds a run of other settings ({different}); delete it "
                           "or choose another folder")
    if run.status().state == "stopped":
        run.resume(cfg)
    return run


# ----------------------------------------------------------------------------- a run

class Run:
    """A training process and its run folder (from :func:`launch`, :func:`start` or :func:`attach`)."""

    def __init__(self, run_dir, record, process=None):
        self.run_dir, self.record = Path(run_dir), record
        self._process = process  # a Popen when this Python process started it

    def __repr__(self):
        started = "" if self.launched else "camlkit train from a terminal, "
        process = f"pid={self.pid}" if self.pid is not None else "no process running"
        return f"Run({str(self.run_dir)!r}, {started}{process})"

    @property
    def pid(self):
        return self.record["pid"]

    @property
    def launched(self):
        """Whether :func:`launch` started it (else ``camlkit train`` from the command line)."""
        return self.record.get("launched", True)

    @property
    def args(self):
        """The ``camlkit train`` options of this run (without --out and --resume)."""
        words = self.record["command"][4:]
        out = words.index("--out")
        return [w for w in words[:out] + words[out + 2:] if w != "--resume"]

    def config(self):
        """The run's TrainConfig: its config.json (what the launched process trains), else the
        options of a process.json written before the child read config.json."""
        path = self.run_dir / "config.json"
        if path.is_file() or "--config" in self.record["command"]:
            try:
                return from_dict(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError, AttributeError, CamlkitError) as err:
                raise CamlkitError(f"{path}: unreadable ({err})") from None
        return _as_config(self.args)

    def is_running(self) -> bool:
        return self.own_pid() is not None

    def own_pid(self):
        """The pid of this run's process if camlkit can tell it is this run's, else None: it
        holds the run folder's lock (camlkit.runtime.runfolder.lock_holder: a probe for the lock
        fails and the start time written there is the process') and, for a launched run, it is
        the process launch started (process.json's pid and start time). Every signal camlkit
        sends goes through this one check, just before it is sent."""
        if self._process is not None and self._process.poll() is not None:
            return None  # our child has exited (poll also reaps it)
        holder = lock_holder(self.run_dir)
        if not self.launched:  # a command-line run: the lock's holder is the run
            self.record["pid"] = holder
            return holder
        return holder if holder == self.pid and is_alive(self.record) else None

    def _signal(self, signum) -> bool:
        """Send ``signum`` to the run if it is still its own process (:meth:`own_pid`)."""
        pid = self.own_pid()
        if pid is None:
            return False
        if self.launched:
            os.killpg(pid, signum)  # its own session: the group is the run
        else:
            os.kill(pid, signum)  # a command-line run: its group is the user's shell's
        return True

    def status(self) -> Status:
        rows = read_rows(self.run_dir / "log.csv")
        if self.is_running():
            state = "running"
        elif self.finished():
            state = "finished"
        elif self.record.get("stop_requested") or not self.launched:
            state = "stopped"
        else:
            state = "failed"
        done = rows[-1]["iteration"] + 1 if rows else 0
        resumable = state in ("stopped", "failed") and (self.run_dir / CHECKPOINT).is_file()
        return Status(self.run_dir, state, done, self.record.get("iterations", done), speed(rows),
                      tail(self.run_dir / OUT_FILE), resumable)

    def finished(self) -> bool:
        """Whether the run wrote its final files: ``curves.png`` comes last, after
        ``model_final.pth`` and the evaluation (none with ``--no-eval``); a run evaluated before
        ``curves.png`` existed has ``summary.json``."""
        have = [(self.run_dir / name).is_file() for name in ("model_final.pth", "curves.png")]
        return all(have) or (self.run_dir / "summary.json").is_file()

    def wait(self, timeout_s=None, poll_s=1.0) -> Status:
        """Until the process ends (or ``timeout_s`` passes); returns the status."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.is_running():
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(poll_s)
        return self.status()

    def stop(self, timeout_s=120) -> Status:
        """Interrupt the run as Ctrl-C would (SIGINT) and wait for it to end; if it goes on
        ``timeout_s`` seconds (or ignores SIGINT, as a job a script started with ``&`` does),
        SIGTERM, which a run also ends on cleanly. It keeps its last checkpoint (every
        ``checkpoint_every`` iterations): :meth:`resume` continues from there. Only the process
        camlkit verified as this run's is signalled (:meth:`own_pid`)."""
        pid = self.own_pid()
        if pid is None:
            return self.status()
        if self.launched:
            self.record["stop_requested"] = time.time()
            write_record(self.run_dir, self.record)
        sent = []
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signum == signal.SIGINT and ignores_signal(pid, signum):
                continue  # it would wait for nothing
            if not self._signal(signum):
                return self.status()
            sent.append(signum.name)
            status = self.wait(timeout_s, poll_s=0.2)
            if status.state != "running":
                return status
        raise CamlkitError(f"{self.run_dir}: pid {pid} still runs {timeout_s} s after "
                           f"{' and '.join(sent)}: `kill -9 {pid}` ends it (its last checkpoint "
                           f"is kept)")

    def resume(self, spec=None) -> "Run":
        """Start the run again in the background: from ``checkpoints/last.pth`` (``camlkit train
        ... --resume``), or from iteration 0 if it stopped before its first checkpoint. ``spec``
        (as in :func:`launch`): these settings instead of the recorded ones (resume checks that
        they match; the data folder may have moved)."""
        state = self.status().state
        if state in ("running", "finished"):
            raise CamlkitError(f"{self.run_dir}: the run is {state}; nothing to resume")
        cfg = self.config() if spec is None else _as_config(spec)
        check_config(cfg)
        resume = (self.run_dir / CHECKPOINT).is_file()
        text = None if spec is None else config_json(cfg)  # None: the run's own config.json
        self._process, self.record = spawn(text, self.run_dir, resume, cfg.iterations, HINT)
        return self


__all__ = ["launch", "attach", "start", "Run", "Status", "watch", "curves",
           "config_to_args", "read_rows", "summary_markdown", "training_seconds"]

