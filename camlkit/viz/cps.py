"""Mutual learning's pseudo labels (notebook 3): the sharpening curve s(p) of §2.1, with a T slider."""

from __future__ import annotations

from typing import Callable

from camlkit import cps
from camlkit.viz.images import to_numpy
from camlkit.viz.widgets import FigureExplorer


def sharpen_curve(T: float = 0.1, sharpen: Callable | None = None):
    """Plotly figure of the sharpening function s(p) = p^(1/T) / (p^(1/T) + (1-p)^(1/T)).

    ``sharpen`` defaults to :func:`camlkit.cps.sharpen`.
    """
    import plotly.graph_objects as go
    import torch

    sharpen = sharpen if sharpen is not None else cps.sharpen
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
