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


def thin_points(points, most: int, seed: int = 0) -> np.ndarray:
    """At most ``most`` rows of ``points`` (n, 3): a seeded random draw, kept in their order.
    (Every k-th voxel of an ``np.argwhere`` list would draw stripes along the scan order.)"""
    points = np.asarray(points)
    if len(points) <= most:
        return points
    keep = np.sort(np.random.default_rng(seed).choice(len(points), most, replace=False))
    return points[keep]


def _mesh_trace(verts, faces, ink, opacity, scene, legend=True):
    import plotly.graph_objects as go

    return go.Mesh3d(x=verts[:, 0], y=verts[:, 1], z=verts[:, 2], i=faces[:, 0], j=faces[:, 1],
                     k=faces[:, 2], color=ink.plotly(), opacity=opacity, name=ink.name,
                     legendgroup=ink.name, showlegend=legend, flatshading=True, hoverinfo="name",
                     scene=scene)


def mesh_figure(pred, gt, spacing=(1.0, 1.0, 1.0), step_size: int = 2, max_points: int = 3000,
                surface_opacity=(0.35, 0.5), point_size: float = 1.5):
    """Interactive 3-D view in two scenes side by side, from the same camera.

    Left, **surfaces**: the label (green) and the prediction (yellow), translucent
    (``surface_opacity``: label, prediction) so each shows through the other — where green
    stands out, the prediction is short; where yellow does, it overshoots. Right, **errors**:
    the false positive (red-orange dots) and false negative (blue diamonds) voxels over a faint
    label surface, a seeded random draw of at most ``max_points`` of each kind (the title says
    how many there are). Drawn apart, neither hides the other. Click legend entries to show or
    hide a part in both scenes; drag to rotate a scene. The axis ranges of both hold every
    vertex and error voxel.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.02,
                        specs=[[{"type": "scene"}, {"type": "scene"}]],
                        subplot_titles=("surfaces", "errors (label faint)"))
    shown, meshes = [], {}
    for mask, ink, opacity in zip((gt, pred), (LABEL, PRED), surface_opacity):
        verts, faces = surface_mesh(mask, spacing, step_size)
        shown.append(verts)
        meshes[ink.name] = (verts, faces)
        fig.add_trace(_mesh_trace(verts, faces, ink, opacity, "scene"))
    fig.add_trace(_mesh_trace(*meshes[LABEL.name], LABEL, 0.12, "scene2", legend=False))
    scale = np.asarray(spacing, dtype=np.float64)
    errors = error_voxels(pred, gt)
    counts = []
    for key, ink, symbol in (("fp", FP, "circle"), ("fn", FN, "diamond")):
        pts = thin_points(errors[key], max_points) * scale
        shown.append(pts)
        drawn = "" if len(pts) == len(errors[key]) else f", {len(pts):,} drawn"
        counts.append(f"{ink.name} {len(errors[key]):,} voxels{drawn}")
        fig.add_trace(go.Scatter3d(
            x=pts[:, 0], y=pts[:, 1], z=pts[:, 2], mode="markers", name=f"{ink.name} ({key})",
            hoverinfo="name", scene="scene2",
            marker=dict(size=point_size, symbol=symbol, color=ink.plotly(), line=dict(width=0))))
    ranges, ratio = scene_box(shown)
    axis = lambda r, t: dict(range=list(r), title=t, autorange=False)  # noqa: E731
    scene = dict(xaxis=axis(ranges[0], "h"), yaxis=axis(ranges[1], "w"),
                 zaxis=axis(ranges[2], "d"), aspectmode="manual", aspectratio=ratio,
                 camera=dict(eye=dict(x=1.25, y=1.25, z=0.85), center=dict(x=0, y=0, z=0)))
    fig.update_layout(
        title=dict(text=f"{describe(LABEL, PRED)} | {describe(FP)} dots, {describe(FN)} "
                        f"diamonds<br>{'; '.join(counts)}", font=dict(size=13)),
        width=1000, height=560, margin=dict(l=0, r=0, t=80, b=0),
        legend=dict(itemsizing="constant", orientation="h", y=0.0), scene=scene, scene2=scene)
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
