"""Slices of a volume, grey-level windows and mask/heat overlays, and the slice browser.

Axis convention: volumes are (h, w, d) as stored in the LA HDF5 files (d = the slice axis of the
MRI acquisition); a slice ``take_slice(volume, 2, k)`` is shown with h as rows and w as columns.
The pure helpers (``take_slice``, ``overlay_rgba`` ...) are pinned by ``tests/test_viz.py``.
"""

from __future__ import annotations

import numpy as np

from camlkit.viz.colors import F_A, F_V, LABEL, LABEL_COLOR, PRED, describe
from camlkit.viz.widgets import FigureExplorer


def to_numpy(x) -> np.ndarray:
    """A numpy copy of a numpy array or a (possibly GPU, possibly grad-tracking) torch tensor."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy() if x.is_floating_point() else x.detach().cpu().numpy()
    return np.asarray(x)


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


def tint_rgba(image_slice, values, opacity: float = 0.6, cmap: str = "RdBu_r",
              vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Grey image with a colour map blended on top at the **same** ``opacity`` everywhere, RGBA.

    ``values`` in [0, 1] pick the colour (clipped); each pixel becomes ``(1 - opacity) * grey +
    opacity * colour``. Unlike :func:`heat_rgba`, a low value is shown as firmly as a high one —
    what a diverging map needs, whose centre means "nothing unusual" and both ends matter.
    :func:`blended_colorscale` gives the colorbar of exactly this blend.
    """
    from matplotlib import colormaps

    gray = to_gray_uint8(image_slice, vmin, vmax).astype(np.float64)[..., None]
    values = np.clip(to_numpy(values).astype(np.float64), 0.0, 1.0)
    colored = colormaps[cmap](values)[..., :3] * 255.0
    rgb = (1.0 - opacity) * gray + opacity * colored
    alpha = np.full(values.shape + (1,), 255.0)
    return np.round(np.concatenate([rgb, alpha], axis=-1)).astype(np.uint8)


def blended_colorscale(cmap: str = "RdBu_r", opacity: float = 0.6, gray: float = 128.0,
                       n: int = 11) -> list:
    """A plotly colorscale of ``cmap`` as :func:`tint_rgba` blends it over a ``gray`` (0-255)
    pixel at ``opacity``: the colorbar then shows the colours the image shows over mid-grey,
    not the colour map at full strength."""
    from matplotlib import colormaps

    scale = []
    for t in np.linspace(0.0, 1.0, n):
        r, g, b = ((1.0 - opacity) * gray + opacity * np.asarray(colormaps[cmap](t)[:3]) * 255.0)
        scale.append([float(t), f"rgb({r:.0f}, {g:.0f}, {b:.0f})"])
    return scale


def slice_layers(label=None, pred=None) -> list:
    """The (ink, volume) overlays of a label/prediction pair, skipping the ones not given."""
    return [(ink, vol) for ink, vol in ((LABEL, label), (PRED, pred)) if vol is not None]


def slice_figure(image, label=None, pred=None, axis: int = 2, index: int | None = None,
                 show_masks: bool = True, opacity: float = 0.4, layers=None):
    """A plotly figure of one slice with masks blended on top, each named in the legend.

    By default the label is green and the prediction yellow (:mod:`camlkit.viz.colors`);
    ``layers``, a list of ``(Ink, volume)``, overlays other masks instead (e.g. the two
    branches, see :func:`branch_viewer`). Later layers are blended over earlier ones.
    """
    import plotly.graph_objects as go

    image = to_numpy(image)
    layers = slice_layers(label, pred) if layers is None else list(layers)
    index = image.shape[axis] // 2 if index is None else min(index, image.shape[axis] - 1)
    vmin, vmax = np.percentile(image, [0.5, 99.5])  # one window for the whole volume
    shown = layers if show_masks else []
    masks = [take_slice(vol, axis, index) for _, vol in shown]
    rgba = overlay_rgba(take_slice(image, axis, index), masks, opacity,
                        [ink.rgb for ink, _ in shown], vmin, vmax)
    fig = go.Figure(go.Image(z=rgba, colormodel="rgba", hoverinfo="x+y"))
    for ink, _ in shown:  # legend entries only: the colours are in the image itself
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=ink.name,
                                 marker=dict(symbol="square", size=12, color=ink.plotly())))
    title = f"axis {axis}, slice {index}/{image.shape[axis] - 1}"
    if shown:
        title += f"<br>{describe(*(ink for ink, _ in shown))}"
    fig.update_layout(title=dict(text=title, font=dict(size=14)), width=520, height=480,
                      showlegend=bool(shown), legend=dict(orientation="h", y=-0.02),
                      margin=dict(l=10, r=10, t=60, b=10))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig


def slice_viewer(image, label=None, pred=None, axis: int = 2, layers=None) -> FigureExplorer:
    """Browse a volume: axis buttons, slice slider, overlay on/off and opacity slider.

    Label green, prediction yellow; ``layers`` as in :func:`slice_figure`.
    """
    import ipywidgets as widgets

    image = to_numpy(image)
    layers = slice_layers(label, pred) if layers is None else list(layers)
    layers = [(ink, to_numpy(vol)) for ink, vol in layers]
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
    return FigureExplorer(controls, lambda **v: slice_figure(image, layers=layers, **v))


def branch_viewer(image, f_v_mask, f_a_mask, axis: int = 2) -> FigureExplorer:
    """Browse what each branch of CAML calls atrium: f_v sky blue, f_a purple (§2.1).

    ``f_v_mask`` / ``f_a_mask``: (h, w, d) binary masks, e.g. ``p_v[1] > 0.5``.
    """
    return slice_viewer(image, axis=axis, layers=[(F_V, f_v_mask), (F_A, f_a_mask)])
