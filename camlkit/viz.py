"""Figures and small interactive explorers for the camlkit notebooks.

Everything here works on plain arrays (numpy arrays or torch tensors) and never needs a model:
the notebooks compute attention maps, omni-correlations or predictions with camlkit and pass the
results in. Each figure has a *pure* helper underneath (``take_slice``, ``overlay_rgba``,
``attention_to_grid``, ``order_rows_cols``, ``pca_project``, ``error_voxels`` ...) that
``tests/test_viz.py`` pins with arrays small enough to check by hand.

Explorers are :class:`FigureExplorer` widgets: a row of ipywidgets controls above a plotly figure
that is drawn again, by a plain ``draw(**values)`` function, whenever a control moves. They show
plotly figures through an ``ipywidgets.Output`` (JupyterLab's plotly renderer), so they need
neither ``anywidget`` nor a running model. ``explorer.figure`` is the figure last drawn.

Axis convention: volumes are (h, w, d) as stored in the LA HDF5 files (d = the slice axis of the
MRI acquisition); a slice ``take_slice(volume, 2, k)`` is shown with h as rows and w as columns.
"""

from __future__ import annotations

from typing import Callable, Iterable, Mapping, Sequence

import numpy as np

# colours (RGB 0-255) shared by every figure
LABEL_COLOR = (255, 60, 60)  # ground truth / atrium
PRED_COLOR = (40, 200, 255)  # prediction
FP_COLOR = "rgb(230, 50, 50)"  # false positive voxels
FN_COLOR = "rgb(50, 90, 230)"  # false negative voxels
CLASS_NAMES = ("background", "atrium")


def to_numpy(x) -> np.ndarray:
    """A numpy copy of a numpy array or a (possibly GPU, possibly grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


# ----------------------------------------------------------------------------- notebook setup
SMOKE_ENV = "CAMLKIT_SMOKE"  # CAMLKIT_SMOKE=1: every notebook runs at its smallest size (CI)
DATA_ENV = "CAMLKIT_DATA"  # where the preprocessed LA folder is, if not in a default place


def smoke() -> bool:
    """True when the environment asks for smoke-sized notebook runs (``CAMLKIT_SMOKE=1``)."""
    import os

    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def find_data_dir(path=None):
    """The preprocessed LA folder (the one holding ``train.list``) for the notebooks.

    Looks at ``path``, then ``$CAMLKIT_DATA``, then ``data/LA`` and ``../shared/LA`` next to
    the working folder, its parent and the repository. Raises a CamlkitError listing every
    place it looked.
    """
    import os
    from pathlib import Path

    from camlkit.errors import CamlkitError

    if path is not None or os.environ.get(DATA_ENV):
        candidates = [Path(path if path is not None else os.environ[DATA_ENV]).expanduser()]
    else:
        repo = Path(__file__).resolve().parents[1]
        bases = dict.fromkeys([Path.cwd(), Path.cwd().parent, repo])
        candidates = [c for b in bases for c in (b / "data" / "LA", b.parent / "shared" / "LA")]
    for candidate in candidates:
        if (candidate / "train.list").is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise CamlkitError(f"no LA data folder (with train.list) found; looked in: {looked}. "
                       f"Set {DATA_ENV}=/path/to/LA or put the preprocessed release in data/LA.")


# ----------------------------------------------------------------------------- slices and overlays
def take_slice(volume, axis: int, index: int) -> np.ndarray:
    """The 2-D slice ``index`` of a 3-D ``volume`` along ``axis`` (0, 1 or 2).

    ``take_slice(v, 2, k)`` is ``v[:, :, k]``. An index out of range raises an IndexError that
    says the valid range.
    """
    volume = to_numpy(volume)
    if volume.ndim != 3:
        raise ValueError(f"take_slice expects a 3-D volume, got shape {volume.shape}")
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2, got {axis}")
    size = volume.shape[axis]
    if not 0 <= index < size:
        raise IndexError(f"slice {index} is outside 0..{size - 1} along axis {axis}")
    return np.take(volume, index, axis=axis)


def to_gray_uint8(image_slice, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Window an image to [vmin, vmax] (default: its own min and max) and scale to 0..255."""
    image_slice = to_numpy(image_slice).astype(np.float64)
    lo = image_slice.min() if vmin is None else vmin
    hi = image_slice.max() if vmax is None else vmax
    scaled = (image_slice - lo) / (hi - lo) if hi > lo else np.zeros_like(image_slice)
    return np.round(np.clip(scaled, 0.0, 1.0) * 255).astype(np.uint8)


