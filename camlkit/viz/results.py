"""A prediction against its label (notebook 7): error voxels, surface meshes in 3-D, and one slice
with contours and an error map."""

from __future__ import annotations

import numpy as np

from camlkit.viz.colors import FN, FP, LABEL, PRED, describe
from camlkit.viz.images import take_slice, to_numpy


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


def scene_box(point_sets, pad: float = 0.05):
    """Axis ranges ``[(lo, hi)] * 3`` that hold every point of every (n, 3) set, padded by
    ``pad`` of the largest extent on each side, and the aspect ratio that keeps units equal."""
    pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 3) for p in point_sets])
    if len(pts) == 0:
        return [(0.0, 1.0)] * 3, dict(x=1.0, y=1.0, z=1.0)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    margin = pad * max(float((hi - lo).max()), 1.0)
    lo, hi = lo - margin, hi + margin
    extent = hi - lo
    ratio = extent / extent.max()
    return [(float(a), float(b)) for a, b in zip(lo, hi)], dict(zip("xyz", map(float, ratio)))


def mesh_figure(pred, gt, spacing=(1.0, 1.0, 1.0), step_size: int = 2, max_points: int = 4000):
    """Interactive 3-D view: label (green) and prediction (yellow) surfaces, false positive
    voxels (red dots) and false negative voxels (blue diamonds, larger: they sit inside the
    label where the prediction surface is missing).

    The axis ranges are set to hold every vertex and error voxel, and the camera stands far
    enough back to show all of it. Click legend entries to show or hide each part. Error voxels
    are thinned to at most ``max_points`` each (every k-th voxel) to keep the figure light.
    """
    import plotly.graph_objects as go

    fig = go.Figure()
    shown = []
    for mask, ink, opacity in ((gt, LABEL, 0.3), (pred, PRED, 0.45)):
        verts, faces = surface_mesh(mask, spacing, step_size)
        shown.append(verts)
        fig.add_trace(go.Mesh3d(x=verts[:, 0], y=verts[:, 1], z=verts[:, 2], i=faces[:, 0],
                                j=faces[:, 1], k=faces[:, 2], color=ink.plotly(),
                                opacity=opacity, name=ink.name, showlegend=True,
                                flatshading=True))
    scale = np.asarray(spacing, dtype=np.float64)
    errors = error_voxels(pred, gt)
    for key, ink, symbol, size in (("fp", FP, "circle", 2), ("fn", FN, "diamond", 4)):
        pts = errors[key]
        pts = pts[:: max(1, int(np.ceil(len(pts) / max_points)))] * scale
        shown.append(pts)
        fig.add_trace(go.Scatter3d(
            x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers", name=f"{ink.name} ({key})",
            marker=dict(size=size, symbol=symbol, color=ink.plotly(),
                        line=dict(width=0))))
    ranges, ratio = scene_box(shown)
    axis = lambda r, t: dict(range=list(r), title=t, autorange=False)  # noqa: E731
    fig.update_layout(
        title=dict(text=f"surfaces: {describe(LABEL, PRED)}<br>voxels: {describe(FP)} dots, "
                        f"{describe(FN)} diamonds", font=dict(size=14)),
        width=760, height=600, margin=dict(l=0, r=0, t=60, b=0),
        legend=dict(itemsizing="constant"),
        scene=dict(xaxis=axis(ranges[0], "h"), yaxis=axis(ranges[1], "w"),
                   zaxis=axis(ranges[2], "d"), aspectmode="manual", aspectratio=ratio,
                   camera=dict(eye=dict(x=1.25, y=1.25, z=0.85), center=dict(x=0, y=0, z=0))))
    return fig


def slice_comparison(image, pred, gt, index: int | None = None, axis: int = 2, title: str = ""):
    """A matplotlib Figure of one slice: the image, the label (green) and prediction (yellow)
    contours, and the error map (false positive red, false negative blue, agreement white).

    Drawn on a ``matplotlib.figure.Figure`` (no pyplot state): in a notebook with
    ``%matplotlib inline`` show it as a cell's last value or with ``display(fig)``; without it,
    ``display(viz.displayable(fig))`` (a bare Figure has only a text form).
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    image, pred, gt = to_numpy(image), to_numpy(pred).astype(bool), to_numpy(gt).astype(bool)
    index = image.shape[axis] // 2 if index is None else index
    img, p, g = (take_slice(v, axis, index) for v in (image, pred, gt))
    errors = np.zeros(img.shape, dtype=np.uint8)
    errors[p & ~g], errors[~p & g], errors[p & g] = 1, 2, 3
    fig = Figure(figsize=(11, 4.3))
    axes = fig.subplots(1, 3)
    for ax in axes:
        ax.imshow(img, cmap="gray")
        ax.axis("off")
    axes[0].set_title(f"image\naxis {axis}, slice {index}")
    for mask, ink in ((g, LABEL), (p, PRED)):
        if mask.any() and not mask.all():
            axes[1].contour(mask, levels=[0.5], colors=[ink.mpl()], linewidths=1.5)
    axes[1].set_title(f"contours\n{describe(LABEL, PRED)}")
    agree = (1.0, 1.0, 1.0, 0.35)
    cmap = ListedColormap([(0, 0, 0, 0), FP.mpl(0.85), FN.mpl(0.85), agree])
    axes[2].imshow(errors, cmap=cmap, vmin=0, vmax=3, interpolation="nearest")
    axes[2].set_title(f"errors\nFP {FP.word}, FN {FN.word}")
    handles = [Patch(facecolor=ink.mpl(), label=ink.name) for ink in (LABEL, PRED, FP, FN)]
    handles.append(Patch(facecolor=agree, edgecolor="0.5", label="both (true positive)"))
    fig.legend(handles=handles, loc="lower center", ncol=5, frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    return fig
