"""OCC's embeddings as pictures (notebook 5): the memory bank's content per slot and a PCA of
memory prototypes beside unlabeled embeddings."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from camlkit.viz.colors import class_ink, predicted_ink
from camlkit.viz.images import to_numpy


def memory_bank_figure(counts, slot_names: Sequence[str] | None = None):
    """Bar chart of a memory bank's content: embeddings stored per slot (labeled case) and class.

    ``counts``: (num_slots, C), e.g. ``MemoryBank.counts``. Background outnumbers atrium by
    100-1000x, so the bars are side by side on a **log** axis starting at 1, each with its count
    written on it, and the title gives the totals per class. A log axis cannot draw 0: an empty
    class of a slot gets a marker on the axis floor labelled "0" where its bar would stand.
    """
    import plotly.graph_objects as go

    counts = to_numpy(counts)
    names = list(slot_names) if slot_names is not None else [f"slot {s}" for s in range(len(counts))]
    n_classes, width = counts.shape[1], 0.8 / counts.shape[1]
    slots = np.arange(len(counts))
    fig = go.Figure()
    for c in range(n_classes):
        ink, x = class_ink(c), slots + (c - (n_classes - 1) / 2) * width  # bar centres
        fig.add_trace(go.Bar(x=x, y=counts[:, c], width=width, name=ink.name,
                             marker_color=ink.plotly(), text=[f"{int(v):,}" for v in counts[:, c]],
                             textposition="outside"))
        empty = counts[:, c] == 0
        if empty.any():
            fig.add_trace(go.Scatter(x=x[empty], y=np.ones(empty.sum()), mode="markers+text",
                                     marker=dict(symbol="line-ew-open", size=14,
                                                 line=dict(width=3, color=ink.plotly())),
                                     text=["0"] * int(empty.sum()), textposition="top center",
                                     name=f"{ink.name}: none stored", showlegend=False,
                                     hovertemplate=f"{ink.name}: 0 stored<extra></extra>"))
    totals = ", ".join(f"{class_ink(c).name} {int(counts[:, c].sum()):,}" for c in range(n_classes))
    fig.update_layout(barmode="overlay", yaxis_type="log", yaxis_title="stored embeddings (log scale)",
                      xaxis=dict(title="labeled case (its memory slot)", tickvals=slots,
                                 ticktext=names),
                      # from 1: bar heights compare by orders of magnitude, not from an arbitrary floor
                      yaxis_range=[0, float(np.log10(max(counts.max(), 1))) + 0.3],
                      width=660, height=360, margin=dict(t=40),
                      title=f"memory bank: {int(counts.sum()):,} embeddings ({totals})")
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


def pca_2d(memory_feats, memory_cls, unl_feats, unl_cls, max_points: int = 600, seed: int = 0):
    """Scatter of memory-bank and unlabeled embeddings on their first two principal axes.

    Memory prototypes are open rings in the class colours (stored where both branches are right:
    the label's grey and green), drawn under the crosses; unlabeled voxels are crosses in their
    own colours (their class is f_v's prediction: camlkit.viz.colors.PREDICTED_CLASS_INKS),
    never the memory's.
    The crosses of both classes are drawn in one shuffled layer, so neither class hides under
    the other; at most ``max_points`` per class are drawn (a seeded sample; the legend gives
    the counts). The principal axes come from all embeddings.
    """
    import plotly.graph_objects as go


    (mem, unl), explained = pca_project(memory_feats, unl_feats)
    memory_cls, unl_cls = to_numpy(memory_cls).ravel(), to_numpy(unl_cls).ravel()
    rng = np.random.default_rng(seed)
    fig = go.Figure()
    for c in np.unique(memory_cls):  # the prototypes as open rings, under the crosses
        sel, ink = mem[memory_cls == c], class_ink(c)
        fig.add_trace(go.Scatter(x=sel[:, 0], y=sel[:, 1], mode="markers",
                                 name=f"memory, {ink.name}: {len(sel):,}",
                                 marker=dict(symbol="circle-open", size=9, color=ink.plotly(),
                                             line=dict(width=1.5))))
    shown = []
    for c in np.unique(unl_cls):  # legend entries; the points follow in one shuffled trace
        where = np.flatnonzero(unl_cls == c)
        keep = rng.permutation(where)[:max_points]
        shown.append(keep)
        ink = predicted_ink(c)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=(
            f"unlabeled, {ink.name}: {len(keep):,} of {len(where):,}"),
            marker=dict(symbol="x", size=7, color=ink.plotly())))
    order = rng.permutation(np.concatenate(shown))
    fig.add_trace(go.Scatter(x=unl[order, 0], y=unl[order, 1], mode="markers", showlegend=False,
                             marker=dict(symbol="x", size=6, opacity=0.7,
                                         color=[predicted_ink(c).plotly() for c in unl_cls[order]]),
                             hovertext=[predicted_ink(c).name for c in unl_cls[order]],
                             hoverinfo="text"))
    fig.update_layout(xaxis_title=f"PC 1 ({100 * explained[0]:.0f} % of variance)",
                      yaxis_title=f"PC 2 ({100 * explained[1]:.0f} % of variance)",
                      legend=dict(orientation="h", y=-0.18, x=0, yanchor="top"),
                      width=660, height=560, margin=dict(t=30))
    return fig
