"""Training curves: each loss part of Eq. 1 on its own axis, the ramped weights beside them.

    L = L_s + lambda_c(t) l_c + lambda_o(t) l_o        (Eq. 1, §2)

The parts have very different sizes (l_o can be ten times L_s early on), so one shared axis
flattens the small ones into a line at zero: every part gets its own panel. :func:`curve_panels`
is the one panel spec; :func:`curves_figure` draws it with matplotlib: ``curves.png`` of a run
(:func:`save_curves`), and the live curves of a run a notebook watches, redrawn from the run
folder (:func:`read_run`; camlkit.lab.watch). Matplotlib is used through
``matplotlib.figure.Figure`` only: no pyplot state, no backend switch.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from camlkit.errors import CamlkitError
from camlkit.files import atomic_path
from camlkit.runtime.runlog import read_log

PANEL_TITLES = {
    "L": "L = w L_s + λ_c l_c + λ_o l_o  (Eq. 1; w = 0.5 as released)",
    "L_s": "L_s: supervised, labeled half",
    "l_c": "l_c: cross pseudo supervision (§2.1)",
    "l_o": "l_o: omni-correlation consistency (Eq. 3)",
}
WEIGHTS_TITLE = "ramped weights λ_c(t), λ_o(t)"
# OCC's health (camlkit.diagnostics.health.row_health): is l_o still teaching? Shares on one axis, sizes on a log axis
HEALTH_PANELS = (
    ("OCC health: saturated rows; of those, mismatched",
     ("occ_saturated", "occ_sat_mismatch"), False),
    ("OCC health: |z_v|, |z_a|, |z_p|, logit gap (log)",
     ("occ_norm_zv", "occ_norm_za", "occ_norm_zp", "occ_logit_gap"), True),
    ("OCC health: |∂l_o/∂(z_v, z_a)| (log)", ("occ_grad",), True),
)
NOT_CURVES = ("epoch", "lr", "time", "seconds")  # logged, but not losses or weights
COLUMNS = 3  # panels per row


@dataclass(frozen=True)
class Panel:
    """One axis of the curves figure: its title and the log columns drawn on it."""

    title: str
    keys: tuple[str, ...]
    log: bool = False  # a log y axis (values <= 0 are not drawn)


def split_curve_keys(rows: Sequence[Mapping], x: str = "iteration"):
    """Numeric keys of the log rows split into (loss keys, weight keys); weights start 'lambda'."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r)
            if k != x and all(isinstance(r.get(k, 0.0), (int, float)) for r in rows)]
    weights = [k for k in keys if k.startswith("lambda")]
    losses = [k for k in keys if k not in weights and k not in NOT_CURVES]
    return losses, weights


def curve_panels(rows: Sequence[Mapping], x: str = "iteration") -> list[Panel]:
    """The panel spec: one panel per loss part, one for all the lambda(t) weights, then OCC's
    health panels when the log has them (runs with OCC) and any of their values is a number."""
    losses, weights = split_curve_keys(rows, x)
    health = {k for _, keys, _ in HEALTH_PANELS for k in keys}
    panels = [Panel(PANEL_TITLES.get(k, k), (k,)) for k in losses if k not in health]
    if weights:
        panels.append(Panel(WEIGHTS_TITLE, tuple(weights)))
    for title, keys, log in HEALTH_PANELS:
        present = tuple(k for k in keys if any(_finite(r.get(k)) for r in rows))
        if present:
            panels.append(Panel(title, present, log))
    return panels


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def metrics_text(summary: Mapping | None) -> str:
    """The final metrics of a run's ``summary.json`` as lines of text ('' without a summary).

    Dice and Jaccard are shown in % (the summary keeps fractions), 95HD and ASD in voxels;
    each value is ``mean ± std`` over the test (or validation) cases, without the ± for one case.
    """
    if not summary:
        return ""
    cases = summary.get("cases")
    split = "validation" if summary.get("split") == "val" else "test"
    lines = [f"final f_v on {cases} {split} case{'s' if cases != 1 else ''}" if cases
             else "final f_v"]
    for key, name, scale, unit in (("dice", "Dice", 100, " %"), ("jaccard", "Jaccard", 100, " %"),
                                   ("hd95", "95HD", 1, " vox"), ("asd", "ASD", 1, " vox")):
        if key not in summary:
            continue
        value = summary[key]
        mean, std = (value[0], value[1]) if isinstance(value, (list, tuple)) else (value, None)
        spread = f" ± {scale * std:.2f}" if std is not None and cases != 1 else ""
        lines.append(f"{name} {scale * mean:.2f}{spread}{unit}")
    return "\n".join(lines)


