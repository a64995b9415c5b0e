"""The notebook side of a launched run (camlkit.launch): its live view, curves and summary.

``watch(run)`` shows a progress bar and the training curves, redrawn from the files the run
writes (``log.csv``, ``summary.json``) while it runs; ``curves(run_dir)`` is that figure alone
(camlkit.viz.curves, the same panels as the run's ``curves.png``); ``summary_markdown(run_dir)``
renders the final table (the paper's Table 1 layout). Nothing here starts or stops a process:
camlkit.launch does, and re-exports these names (``launch.watch(run)``).
"""

import time
from pathlib import Path

from camlkit.errors import CamlkitError


def curves(run_dir):
    """The training curves of a run folder as a matplotlib Figure: camlkit.viz.curves's panels
    (one per loss part, lambda(t) beside them) with the final metrics once ``summary.json`` is
    there. Safe to call while the run writes its files (camlkit.viz.curves.read_run)."""
    from camlkit.viz.curves import curves_figure, read_run

    return curves_figure(*read_run(run_dir))


def watch(run, every_s=3.0, until_iteration=None):
    """Show a run (a camlkit.launch.Run) in a notebook: a progress bar (iteration / total, s/it,
    time left) and its curves, redrawn from ``log.csv`` every ``every_s`` seconds while it runs;
    once when it is over. Returns its Status when the run ends or has logged
    ``until_iteration`` iterations. Interrupting the cell (Kernel > Interrupt) stops the
    watching, not the run."""
    import ipywidgets as widgets
    from IPython.display import clear_output, display

    from camlkit.viz.widgets import displayable

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
        print("stopped watching; the run goes on (run.stop() stops it)")
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
