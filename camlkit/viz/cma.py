"""Cross-sample mutual attention (§2.2, notebook 4): one query's intra-sample attention (E_1) over
its image and the b x b inter-sample weights (E_2) at the same token."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from camlkit.viz.colors import LABEL
from camlkit.viz.images import heat_rgba, to_numpy, upsample_nearest
from camlkit.viz.widgets import FigureExplorer


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


def attention_scale(attn_intra) -> float:
    """The common colour-scale top of the intra maps: the largest weight times k over every
    sample, head and query (``weight * k`` is 1 for a uniform row), at least 1."""
    attn_intra = to_numpy(attn_intra)
    return max(float(attn_intra.max()) * attn_intra.shape[-1], 1.0)


def label_outline(mask2d) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels on the edge of a 2-D mask: in the mask, with a 4-neighbour
    outside it (or on the image border)."""
    mask = np.asarray(mask2d, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return np.nonzero(mask & ~inner)


def attention_figure(image, attn_intra, attn_inter, token_grid, sample=0, head=0,
                     qh=0, qw=0, qd=0, opacity=0.7, label=None, vmax=None):
    """Intra-sample attention of one query over its sample, plus the inter-sample b x b weights.

    Left: the image slice at the query's depth with the query's attention row (reshaped to the
    token grid, that depth's plane, upsampled to the image) blended on top; the cross marks the
    query; ``label`` (b, h, w, d) adds the atrium's outline in the label colour. The heat is
    ``weight * k`` (1 = a uniform row) on one scale from 0 to ``vmax`` (default
    :func:`attention_scale` of the whole ``attn_intra``, so maps of different queries compare),
    shown by a colorbar. Right: at the same token position, how much each sample (row) attends
    to each sample (column) in E_2, on 0..1.
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
    k_tokens = attn_intra.shape[-1]
    vmax = attention_scale(attn_intra) if vmax is None else vmax
    heat = upsample_nearest(plane * k_tokens / vmax, (H, W))  # 0..1 on the common scale
    rgba = heat_rgba(volumes[sample][:, :, z], heat, opacity)
    inter = attn_inter[k, head]  # (b, b): row = attending sample, column = attended sample

    widths, spacing = (0.6, 0.4), 0.22  # room between the panels for the heat's colorbar
    fig = make_subplots(rows=1, cols=2, column_widths=list(widths), horizontal_spacing=spacing,
                        subplot_titles=(
        f"E1 intra: sample {sample}, head {head}, query ({qh},{qw},{qd}) -> depth {z}",
        f"E2 inter: b x b weights at token {k}"))
    fig.add_trace(go.Image(z=rgba, colormodel="rgba", hoverinfo="x+y"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[(qw + 0.5) * W / gw], y=[(qh + 0.5) * H / gh], mode="markers",
                             marker=dict(symbol="x", size=12, color="cyan"), name="query",
                             showlegend=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=inter, x=list(range(b)), y=list(range(b)), zmin=0.0, zmax=1.0,
                             colorscale="Viridis", texttemplate="%{z:.2f}",
                             colorbar=dict(title="weight")), row=1, col=2)
    fig.add_trace(go.Scatter(  # no points: carries the colorbar of the attention heat
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(color=[0.0], cmin=0.0, cmax=vmax, colorscale="Inferno", showscale=True,
                    colorbar=dict(title="weight × k<br>(1 = uniform)", len=0.9, thickness=15,
                                  x=widths[0] * (1 - spacing) + 0.01, xanchor="left"))),
        row=1, col=1)
    if label is not None:
        rows, cols = label_outline(_batch_volumes(label)[sample][:, :, z] == 1)
        fig.add_trace(go.Scatter(x=cols, y=rows, mode="markers", name="atrium (label)",
                                 marker=dict(size=3, color=LABEL.plotly()), hoverinfo="skip"),
                      row=1, col=1)
    fig.update_yaxes(autorange="reversed", title_text="query sample", dtick=1, row=1, col=2)
    fig.update_xaxes(title_text="key sample", dtick=1, row=1, col=2)
    # the image's own extent: no band of empty axis around it
    fig.update_xaxes(showticklabels=False, range=[-0.5, W - 0.5], row=1, col=1)
    fig.update_yaxes(showticklabels=False, range=[H - 0.5, -0.5], row=1, col=1)
    fig.update_layout(width=900, height=440, margin=dict(t=50, l=10, r=10, b=40),
                      legend=dict(orientation="h", y=-0.05))
    return fig


def attention_explorer(image, attn_intra, attn_inter, token_grid, label=None) -> FigureExplorer:
    """Sliders for sample, head and query position over :func:`attention_figure`.

    image: (b, [1,] h, w, d); attn_intra: (b, heads, k, k); attn_inter: (k, heads, b, b);
    token_grid: (h', w', d') with k = h' w' d' (what ``CMA.forward(..., return_attention=True)``
    and ``CAMLNet.attention`` return); label: (b, h, w, d), outlined on the maps. Every map
    shares one colour scale (:func:`attention_scale`).
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
                                 continuous_update=False, style={"description_width": "initial"})

    controls = {"sample": slider("sample", b - 1), "head": slider("head", heads - 1),
                "qh": slider("query h'", gh - 1, gh // 2), "qw": slider("query w'", gw - 1, gw // 2),
                "qd": slider("query d'", gd - 1, gd // 2),
                "opacity": widgets.FloatSlider(value=0.7, min=0, max=1, step=0.05,
                                               description="opacity", continuous_update=False,
                                               style={"description_width": "initial"})}
    vmax = attention_scale(attn_intra)
    return FigureExplorer(controls, lambda **v: attention_figure(
        volumes, attn_intra, attn_inter, token_grid, label=label, vmax=vmax, **v))
