"""OCC's lock, seen in a run's log (notebook 5, camlkit.diagnostics.occ_lock): l_o beside the health of its
rows — saturated and mismatched shares, embedding norms, logit gap, |∂l_o/∂z|."""

from __future__ import annotations

from camlkit.diagnostics.occ_lock import LOCKED_L_O
from camlkit.viz.curves import curve_panels, draw_panel


def health_figure(rows, x: str = "iteration"):
    """A matplotlib Figure of l_o and OCC's health panels (camlkit.viz.curves.curve_panels) for
    log rows, at most two panels a row, with l_o's one-hot values
    (camlkit.diagnostics.occ_lock.LOCKED_L_O) marked on its panel. Points are marked too: a share
    defined in a few iterations only (NaN elsewhere) would not show as a line."""
    from matplotlib.figure import Figure


    rows = list(rows)
    panels = [p for p in curve_panels(rows, x) if p.keys == ("l_o",) or p.title.startswith("OCC")]
    n_cols = min(2, max(len(panels), 1))
    n_rows = -(-len(panels) // n_cols)
    fig = Figure(figsize=(11, 3.2 * n_rows), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, panel in zip(axes, panels):
        draw_panel(ax, panel, rows, x, wrap=60, marker="o", markersize=3)
        if panel.keys == ("l_o",):
            for name, value in LOCKED_L_O.items():
                ax.axhline(value, color="tab:gray", lw=0.8, ls=":")
                ax.annotate(f"{value:g}: {name}", (0, value), xycoords=("axes fraction", "data"),
                            xytext=(3, 2), textcoords="offset points", fontsize=7, color="tab:gray",
                            bbox=dict(facecolor="white", edgecolor="none", pad=0.5, alpha=0.8))
        if not panel.log and ("occ_saturated" in panel.keys or "occ_sat_mismatch" in panel.keys):
            ax.set_ylim(-0.03, 1.03)  # shares: the whole 0-1 range, also when all are 0
    for ax in axes[len(panels):]:
        ax.axis("off")
    return fig
