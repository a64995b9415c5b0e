"""Omni-correlation consistency (§2.3, Eq. 2-3, notebook 5): sim_vp / sim_ap heatmaps grouped by
class and their explorer. The memory bank and PCA pictures: camlkit.viz.embeddings."""

from __future__ import annotations

import numpy as np

from camlkit import occ
from camlkit.viz.colors import class_ink
from camlkit.viz.images import to_numpy
from camlkit.viz.widgets import FigureExplorer

FULL_LABEL = {"description_width": "initial"}  # a slider's whole description, never cut
SEPARATOR = dict(color="cyan", width=1.5)  # between classes: no Magma colour, so never a weight
WIDTH = 900  # px: fits JupyterLab's output area beside the prompt on a 1400 px wide window


def order_rows_cols(row_class, row_conf, col_class):
    """Orders that group an omni-correlation matrix for display.

    Rows (unlabeled features) by predicted class ascending, most confident first inside a class;
    columns (memory features) by class ascending, keeping their order inside a class.
    Returns ``(row_order, col_order)`` index arrays.
    """
    row_class, row_conf, col_class = (to_numpy(a).ravel() for a in (row_class, row_conf, col_class))
    row_order = np.lexsort((-row_conf, row_class))  # last key is the primary one
    col_order = np.argsort(col_class, kind="stable")
    return row_order, col_order


def _class_boundaries(sorted_classes) -> list[float]:
    """Positions between consecutive entries where the class changes (for separator lines)."""
    sorted_classes = np.asarray(sorted_classes)
    return [i + 0.5 for i in np.flatnonzero(sorted_classes[1:] != sorted_classes[:-1])]


