"""The notebook side of a run (camlkit.lab.launch): its status, live view, curves and summary.

:class:`Status` is what a run folder says of its run (state, iteration / total, speed, the last
lines of its output); ``watch(run)`` shows a progress bar and the training curves, redrawn from
the files the run writes (``log.csv``, ``summary.json``) while it runs; ``curves(run_dir)`` is
that figure alone (camlkit.viz.curves, the same panels as the run's ``curves.png``);
``summary_markdown(run_dir)`` renders the final table (the paper's Table 1 layout). Nothing here
starts or stops a process: camlkit.lab.launch does, and re-exports these names
(``launch.watch(run)``).
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from camlkit.errors import CamlkitError, Stopped
from camlkit.runtime.runlog import read_log
from camlkit.viz.curves import curves_figure, read_run
from camlkit.viz.widgets import displayable

STATES = ("running", "finished", "stopped", "failed")


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
    resumable: bool = False  # stopped with a checkpoints/last.pth to continue from

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
        if self.state != "running" and self.resumable:
            text += " (resumable from checkpoints/last.pth)"
        return text

    def __str__(self):
        return "\n".join([self.line(), *(f"  | {line}" for line in self.tail)])


def _duration(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def speed(rows):
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


def training_seconds(rows):
    """The seconds of training that log.csv rows count, over every process of the run (each
    resumed process counts ``seconds`` from 0 again); the final evaluation is not included."""
    ends = [a["seconds"] for a, b in zip(rows, rows[1:]) if b["seconds"] < a["seconds"]]
    return sum(ends) + (rows[-1]["seconds"] if rows else 0.0)


# ----------------------------------------------------------------------------- notebook views


def curves(run_dir):
    """The training curves of a run folder as a matplotlib Figure: camlkit.viz.curves's panels
    (one per loss part, lambda(t) beside them) with the final metrics once ``summary.json`` is
    there. Safe to call while the run writes its files (camlkit.viz.curves.read_run)."""
    return curves_figure(*read_run(run_dir))


def watch(run, every_s=3.0, until_iteration=None):
    """Show a run (a camlkit.lab.launch.Run) in a notebook: a progress bar (iteration / total, s/it,
    time left) and its curves, redrawn from ``log.csv`` every ``every_s`` seconds while it runs;
    once when it is over. Returns its Status when the run ends or has logged
    ``until_iteration`` iterations. Interrupting the cell (Kernel > Interrupt) stops the
    watching, not the run: it raises camlkit.errors.Stopped, one line in the notebook, and *Run
    All* halts there (the cells after it, which may stop the run, do not run)."""
    import ipywidgets as widgets
    from IPython.display import clear_output, display


    status = run.status()
    bar = widgets.IntProgress(value=0, min=0, max=max(status.total, 1), description="iteration")
    label, plot = widgets.Label(), widgets.Output()
    display(widgets.VBox([widgets.HBox([bar, label]), plot]))
    shown = -1
    try:
        while True:
            status = run.status()
            bar.value, label.value = min(status.iteration, bar.max), status.line()
            bar.bar_style = {"finished": "success", "failed": "danger", "stopped": "warning"}.get(
                status.state, "")
            if status.iteration != shown and status.iteration > 0:  # > 0: log.csv has a row
                with plot:
                    clear_output(wait=True)
                    display(displayable(curves(run.run_dir)))
                shown = status.iteration
            if status.state != "running" or (until_iteration is not None
                                             and status.iteration >= until_iteration):
                break
            time.sleep(every_s if until_iteration is None else min(every_s, 0.2))
    except KeyboardInterrupt:
        raise Stopped(f"stopped watching {run.run_dir.name}; the run goes on (run.stop() stops it, "
                      "launch.watch(run) watches it again)") from None
    if status.state == "failed":
        print(status)
    return status


def summary_markdown(run_dir):
    """The run's ``summary.md`` as a rendered table (IPython's Markdown)."""
    from IPython.display import Markdown

    path = Path(run_dir) / "summary.md"
    if not path.is_file():
        raise CamlkitError(f"{path}: missing (the run has not finished)")
    return Markdown(path.read_text())