def overlay_rgba(image_slice, mask_slice=None, opacity: float = 0.4, color=LABEL_COLOR,
                 vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Grey image with one or more binary masks blended on top, as an (h, w, 4) uint8 RGBA image.

    Where a mask is set the pixel becomes ``(1 - opacity) * grey + opacity * color``; elsewhere
    it stays grey; alpha is 255 everywhere. ``mask_slice`` may be a list of masks, with
    ``color`` a list of colours of the same length (later masks are blended over earlier ones).
    """
    gray = to_gray_uint8(image_slice, vmin, vmax).astype(np.float64)
    rgb = np.repeat(gray[..., None], 3, axis=-1)
    if mask_slice is None:
        masks, colors = [], []
    elif isinstance(mask_slice, (list, tuple)):
        masks, colors = mask_slice, color
    else:
        masks, colors = [mask_slice], [color]
    if len(colors) != len(masks):
        raise ValueError(f"got {len(masks)} masks but {len(colors)} colours")
    for mask, col in zip(masks, colors):
        mask = to_numpy(mask).astype(bool)
        if mask.shape != gray.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {gray.shape}")
        rgb[mask] = (1.0 - opacity) * rgb[mask] + opacity * np.asarray(col, dtype=np.float64)
    alpha = np.full(gray.shape + (1,), 255.0)
    return np.round(np.concatenate([rgb, alpha], axis=-1)).astype(np.uint8)


def upsample_nearest(grid2d, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a 2-D array to ``shape``: output pixel i reads i * n // N."""
    grid2d = to_numpy(grid2d)
    rows = np.arange(shape[0]) * grid2d.shape[0] // shape[0]
    cols = np.arange(shape[1]) * grid2d.shape[1] // shape[1]
    return grid2d[np.ix_(rows, cols)]


def heat_rgba(image_slice, heat, opacity: float = 0.6, cmap: str = "inferno",
              vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Grey image with a heat map in [0, 1] blended on top (weight ``opacity * heat``), RGBA."""
    from matplotlib import colormaps

    gray = to_gray_uint8(image_slice, vmin, vmax).astype(np.float64)[..., None]
    heat = np.clip(to_numpy(heat).astype(np.float64), 0.0, 1.0)
    colored = colormaps[cmap](heat)[..., :3] * 255.0
    weight = opacity * heat[..., None]
    rgb = (1.0 - weight) * gray + weight * colored
    alpha = np.full(heat.shape + (1,), 255.0)
    return np.round(np.concatenate([rgb, alpha], axis=-1)).astype(np.uint8)


# ----------------------------------------------------------------------------- tables
class Table:
    """Rows of dicts shown as an HTML table in a notebook and as aligned text elsewhere."""

    def __init__(self, rows: Sequence[Mapping], columns: Sequence[str] | None = None,
                 floatfmt: str = ".3f"):
        self.rows = [dict(r) for r in rows]
        self.columns = list(columns) if columns else list(dict.fromkeys(
            k for r in self.rows for k in r))
        self.floatfmt = floatfmt

    def _fmt(self, value) -> str:
        if isinstance(value, (float, np.floating)):
            return format(float(value), self.floatfmt)
        return "" if value is None else str(value)

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.rows]

    def __len__(self):
        return len(self.rows)

    def __repr__(self):
        cells = [self.columns] + [[self._fmt(r.get(c)) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def _repr_html_(self):
        head = "".join(f"<th>{c}</th>" for c in self.columns)
        body = "".join(
            "<tr>" + "".join(f"<td>{self._fmt(r.get(c))}</td>" for c in self.columns) + "</tr>"
            for r in self.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def case_statistics(cases) -> Table:
    """One row per case: shape, foreground fraction, image mean/std, atrium mean intensity.

    ``cases``: a mapping ``name -> (image, label)`` or an iterable of ``(name, image, label)``.
    """
    items = cases.items() if isinstance(cases, Mapping) else ((n, (i, l)) for n, i, l in cases)
    rows = []
    for name, (image, label) in items:
        image, label = to_numpy(image), to_numpy(label).astype(bool)
        rows.append({
            "case": name,
            "shape": "x".join(str(s) for s in image.shape),
            "foreground %": 100.0 * label.mean(),
            "mean": float(image.mean()),
            "std": float(image.std()),
            "atrium mean": float(image[label].mean()) if label.any() else float("nan"),
        })
    return Table(rows)


# ----------------------------------------------------------------------------- explorer widget
class FigureExplorer:
    """Controls above a figure; ``draw(**control_values)`` makes the figure again on each change.

    ``widget`` is the ipywidgets box to display (the object displays itself in a notebook);
    ``controls`` maps names to the ipywidgets; ``figure`` is the last figure drawn. Works for
    plotly figures and matplotlib figures alike.
    """

    def __init__(self, controls: Mapping, draw: Callable, title: str | None = None):
        import ipywidgets as widgets

        self.controls = dict(controls)
        self._draw = draw
        self.output = widgets.Output()
        self.figure = None
        row = widgets.HBox(list(self.controls.values()),
                           layout=widgets.Layout(flex_flow="row wrap"))
        parts = ([widgets.HTML(f"<b>{title}</b>")] if title else []) + [row, self.output]
        self.widget = widgets.VBox(parts)
        for control in self.controls.values():
            control.observe(lambda _change: self.redraw(), names="value")
        self.redraw()

    def values(self) -> dict:
        return {name: c.value for name, c in self.controls.items()}

    def redraw(self):
        from IPython.display import clear_output, display

        self.figure = self._draw(**self.values())
        with self.output:
            clear_output(wait=True)
            display(self.figure)
            if hasattr(self.figure, "savefig"):  # matplotlib: show once, do not keep it open
                import matplotlib.pyplot as plt

                plt.close(self.figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)


# ----------------------------------------------------------------------------- LA data
def slice_figure(image, label=None, pred=None, axis: int = 2, index: int | None = None,
                 show_masks: bool = True, opacity: float = 0.4):
    """A plotly figure of one slice with label (red) and prediction (blue) blended on top."""
    import plotly.graph_objects as go

    image = to_numpy(image)
    index = image.shape[axis] // 2 if index is None else min(index, image.shape[axis] - 1)
    vmin, vmax = np.percentile(image, [0.5, 99.5])  # one window for the whole volume
    masks, colors = [], []
    if show_masks:
        for vol, col in ((label, LABEL_COLOR), (pred, PRED_COLOR)):
            if vol is not None:
                masks.append(take_slice(vol, axis, index))
                colors.append(col)
    rgba = overlay_rgba(take_slice(image, axis, index), masks, opacity, colors, vmin, vmax)
    fig = go.Figure(go.Image(z=rgba, colormodel="rgba", hoverinfo="x+y"))
    names = [n for n, v in (("label: red", label), ("prediction: blue", pred)) if v is not None]
    fig.update_layout(
        title=f"axis {axis}, slice {index}/{image.shape[axis] - 1}"
              + (f" ({', '.join(names)})" if names and show_masks else ""),
        width=460, height=460, margin=dict(l=10, r=10, t=40, b=10))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def slice_viewer(image, label=None, pred=None, axis: int = 2) -> FigureExplorer:
    """Browse a volume: axis buttons, slice slider, mask on/off and opacity slider."""
    import ipywidgets as widgets

    image = to_numpy(image)
    label = None if label is None else to_numpy(label)
    pred = None if pred is None else to_numpy(pred)
    controls = {
        "axis": widgets.ToggleButtons(options=[("h", 0), ("w", 1), ("d", 2)], value=axis,
                                      description="axis"),
        "index": widgets.IntSlider(value=image.shape[axis] // 2, min=0,
                                   max=image.shape[axis] - 1, description="slice",
                                   continuous_update=False),
        "show_masks": widgets.Checkbox(value=True, description="overlay"),
        "opacity": widgets.FloatSlider(value=0.4, min=0.0, max=1.0, step=0.05,
                                       description="opacity", continuous_update=False),
    }

    def on_axis(change):  # keep the slider inside the new axis' range
        size = image.shape[change["new"]]
        controls["index"].max = size - 1
        controls["index"].value = size // 2

    controls["axis"].observe(on_axis, names="value")
    return FigureExplorer(controls, lambda **v: slice_figure(image, label, pred, **v))


def class_histograms(image, label, bins: int = 80):
    """Common bin edges and, per class of ``label``, the density histogram of ``image``.

    Returns ``(edges, {class_value: density})``; each density integrates to 1 over the edges.
    """
    image, label = to_numpy(image).ravel(), to_numpy(label).ravel()
    edges = np.histogram_bin_edges(image, bins=bins)
    densities = {}
    for value in np.unique(label):
        densities[int(value)], _ = np.histogram(image[label == value], bins=edges, density=True)
    return edges, densities


def intensity_histogram(image, label, bins: int = 80):
    """Plotly figure: intensity distribution of background and atrium voxels (densities)."""
    import plotly.graph_objects as go

    edges, densities = class_histograms(image, label, bins)
    centers = 0.5 * (edges[:-1] + edges[1:])
    fig = go.Figure()
    for value, density in densities.items():
        name = CLASS_NAMES[value] if value < len(CLASS_NAMES) else f"class {value}"
        fig.add_trace(go.Scatter(x=centers, y=density, mode="lines", line_shape="hvh",
                                 fill="tozeroy", name=name))
    fig.update_layout(xaxis_title="intensity (z-scored)", yaxis_title="density",
                      width=620, height=360, margin=dict(t=30))
    return fig


# ----------------------------------------------------------------------------- mutual learning
def sharpen_curve(T: float = 0.1, sharpen: Callable | None = None):
    """Plotly figure of the sharpening function s(p) = p^(1/T) / (p^(1/T) + (1-p)^(1/T)).

    ``sharpen`` defaults to :func:`camlkit.cps.sharpen`.
    """
    import plotly.graph_objects as go
    import torch

    if sharpen is None:
        from camlkit.cps import sharpen
    p = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=p.numpy(), y=p.numpy(), name="p (no sharpening, T = 1)",
                             line=dict(dash="dot", color="gray")))
    fig.add_trace(go.Scatter(x=p.numpy(), y=to_numpy(sharpen(p, T)), name=f"s(p), T = {T:.3g}",
                             line=dict(width=3)))
    fig.update_layout(title=f"sharpening with T = {T:.3g}", xaxis_title="p (foreground probability)",
                      yaxis_title="s(p) (pseudo label)", width=560, height=400,
                      yaxis_range=[-0.02, 1.02], margin=dict(t=40))
    return fig


def sharpen_explorer(T: float = 0.1, sharpen: Callable | None = None) -> FigureExplorer:
    """``sharpen_curve`` with a logarithmic T slider."""
    import ipywidgets as widgets

    slider = widgets.FloatLogSlider(value=T, base=10, min=-2, max=1, step=0.05, description="T",
                                    continuous_update=False)
    return FigureExplorer({"T": slider}, lambda T: sharpen_curve(T, sharpen))


# ----------------------------------------------------------------------------- CMA attention
def query_index(h: int, w: int, d: int, token_grid: Sequence[int]) -> int:
    """Flat token index of grid position (h, w, d), in the order of 'b c h w d -> b (h w d) c'."""
    gh, gw, gd = token_grid
    if not (0 <= h < gh and 0 <= w < gw and 0 <= d < gd):
        raise IndexError(f"position ({h}, {w}, {d}) is outside the token grid {tuple(token_grid)}")
    return (h * gw + w) * gd + d


def attention_to_grid(attn_row, token_grid: Sequence[int]) -> np.ndarray:
    """One query's attention weights over k = h' w' d' tokens reshaped to (h', w', d')."""
    attn_row = to_numpy(attn_row)
    k = int(np.prod(token_grid))
    if attn_row.shape != (k,):
        raise ValueError(f"an attention row over the token grid {tuple(token_grid)} has {k} "
                         f"weights, got shape {attn_row.shape}")
    return attn_row.reshape(tuple(token_grid))


def _batch_volumes(image) -> np.ndarray:
    """(b, 1, h, w, d) or (b, h, w, d) or (h, w, d) -> (b, h, w, d)."""
    image = to_numpy(image)
    if image.ndim == 5:
        image = image[:, 0]
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4:
        raise ValueError(f"expected an image batch (b, [1,] h, w, d), got shape {image.shape}")
    return image


def attention_figure(image, attn_intra, attn_inter, token_grid, sample=0, head=0,
                     qh=0, qw=0, qd=0, opacity=0.7):
    """Intra-sample attention of one query over its sample, plus the inter-sample b x b weights.

    Left: the image slice at the query's depth with the query's attention row (reshaped to the
    token grid, that depth's plane, upsampled to the image) blended on top; the cross marks the
    query. Right: at the same token position, how much each sample (row) attends to each sample
    (column) in E_2.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    volumes = _batch_volumes(image)
    attn_intra, attn_inter = to_numpy(attn_intra), to_numpy(attn_inter)
    b, H, W, D = volumes.shape
    gh, gw, gd = token_grid
    k = query_index(qh, qw, qd, token_grid)
    grid = attention_to_grid(attn_intra[sample, head, k], token_grid)  # (h', w', d')
    plane = grid[:, :, qd]
    z = min(int((qd + 0.5) * D / gd), D - 1)  # image depth at the centre of the query token
    heat = upsample_nearest(plane / max(plane.max(), 1e-12), (H, W))
    rgba = heat_rgba(volumes[sample][:, :, z], heat, opacity)
    inter = attn_inter[k, head]  # (b, b): row = attending sample, column = attended sample

    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38], subplot_titles=(
        f"E1 intra: sample {sample}, head {head}, query ({qh},{qw},{qd}) -> depth {z}",
        f"E2 inter: b x b weights at token {k}"))
    fig.add_trace(go.Image(z=rgba, colormodel="rgba", hoverinfo="x+y"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[(qw + 0.5) * W / gw], y=[(qh + 0.5) * H / gh], mode="markers",
                             marker=dict(symbol="x", size=12, color="cyan"), name="query",
                             showlegend=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=inter, x=list(range(b)), y=list(range(b)), zmin=0.0, zmax=1.0,
                             colorscale="Viridis", texttemplate="%{z:.2f}",
                             colorbar=dict(title="weight")), row=1, col=2)
    fig.update_yaxes(autorange="reversed", title_text="query sample", dtick=1, row=1, col=2)
    fig.update_xaxes(title_text="key sample", dtick=1, row=1, col=2)
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_yaxes(showticklabels=False, row=1, col=1)
    fig.update_layout(width=900, height=440, margin=dict(t=50, l=10, r=10, b=40))
    return fig


def attention_explorer(image, attn_intra, attn_inter, token_grid) -> FigureExplorer:
    """Sliders for sample, head and query position over :func:`attention_figure`.

    image: (b, [1,] h, w, d); attn_intra: (b, heads, k, k); attn_inter: (k, heads, b, b);
    token_grid: (h', w', d') with k = h' w' d' (what ``CMA.forward(..., return_attention=True)``
    and ``CAMLNet.attention`` return).
    """
    import ipywidgets as widgets

    volumes = _batch_volumes(image)
    attn_intra, attn_inter = to_numpy(attn_intra), to_numpy(attn_inter)
    b, heads, k, _ = attn_intra.shape
    gh, gw, gd = token_grid
    if k != gh * gw * gd or attn_inter.shape != (k, heads, b, b):
        raise ValueError(f"attention shapes intra {attn_intra.shape} / inter {attn_inter.shape} "
                         f"do not match the token grid {tuple(token_grid)} and batch {b}")

    def slider(name, top, value=0):
        return widgets.IntSlider(value=value, min=0, max=top, description=name,
                                 continuous_update=False)

    controls = {"sample": slider("sample", b - 1), "head": slider("head", heads - 1),
                "qh": slider("query h'", gh - 1, gh // 2), "qw": slider("query w'", gw - 1, gw // 2),
                "qd": slider("query d'", gd - 1, gd // 2),
                "opacity": widgets.FloatSlider(value=0.7, min=0, max=1, step=0.05,
                                               description="opacity", continuous_update=False)}
    return FigureExplorer(controls, lambda **v: attention_figure(
        volumes, attn_intra, attn_inter, token_grid, **v))


# ----------------------------------------------------------------------------- OCC
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


def omni_correlation_heatmap(sim, row_class, row_conf, col_class, title: str = "sim_vp",
                             fig=None, col: int | None = None):
    """Plotly heatmap of an omni-correlation matrix (m x n, rows sum to 1), grouped by class.

    Rows: unlabeled voxels, grouped by predicted class, most confident first. Columns: memory
    bank entries, grouped by class. White lines separate the classes.
    """
    import plotly.graph_objects as go

    sim = to_numpy(sim)
    row_order, col_order = order_rows_cols(row_class, row_conf, col_class)
    rows_sorted = to_numpy(row_class).ravel()[row_order]
    cols_sorted = to_numpy(col_class).ravel()[col_order]
    z = sim[np.ix_(row_order, col_order)]
    own = fig is None
    if own:
        fig, col = go.Figure(), None
    where = {} if col is None else dict(row=1, col=col)
    fig.add_trace(go.Heatmap(z=z, colorscale="Magma", zmin=0.0, showscale=own or col == 1,
                             hovertemplate="row %{y}, column %{x}: %{z:.3g}<extra></extra>",
                             name=title), **where)
    for y in _class_boundaries(rows_sorted):
        fig.add_hline(y=y, line=dict(color="white", width=2), **where)
    for x in _class_boundaries(cols_sorted):
        fig.add_vline(x=x, line=dict(color="white", width=2), **where)
    fig.update_yaxes(autorange="reversed", title_text="unlabeled z (by class, confident first)",
                     **where)
    fig.update_xaxes(title_text="memory z_p (by class)", **where)
    if own:
        fig.update_layout(title=title, width=520, height=460, margin=dict(t=40))
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
                            i=8, j=8, correlate: Callable | None = None,
                            loss: Callable | None = None):
    """sim_vp and sim_ap side by side for the top-i unlabeled rows and j memory columns per class.

    ``correlate(z, z_p, temperature)`` defaults to :func:`camlkit.occ.omni_correlation` and
    ``loss(sim_v, sim_a)`` to :func:`camlkit.occ.occ_loss`; the title shows l_o.
    """
    import torch
    from plotly.subplots import make_subplots

    if correlate is None or loss is None:
        from camlkit import occ
        correlate = correlate or (lambda z, zp, t: occ.omni_correlation(z, zp, temperature=t))
        loss = loss or occ.occ_loss
    rows = top_per_class(row_class, row_conf, i)
    cols = first_per_class(col_class, j)
    as_t = lambda a: torch.as_tensor(to_numpy(a), dtype=torch.float32)  # noqa: E731
    z_p_sel = as_t(z_p)[cols]
    with torch.no_grad():
        sim_v = correlate(as_t(z_v)[rows], z_p_sel, temperature)
        sim_a = correlate(as_t(z_a)[rows], z_p_sel, temperature)
        l_o = float(loss(sim_v, sim_a))
    rc, rf = to_numpy(row_class).ravel()[rows], to_numpy(row_conf).ravel()[rows]
    cc = to_numpy(col_class).ravel()[cols]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("sim_vp (from z_v)", "sim_ap (from z_a)"))
    omni_correlation_heatmap(sim_v, rc, rf, cc, fig=fig, col=1)
    omni_correlation_heatmap(sim_a, rc, rf, cc, fig=fig, col=2)
    fig.update_layout(title=f"t = {temperature:.3g}, m = {len(rows)} rows, n = {len(cols)} "
                            f"columns: l_o = {l_o:.4f}",
                      width=960, height=460, margin=dict(t=70))
    fig.update_layout(meta={"l_o": l_o})  # read back as fig.layout.meta["l_o"]
    return fig


def omni_correlation_explorer(z_v, z_a, z_p, row_class, row_conf, col_class,
                              correlate: Callable | None = None, loss: Callable | None = None,
                              temperature: float = 0.1, i: int = 8, j: int = 8
                              ) -> FigureExplorer:
    """Sliders for the temperature, i (rows per class) and j (memory columns per class)."""
    import ipywidgets as widgets

    row_class_np, col_class_np = to_numpy(row_class).ravel(), to_numpy(col_class).ravel()
    max_i = int(max(np.bincount(row_class_np.astype(int))))
    max_j = int(max(np.bincount(col_class_np.astype(int))))
    controls = {
        "temperature": widgets.FloatLogSlider(value=temperature, base=10, min=-2, max=1,
                                              step=0.1, description="temperature",
                                              continuous_update=False),
        "i": widgets.IntSlider(value=min(i, max_i), min=1, max=max_i, description="i",
                               continuous_update=False),
        "j": widgets.IntSlider(value=min(j, max_j), min=1, max=max_j, description="j",
                               continuous_update=False),
    }
    return FigureExplorer(controls, lambda **v: omni_correlation_figure(
        z_v, z_a, z_p, row_class, row_conf, col_class, correlate=correlate, loss=loss, **v))


def memory_bank_figure(counts, slot_names: Sequence[str] | None = None):
    """Bar chart of a memory bank's content: embeddings stored per slot (labeled case) and class.

    ``counts``: (num_slots, C), e.g. ``MemoryBank.counts``.
    """
    import plotly.graph_objects as go

    counts = to_numpy(counts)
    names = list(slot_names) if slot_names is not None else [f"slot {s}" for s in range(len(counts))]
    fig = go.Figure([go.Bar(x=names, y=counts[:, c], name=CLASS_NAMES[c] if c < 2 else f"class {c}")
                     for c in range(counts.shape[1])])
    fig.update_layout(barmode="stack", yaxis_title="stored embeddings", width=620, height=340,
                      margin=dict(t=30), title=f"memory bank: {int(counts.sum()):,} embeddings")
    return fig


def pca_project(*feature_sets, n_components: int = 2):
    """Project feature sets (each (n_i, c)) onto the principal axes of all of them together.

    Returns ``(projections, explained)``: one (n_i, n_components) array per set, and the fraction
    of the variance each component explains. Signs are fixed (largest loading positive) so the
    picture does not flip between runs.
    """
    sets = [to_numpy(f).astype(np.float64).reshape(len(f), -1) for f in feature_sets]
    stacked = np.concatenate(sets)
    centred = stacked - stacked.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    axes = vt[:n_components]
    axes *= np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    variance = s ** 2
    explained = variance[:n_components] / max(variance.sum(), 1e-12)
    mean = stacked.mean(axis=0)
    return [(f - mean) @ axes.T for f in sets], explained


def pca_2d(memory_feats, memory_cls, unl_feats, unl_cls):
    """Scatter of memory-bank and unlabeled embeddings on their first two principal axes."""
    import plotly.graph_objects as go

    (mem, unl), explained = pca_project(memory_feats, unl_feats)
    memory_cls, unl_cls = to_numpy(memory_cls).ravel(), to_numpy(unl_cls).ravel()
    palette = ("rgb(90, 90, 90)", "rgb(220, 50, 50)", "rgb(40, 120, 220)", "rgb(40, 170, 80)")
    fig = go.Figure()
    for pts, cls, kind, symbol in ((mem, memory_cls, "memory", "circle"),
                                   (unl, unl_cls, "unlabeled", "x")):
        for c in np.unique(cls):
            sel = pts[cls == c]
            name = CLASS_NAMES[c] if c < len(CLASS_NAMES) else f"class {c}"
            fig.add_trace(go.Scatter(x=sel[:, 0], y=sel[:, 1], mode="markers",
                                     name=f"{kind}: {name}", marker=dict(
                                         symbol=symbol, size=6, opacity=0.6,
                                         color=palette[int(c) % len(palette)])))
    fig.update_layout(xaxis_title=f"PC 1 ({100 * explained[0]:.0f} % of variance)",
                      yaxis_title=f"PC 2 ({100 * explained[1]:.0f} % of variance)",
                      width=620, height=480, margin=dict(t=30))
    return fig


# ----------------------------------------------------------------------------- results
def error_voxels(pred, gt) -> dict:
    """Voxel coordinates (n, 3) of false positives (pred and not gt) and false negatives."""
    pred, gt = to_numpy(pred).astype(bool), to_numpy(gt).astype(bool)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from label shape {gt.shape}")
    return {"fp": np.argwhere(pred & ~gt), "fn": np.argwhere(~pred & gt)}


def surface_mesh(mask, spacing=(1.0, 1.0, 1.0), step_size: int = 1):
    """Triangle mesh (verts (n, 3) in physical units, faces (f, 3)) of a binary mask's surface.

    The mask is padded by one voxel so that objects touching the border still close; an empty
    mask gives empty arrays.
    """
    from skimage.measure import marching_cubes

    mask = to_numpy(mask).astype(np.uint8)
    if not mask.any():
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=int)
    verts, faces, _, _ = marching_cubes(np.pad(mask, 1), level=0.5, spacing=tuple(spacing),
                                        step_size=step_size)
    return verts - np.asarray(spacing, dtype=verts.dtype), faces


def mesh_figure(pred, gt, spacing=(1.0, 1.0, 1.0), step_size: int = 2, max_points: int = 4000):
    """Interactive 3-D view: prediction and ground-truth surfaces, FP and FN voxels.

    Click legend entries to show or hide each part. Error voxels are thinned to at most
    ``max_points`` each (every k-th voxel) to keep the figure light.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    for mask, name, color, opacity in ((gt, "ground truth", "rgb(255, 190, 60)", 0.35),
                                       (pred, "prediction", "rgb(40, 160, 230)", 0.5)):
        verts, faces = surface_mesh(mask, spacing, step_size)
        fig.add_trace(go.Mesh3d(x=verts[:, 0], y=verts[:, 1], z=verts[:, 2], i=faces[:, 0],
                                j=faces[:, 1], k=faces[:, 2], color=color, opacity=opacity,
                                name=name, showlegend=True, flatshading=True))
    scale = np.asarray(spacing, dtype=np.float64)
    for key, name, color in (("fp", "false positive", FP_COLOR), ("fn", "false negative", FN_COLOR)):
        pts = error_voxels(pred, gt)[key]
        pts = pts[:: max(1, int(np.ceil(len(pts) / max_points)))] * scale
        fig.add_trace(go.Scatter3d(x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers",
                                   marker=dict(size=2, color=color), name=f"{name} ({key})"))
    fig.update_layout(width=720, height=560, margin=dict(l=0, r=0, t=30, b=0),
                      scene=dict(aspectmode="data"), legend=dict(itemsizing="constant"))
    return fig


def slice_comparison(image, pred, gt, index: int | None = None, axis: int = 2, title: str = ""):
    """Matplotlib figure: image, contours of label (red) and prediction (blue), error map."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap

    image, pred, gt = to_numpy(image), to_numpy(pred).astype(bool), to_numpy(gt).astype(bool)
    index = image.shape[axis] // 2 if index is None else index
    img, p, g = (take_slice(v, axis, index) for v in (image, pred, gt))
    errors = np.zeros(img.shape, dtype=np.uint8)
    errors[p & ~g], errors[~p & g], errors[p & g] = 1, 2, 3
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.9))
    for ax in axes:
        ax.imshow(img, cmap="gray")
        ax.axis("off")
    axes[0].set_title(f"image (axis {axis}, slice {index})")
    for mask, color in ((g, "red"), (p, "deepskyblue")):
        if mask.any() and not mask.all():
            axes[1].contour(mask, levels=[0.5], colors=color, linewidths=1.2)
    axes[1].set_title("label (red) vs prediction (blue)")
    cmap = ListedColormap([(0, 0, 0, 0), (0.9, 0.2, 0.2, 0.8), (0.2, 0.35, 0.9, 0.8),
                           (0.2, 0.8, 0.3, 0.5)])
    axes[2].imshow(errors, cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
    axes[2].set_title("TP green, FP red, FN blue")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- training curves
def split_curve_keys(rows: Sequence[Mapping], x: str = "iteration"):
    """Numeric keys of the log rows split into (loss keys, weight keys); weights start 'lambda'."""
    keys = [k for k in dict.fromkeys(k for r in rows for k in r)
            if k != x and all(isinstance(r.get(k, 0.0), (int, float)) for r in rows)]
    weights = [k for k in keys if k.startswith("lambda")]
    losses = [k for k in keys if k not in weights and k not in ("epoch", "lr", "time", "seconds")]
    return losses, weights


def loss_curves(rows: Sequence[Mapping], x: str = "iteration", log_y: bool = False):
    """Loss parts (left) and their ramped weights lambda (right) against the iteration.

    ``rows``: dicts such as {"iteration": 10, "loss": .., "loss_s": .., "lambda_c": ..}, i.e.
    the training log's rows.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    rows = list(rows)
    losses, weights = split_curve_keys(rows, x)
    fig = make_subplots(rows=1, cols=2, column_widths=[0.62, 0.38],
                        subplot_titles=("losses", "weights lambda(t)"))
    xs = [r.get(x) for r in rows]
    for col, keys in ((1, losses), (2, weights)):
        for k in keys:
            fig.add_trace(go.Scatter(x=xs, y=[r.get(k) for r in rows], mode="lines", name=k),
                          row=1, col=col)
        fig.update_xaxes(title_text=x, row=1, col=col)
    if log_y:
        fig.update_yaxes(type="log", row=1, col=1)
    fig.update_layout(width=940, height=380, margin=dict(t=40))
    return fig


class LiveLossCurves:
    """A loss-curve figure that redraws while training runs: pass ``update`` as the callback.

    >>> live = LiveLossCurves(every=10); display(live)     # doctest: +SKIP
    >>> train(config, callback=live.update)                # doctest: +SKIP
    """

    def __init__(self, every: int = 1, x: str = "iteration", log_y: bool = False):
        import ipywidgets as widgets

        self.rows: list[dict] = []
        self.every, self.x, self.log_y = every, x, log_y
        self.output = widgets.Output()
        self.figure = None

    def update(self, row: Mapping):
        self.rows.append(dict(row))
        if len(self.rows) % self.every == 0:
            self.redraw()

    def redraw(self):
        from IPython.display import clear_output, display

        if not self.rows:
            return
        self.figure = loss_curves(self.rows, self.x, self.log_y)
        with self.output:
            clear_output(wait=True)
            display(self.figure)

    def _repr_mimebundle_(self, **kwargs):
        return self.output._repr_mimebundle_(**kwargs)
