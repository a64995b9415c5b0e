"""Cross-sample mutual attention (§2.2, notebook 4): one query's intra-sample attention (E_1) over
its image and the b x b inter-sample weights (E_2) at the same token."""

from __future__ import annotations

from typing import Sequence

import numpy as np

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
