"""Cross-sample mutual attention (§2.2, notebook 4): one query's intra-sample attention (E_1) over
its image and the b x b inter-sample weights (E_2) at the same token.

The E_1 colour is weight x k, the weight as a multiple of a uniform row's share, on a log scale
centred on 1 whose ends come from a high percentile (:func:`attention_scale`): a trained
network's attention may be nearly uniform, and a scale set by its largest weight would leave
every map grey. :func:`read_attention_map` says in words how large the coloured differences are.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from camlkit.viz.colors import LABEL
from camlkit.viz.images import blended_colorscale, tint_rgba, to_numpy, upsample_nearest
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


def weight_ratio(attn) -> np.ndarray:
    """Attention weights times the row length: 1 = what a uniform row gives every token."""
    attn = to_numpy(attn)
    return attn * attn.shape[-1]


def _sample(values, most: int = 4_000_000, seed: int = 0) -> np.ndarray:
    """The flattened ``values``, or a seeded random draw of ``most`` of them (full-size maps of
    b x heads x k x k weights hold tens of millions; a percentile needs far fewer)."""
    flat = np.ravel(values)
    if flat.size <= most:
        return flat
    return flat[np.random.default_rng(seed).integers(0, flat.size, most)]


def attention_scale(attn_intra, percentile: float = 99.0, least: float = 1.05) -> float:
    """The top ``r`` of the common colour scale of the E_1 maps, which runs from 1/r to r in
    weight x k (1 = a uniform row's share), on a log axis centred on 1.

    ``r`` is the ``percentile`` of how far the weights lie from a uniform row, as a factor either
    way (|log2(weight x k)|), over every sample, head and query: a single outlier does not set
    the scale, and nearly uniform attention still spans the colours (its ripples are then
    small, which the colorbar's numbers say). ``least`` keeps exactly uniform rows from being
    stretched into colour.
    """
    attn_intra = to_numpy(attn_intra)
    ratio = _sample(attn_intra).astype(np.float64) * attn_intra.shape[-1]  # no full-size copy
    spread = np.abs(np.log2(np.maximum(ratio, 1e-12)))
    return max(float(2.0 ** np.percentile(spread, percentile)), least)


def attention_spread(attn_intra, percentile: float = 99.0) -> dict:
    """The figures behind the colour scale: ``top`` (:func:`attention_scale`), ``narrowest``
    (True when ``top`` is the scale's least width, wider than what the weights span),
    ``percentile``, ``largest`` and ``smallest`` weight x k, ``above_twice`` (share of weights
    more than twice a uniform row's) and ``count`` (how many weights)."""
    attn_intra = to_numpy(attn_intra)
    k = attn_intra.shape[-1]
    return {"top": attention_scale(attn_intra, percentile),
            "narrowest": attention_scale(attn_intra, percentile, least=1.0) < attention_scale(attn_intra, percentile),
            "percentile": percentile,
            "largest": float(attn_intra.max()) * k, "smallest": float(attn_intra.min()) * k,
            "above_twice": float((attn_intra > 2.0 / k).mean()), "count": int(attn_intra.size)}


def read_attention_map(spread, figures=None) -> str:
    """Sentences on what the E_1 maps can show, chosen from :func:`attention_spread`; with
    ``figures`` (camlkit.diagnostics.structure.attention_figures of the same weights), also how much atrium
    queries favour atrium tokens, as a multiple of chance."""
    top = spread["top"]
    if spread.get("narrowest"):  # the colorbar's least width, not the weights, sets its ends
        text = (f"Every E1 weight lies between {spread['smallest']:.4g} and {spread['largest']:.4g} "
                f"times a uniform row's ({spread['count']:,} weights): the map is one colour, the "
                f"middle of a colour scale held at its narrowest width ({1 / top:.3g} to {top:.3g}), "
                f"so nothing in it stands out.")
        if figures is not None:
            text += (f" Atrium queries put {figures['atrium_mass']:.3f} of their weight on atrium "
                     f"tokens against {figures['chance']:.3f} for a uniform row.")
        return text
    text = (f"The map's colours span weight x k from {1 / top:.3g} to {top:.3g} (at least "
            f"{spread['percentile']:g} % of E1's {spread['count']:,} weights lie in that range); "
            f"the largest weight is {spread['largest']:.3g} times a uniform row's, and "
            f"{100 * spread['above_twice']:.2f} % of the weights exceed twice it. ")
    if top < 1.25:
        text += (f"Nearly every colour in the map is a difference of at most "
                 f"{100 * (top - 1):.0f} % from a uniform row: faint ripples the colour scale "
                 f"stretches, not hot spots.")
    elif top < 2.0:
        text += (f"Red patches are a mild preference (nearly all weights within a factor "
                 f"{top:.2g} of a uniform share), not hot spots.")
    else:
        text += (f"Some tokens get {top:.3g} times a uniform share or more: hot spots. Whether "
                 f"they sit on the atrium is what the atrium figure says, not the picture.")
    if figures is not None:
        mass, chance = figures["atrium_mass"], figures["chance"]
        text += (f" Atrium queries put {mass:.3f} of their weight on atrium tokens against "
                 f"{chance:.3f} for a uniform row: {mass / chance:.2f} times chance.")
    return text


def _log_ticks(top: float, below: bool = False, above: bool = False) -> tuple[list, list]:
    """Colorbar ticks of the log2 scale -log2(top)..log2(top), labelled in weight x k.

    ``below`` / ``above``: the map holds weights beyond that end of the scale, drawn in the end's
    colour; the end's label then says so ("≤ 0.0357", "≥ 28")."""
    half = np.log2(top)
    vals = [float(v) for v in np.linspace(-half, half, 5)]
    text = [f"{2.0 ** v:.3g}" for v in vals]
    text[0], text[-1] = ("≤ " if below else "") + text[0], ("≥ " if above else "") + text[-1]
    return vals, text


def label_outline(mask2d) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the pixels on the edge of a 2-D mask: in the mask, with a 4-neighbour
    outside it (or on the image border)."""
    mask = np.asarray(mask2d, dtype=bool)
    padded = np.pad(mask, 1, constant_values=False)
    inner = (padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:])
    return np.nonzero(mask & ~inner)


def attention_figure(image, attn_intra, attn_inter, token_grid, sample=0, head=0,
                     qh=0, qw=0, qd=0, opacity=0.6, label=None, top=None, cmap="RdBu_r"):
    """Intra-sample attention of one query over its sample, plus the inter-sample b x b weights.

    Left: the image slice at the query's depth with the query's attention row (reshaped to the
    token grid, that depth's plane, upsampled to the image) blended on top at ``opacity``; the
    cross marks the query; ``label`` (b, h, w, d) adds the atrium's outline in the label colour.
    The colour is ``weight * k`` (1 = a uniform row's share) on a log scale centred on 1: red
    above a uniform share, blue below, from 1/``top`` to ``top`` (default
    :func:`attention_scale` of the whole ``attn_intra``, so maps of different queries compare).
    The colorbar shows the colours as blended over a mid-grey pixel; where the map holds weights
    beyond the scale (it is set by a percentile over every map), the end's label says "≤" or "≥"
    and the title gives this map's range. Right: at the same token
    position, how much each sample (row) attends to each sample (column) in E_2, on 0..1.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    volumes = _batch_volumes(image)
    attn_intra, attn_inter = to_numpy(attn_intra), to_numpy(attn_inter)
    b, H, W, D = volumes.shape
    gh, gw, gd = token_grid
    k = query_index(qh, qw, qd, token_grid)
    ratio = attention_to_grid(weight_ratio(attn_intra[sample, head, k]), token_grid)[:, :, qd]
    z = min(int((qd + 0.5) * D / gd), D - 1)  # image depth at the centre of the query token
    top = attention_scale(attn_intra) if top is None else top
    half = float(np.log2(top))  # the colour scale: log2(weight * k) in -half..half
    shade = 0.5 + np.log2(np.maximum(ratio, 1e-12)) / (2 * half)  # 0..1 (clipped by the tint)
    rgba = tint_rgba(volumes[sample][:, :, z], upsample_nearest(shade, (H, W)), opacity, cmap)
    inter = attn_inter[k, head]  # (b, b): row = attending sample, column = attended sample

    widths, spacing = (0.6, 0.4), 0.22  # room between the panels for the heat's colorbar
    fig = make_subplots(rows=1, cols=2, column_widths=list(widths), horizontal_spacing=spacing,
                        subplot_titles=(
        f"E1 intra: sample {sample}, head {head}, query ({qh},{qw},{qd}) -> depth {z}"
        f"<br>weight x k on this depth: {ratio.min():.3g} to {ratio.max():.3g}",
        f"E2 inter: b x b weights at token {k}"))
    fig.add_trace(go.Image(z=rgba, colormodel="rgba", hoverinfo="x+y"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[(qw + 0.5) * W / gw], y=[(qh + 0.5) * H / gh], mode="markers",
                             marker=dict(symbol="x", size=12, color="black",
                                         line=dict(width=1, color="white")),
                             name="query", showlegend=False), row=1, col=1)
    fig.add_trace(go.Heatmap(z=inter, x=list(range(b)), y=list(range(b)), zmin=0.0, zmax=1.0,
                             colorscale="Viridis", texttemplate="%{z:.2f}",
                             colorbar=dict(title="weight")), row=1, col=2)
    tickvals, ticktext = _log_ticks(top, below=ratio.min() < 1 / top, above=ratio.max() > top)
    fig.add_trace(go.Scatter(  # no points: carries the colorbar of the attention map
        x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
        marker=dict(color=[0.0], cmin=-half, cmax=half, showscale=True,
                    colorscale=blended_colorscale(cmap, opacity),
                    colorbar=dict(title=f"weight × k<br>(1 = uniform)<br>at opacity {opacity:g}",
                                  tickvals=tickvals, ticktext=ticktext, len=0.9, thickness=15,
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
    fig.update_layout(width=900, height=460, margin=dict(t=70, l=10, r=10, b=40),
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
                "opacity": widgets.FloatSlider(value=0.6, min=0, max=1, step=0.05,
                                               description="opacity", continuous_update=False,
                                               style={"description_width": "initial"})}
    top = attention_scale(attn_intra)
    return FigureExplorer(controls, lambda **v: attention_figure(
        volumes, attn_intra, attn_inter, token_grid, label=label, top=top, **v))
