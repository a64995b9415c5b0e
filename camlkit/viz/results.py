"""A prediction against its label (notebook 7): error voxels, surface meshes in 3-D, and one slice
with contours and an error map."""

from __future__ import annotations

import numpy as np

from camlkit.viz.colors import FN_COLOR, FP_COLOR
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