def _grid(n_panels: int, with_text: bool) -> tuple[int, int]:
    cells = n_panels + int(with_text)
    cols = min(COLUMNS, max(cells, 1))
    return math.ceil(cells / cols), cols


def curves_figure(rows: Sequence[Mapping], summary: Mapping | None = None, x: str = "iteration",
                  log_y: bool = False):
    """A matplotlib Figure of :func:`curve_panels`, with the final metrics in a spare cell.

    ``rows``: the training log's rows, e.g. ``{"iteration": 10, "L": .., "L_s": .., "l_c": ..,
    "l_o": .., "lambda_c": .., "lambda_o": ..}``; ``summary``: a run's summary (optional).
    """
    from matplotlib.figure import Figure

    rows = list(rows)
    panels = curve_panels(rows, x)
    text = metrics_text(summary)
    nrows, ncols = _grid(len(panels), bool(text))
    fig = Figure(figsize=(4.2 * ncols, 3.1 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        draw_panel(ax, panel, rows, x)
        if log_y and len(panel.keys) == 1 and all((r.get(panel.keys[0]) or 0) > 0 for r in rows):
            ax.set_yscale("log")
    spare = list(axes[len(panels):])
    for ax in spare:
        ax.axis("off")
    if text:
        spare[0].text(0.05, 0.95, text, va="top", ha="left", fontsize=11, family="monospace",
                      transform=spare[0].transAxes)
    return fig


def draw_panel(ax, panel: Panel, rows: Sequence[Mapping], x: str = "iteration", wrap=None,
               **style):
    """One panel on a matplotlib axis: its columns in black line styles, title (wrapped at
    ``wrap`` characters if given), grid, a legend for two or more columns, its log axis.
    ``style``: extra keyword arguments of ``ax.plot`` (e.g. ``marker="o"``)."""
    import textwrap

    xs = [r.get(x) for r in rows]
    for key, line in zip(panel.keys, ("-", "--", ":", "-.")):
        ax.plot(xs, [r.get(key, math.nan) for r in rows], line, color="black", lw=1.2, label=key,
                **style)
    ax.set_title("\n".join(textwrap.wrap(panel.title, wrap)) if wrap else panel.title, fontsize=10)
    ax.set_xlabel(x)
    ax.grid(alpha=0.3)
    if len(panel.keys) > 1:
        ax.legend(fontsize=8)
    if panel.log:
        ax.set_yscale("log")


def read_run(run_dir) -> tuple[list[dict], dict | None]:
    """A run folder's log rows (``log.csv``) and its summary (``summary.json``, None if absent).

    Safe while the run writes them: a log line still being written is skipped
    (camlkit.runtime.runlog.read_log), a summary still being written reads as None.
    """
    import json


    run_dir = Path(run_dir)
    log = run_dir / "log.csv"
    if not log.is_file():
        raise CamlkitError(f"{log}: no training log there (is {run_dir} a run folder?)")
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else None
    except ValueError:  # being written: the next read finds it whole
        summary = None
    return read_log(log), summary


def save_curves(rows_or_run_dir, path, summary: Mapping | None = None, dpi: int = 100) -> Path:
    """Write :func:`curves_figure` to ``path`` (e.g. ``run_dir / "curves.png"``), atomically.

    ``rows_or_run_dir``: the log rows, or a run folder whose ``log.csv`` (and, when ``summary``
    is not given, ``summary.json``) are read. The image is written through
    camlkit.files.atomic_path, so a reader never sees half a picture.
    """
    if isinstance(rows_or_run_dir, (str, os.PathLike)):
        rows, found = read_run(rows_or_run_dir)
        summary = found if summary is None else summary
    else:
        rows = list(rows_or_run_dir)
    if not rows:
        raise CamlkitError(f"{path}: no logged rows to plot")
    path = Path(path)
    if not path.parent.is_dir():
        raise CamlkitError(f"{path}: folder {path.parent} does not exist")
    fig = curves_figure(rows, summary)
    with atomic_path(path) as tmp:  # the user's umask, like the run's other results
        fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=dpi)
    return path