def block_rows(z, sorted_classes, max_rows: int, reduce: str = "mean"):
    """Merge consecutive rows of the same class so that at most about ``max_rows`` remain.

    ``z`` (m, n) with its rows already grouped by ``sorted_classes`` (m,). Each class's rows are
    cut into blocks of ``f = ceil(m / max_rows)`` (the last block of a class may be shorter) and
    each block becomes its mean row (``reduce="mean"``) or its sum (``"sum"``), so a class never
    mixes with another. Returns ``(z_small, classes_small, f)``; ``f == 1`` returns the rows
    unchanged.
    """
    if reduce not in ("mean", "sum"):
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}")
    z, sorted_classes = np.asarray(z), np.asarray(sorted_classes)
    f = max(1, -(-len(z) // max_rows))
    if f == 1:
        return z, sorted_classes, 1
    rows, classes = [], []
    for c in dict.fromkeys(sorted_classes.tolist()):  # classes in their display order
        block = z[sorted_classes == c]
        for start in range(0, len(block), f):
            part = block[start:start + f]
            rows.append(part.mean(axis=0) if reduce == "mean" else part.sum(axis=0))
            classes.append(c)
    return np.stack(rows), np.asarray(classes), f


def _class_ticks(sorted_classes):
    """Tick positions at the middle of each class block, labelled with the class names."""
    sorted_classes = np.asarray(sorted_classes)
    vals, text = [], []
    for c in dict.fromkeys(sorted_classes.tolist()):
        where = np.flatnonzero(sorted_classes == c)
        vals.append((where[0] + where[-1]) / 2)
        text.append(class_ink(c).name)
    return vals, text


def omni_correlation_heatmap(sim, row_class, row_conf, col_class, title: str = "sim_vp",
                             fig=None, col: int | None = None, zmax: float | None = None,
                             showscale: bool | None = None, colorbar_x: float | None = None,
                             max_rows: int = 128, max_cols: int = 128, y_title: bool = True):
    """Plotly heatmap of an omni-correlation matrix (m x n, rows sum to 1), grouped by class.

    Rows: unlabeled voxels, grouped by predicted class, most confident first. Columns: memory
    bank entries, grouped by class. Cyan lines separate the classes (white would read as a
    column of weight 1) and both axes name them. The colour scale runs from 0 to ``zmax``
    (default: the matrix's maximum) with a colorbar (``showscale``; in a subplot figure,
    ``colorbar_x`` places it beside its panel). For display only, more than ``max_rows`` rows
    are averaged in blocks within each class and more than ``max_cols`` columns are **summed**
    in blocks (:func:`block_rows`): a displayed row is still a distribution, and a prototype
    holding a whole row's weight still shows as 1, not diluted by its neighbours. A 4,000 x 256
    matrix is so not stored in full in the notebook (128 x 128 float32 values: about 120 kB);
    the axis titles say so. ``y_title=False`` leaves the row axis untitled (a right-hand panel).
    """
    import plotly.graph_objects as go

    sim = to_numpy(sim)
    row_order, col_order = order_rows_cols(row_class, row_conf, col_class)
    rows_sorted = to_numpy(row_class).ravel()[row_order]
    cols_sorted = to_numpy(col_class).ravel()[col_order]
    z = sim[np.ix_(row_order, col_order)]
    z, rows_sorted, f_rows = block_rows(z, rows_sorted, max_rows)
    z_t, cols_sorted, f_cols = block_rows(z.T, cols_sorted, max_cols, reduce="sum")
    z = z_t.T.astype(np.float32)  # float32: half the bytes stored in the notebook
    own = fig is None
    if own:
        fig, col = go.Figure(), None
    where = {} if col is None else dict(row=1, col=col)
    colorbar = dict(title="weight") if colorbar_x is None else dict(title="weight", x=colorbar_x)
    fig.add_trace(go.Heatmap(z=z, colorscale="Magma", zmin=0.0,
                             zmax=float(z.max()) if zmax is None else zmax,
                             showscale=True if showscale is None else showscale,
                             colorbar=colorbar,
                             hovertemplate="row %{y}, column %{x}: %{z:.3g}<extra></extra>",
                             name=title), **where)
    for y in _class_boundaries(rows_sorted):
        fig.add_hline(y=y, line=SEPARATOR, **where)
    for x in _class_boundaries(cols_sorted):
        fig.add_vline(x=x, line=SEPARATOR, **where)
    row_ticks, col_ticks = _class_ticks(rows_sorted), _class_ticks(cols_sorted)
    row_note = f", means of {f_rows} rows" if f_rows > 1 else ""
    col_note = f", summed in groups of {f_cols}" if f_cols > 1 else ""
    fig.update_yaxes(autorange="reversed", tickvals=row_ticks[0], ticktext=row_ticks[1],
                     title_text=f"unlabeled voxels (confident first{row_note})" if y_title else None,
                     **where)
    fig.update_xaxes(tickvals=col_ticks[0], ticktext=col_ticks[1],
                     title_text=f"memory prototypes z_p{col_note}", **where)
    if own:
        fig.update_layout(title=title, width=560, height=460, margin=dict(t=40))
    return fig


def omni_correlation_panels(panels, title: str = "", width: int = WIDTH, shared: bool = True):
    """Omni-correlation heatmaps side by side. ``panels``: {panel title: (sim, row_class,
    row_conf, col_class)}, e.g. the dot-product and the cosine form of the same rows.

    ``shared=True``: ONE colour scale (0 to the largest weight of all panels), stated on the
    single colorbar. ``shared=False``: each panel on its own scale with its own colorbar — for
    rows whose peaks differ by orders of magnitude (peaked dot-product rows beside broad cosine
    rows), where one scale would paint the broad panel black."""
    from plotly.subplots import make_subplots

    panels = dict(panels)
    zmax = max(float(to_numpy(p[0]).max()) for p in panels.values())
    spacing = 0.12 if shared else 0.2
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels),
                        horizontal_spacing=spacing)
    panel_width = (1 - spacing * (len(panels) - 1)) / len(panels)
    for col, (name, (sim, row_class, row_conf, col_class)) in enumerate(panels.items(), start=1):
        right_edge = col * panel_width + (col - 1) * spacing
        omni_correlation_heatmap(sim, row_class, row_conf, col_class, title=name, fig=fig,
                                 col=col, zmax=zmax if shared else None,
                                 showscale=col == len(panels) or not shared,
                                 colorbar_x=None if shared else right_edge + 0.01, y_title=col == 1)
    if shared:
        fig.update_traces(colorbar=dict(title="weight<br>(one scale,<br>all panels)"))
    else:
        fig.update_traces(colorbar=dict(title="weight<br>(own scale)", thickness=15))
    fig.update_layout(title=title, width=width, height=480, margin=dict(t=90))
    return fig


def top_per_class(classes, conf, i: int) -> np.ndarray:
    """Indices of the ``i`` most confident entries of every class (fewer if a class is small)."""
    classes, conf = to_numpy(classes).ravel(), to_numpy(conf).ravel()
    keep = [np.flatnonzero(classes == c)[np.argsort(-conf[classes == c], kind="stable")[:i]]
            for c in np.unique(classes)]
    return np.concatenate(keep) if keep else np.zeros(0, dtype=int)


def first_per_class(classes, j: int) -> np.ndarray:
    """Indices of the first ``j`` entries of every class (the memory is already shuffled)."""
    classes = to_numpy(classes).ravel()
    keep = [np.flatnonzero(classes == c)[:j] for c in np.unique(classes)]
    return np.concatenate(keep) if keep else np.zeros(0, dtype=int)


