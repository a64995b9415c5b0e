"""The LA data at a glance (notebook 1): per-case statistics and intensity histograms per class."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from camlkit.viz.colors import class_ink
from camlkit.viz.images import to_numpy
from camlkit.viz.widgets import Table


def case_statistics(cases) -> Table:
    """One row per case: shape, foreground fraction, image mean/std, atrium mean intensity.

    ``cases``: a mapping ``name -> (image, label)`` or an iterable of ``(name, image, label)``.
    """
    items = cases.items() if isinstance(cases, Mapping) else ((n, (image, label)) for n, image, label in cases)
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
        ink = class_ink(value)
        fig.add_trace(go.Scatter(x=centers, y=density, mode="lines", line_shape="hvh",
                                 fill="tozeroy", name=ink.name,
                                 line=dict(color=ink.plotly()), fillcolor=ink.plotly(0.3)))
    fig.update_layout(xaxis_title="intensity (z-scored)", yaxis_title="density",
                      width=620, height=360, margin=dict(t=30))
    return fig