def omni_correlation_figure(z_v, z_a, z_p, row_class, row_conf, col_class, temperature=0.1,
                            i=8, j=8, similarity: str = "dot", occ_log: str = "eps"):
    """sim_vp and sim_ap side by side for the top-i unlabeled rows and j memory columns per class.

    The rows and l_o are computed as camlkit.step.occ_part computes them (logits by
    camlkit.occ.correlation_logits with ``similarity``; l_o by camlkit.occ.occ_loss, through
    ``log_softmax`` when ``occ_log="log_softmax"``), so with every row and column and the
    trained temperature the title's l_o is the step's. The title shows l_o (never "-0.0000").
    """
    import torch
    from plotly.subplots import make_subplots


    rows = top_per_class(row_class, row_conf, i)
    cols = first_per_class(col_class, j)
    as_t = lambda a: torch.as_tensor(to_numpy(a), dtype=torch.float32)  # noqa: E731
    z_p_sel = as_t(z_p)[cols]
    with torch.no_grad():
        logits_v = occ.correlation_logits(as_t(z_v)[rows], z_p_sel, temperature, similarity)
        logits_a = occ.correlation_logits(as_t(z_a)[rows], z_p_sel, temperature, similarity)
        sim_v, sim_a = logits_v.softmax(1), logits_a.softmax(1)
        log_v = logits_v.log_softmax(1) if occ_log == "log_softmax" else None
        l_o = float(occ.occ_loss(sim_v, sim_a, log_v))
    rc, rf = to_numpy(row_class).ravel()[rows], to_numpy(row_conf).ravel()[rows]
    cc = to_numpy(col_class).ravel()[cols]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("sim_vp (from z_v)", "sim_ap (from z_a)"),
                        horizontal_spacing=0.12)
    zmax = max(float(sim_v.max()), float(sim_a.max()))  # one colour scale for both panels
    omni_correlation_heatmap(sim_v, rc, rf, cc, fig=fig, col=1, zmax=zmax, showscale=False)
    omni_correlation_heatmap(sim_a, rc, rf, cc, fig=fig, col=2, zmax=zmax, showscale=True,
                             y_title=False)
    fig.update_traces(colorbar=dict(title="weight<br>(both panels)"))
    fig.update_layout(title=f"{similarity}, t = {temperature:.3g}, m = {len(rows)} rows, "
                            f"n = {len(cols)} columns: l_o = {format_loss(l_o)}",
                      width=WIDTH, height=480, margin=dict(t=70))
    fig.update_layout(meta={"l_o": l_o})  # read back as fig.layout.meta["l_o"]
    return fig


def format_loss(value: float) -> str:
    """A loss to 4 decimals, never "-0.0000": Eq. 3 is >= 0 up to rounding (log(1 + 1e-8) > 0
    makes a perfect row -1e-8)."""
    return f"{round(float(value), 4) + 0.0:.4f}"


def omni_correlation_explorer(z_v, z_a, z_p, row_class, row_conf, col_class,
                              temperature: float = 0.1, i: int | None = None,
                              j: int | None = None, similarity: str = "dot",
                              occ_log: str = "eps") -> FigureExplorer:
    """Sliders for the temperature, i (rows per class) and j (memory columns per class).

    Defaults: every row and column (``i``, ``j`` None), so with the trained temperature the
    first picture and its l_o are those of the step that computed z_v, z_a and z_p."""
    import ipywidgets as widgets

    row_class_np, col_class_np = to_numpy(row_class).ravel(), to_numpy(col_class).ravel()
    max_i = int(max(np.bincount(row_class_np.astype(int))))
    max_j = int(max(np.bincount(col_class_np.astype(int))))
    i, j = max_i if i is None else min(i, max_i), max_j if j is None else min(j, max_j)
    controls = {
        "temperature": widgets.FloatLogSlider(value=temperature, base=10, min=-2, max=1,
                                              step=0.1, description="temperature t",
                                              continuous_update=False, style=FULL_LABEL),
        "i": widgets.IntSlider(value=i, min=1, max=max_i, description="i (rows per class)",
                               continuous_update=False, style=FULL_LABEL),
        "j": widgets.IntSlider(value=j, min=1, max=max_j,
                               description="j (prototypes per class)", continuous_update=False,
                               style=FULL_LABEL),
    }
    return FigureExplorer(controls, lambda **v: omni_correlation_figure(
        z_v, z_a, z_p, row_class, row_conf, col_class, similarity=similarity, occ_log=occ_log,
        **v))


