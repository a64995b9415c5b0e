"""Figures and small interactive explorers for the camlkit notebooks, one module per concept.

Everything here works on plain arrays (numpy arrays or torch tensors) and never needs a model:
the notebooks compute attention maps, omni-correlations or predictions with camlkit and pass the
results in. Each figure has a *pure* helper underneath (``take_slice``, ``overlay_rgba``,
``attention_to_grid``, ``order_rows_cols``, ``pca_project``, ``error_voxels`` ...) that
``tests/test_viz.py`` pins with arrays small enough to check by hand.

    colors   the colour language: label, prediction, FP, FN, f_v, f_a (one colour each)
    widgets  FigureExplorer (controls above a figure), Table
    images   slices, windows, overlays, the slice browser            (notebooks 1-3, 7)
    data     case statistics, intensity histograms                   (notebook 1)
    cps      the sharpening curve s(p)                               (notebook 3, §2.1)
    cma      intra- and inter-sample attention                       (notebook 4, §2.2)
    occ      omni-correlation heatmaps and their explorer            (notebook 5, §2.3)
    embeddings  the memory bank per slot, PCA of embeddings          (notebook 5)
    occ_lock l_o and OCC's row health over a run                     (notebook 5)
    results  error voxels, meshes, slice comparison                  (notebook 7)
    curves   training curves: one panel per loss part, lambda(t)      (notebooks 2, 3, 6)

Every name is re-exported here, so ``from camlkit import viz; viz.slice_viewer(...)`` works.
"""

from camlkit.viz.cma import (
                             attention_explorer,
                             attention_figure,
                             attention_scale,
                             attention_spread,
                             attention_to_grid,
                             query_index,
                             read_attention_map,
)
from camlkit.viz.colors import (
                             CLASS_NAMES,
                             F_A,
                             F_V,
                             FN,
                             FN_COLOR,
                             FP,
                             FP_COLOR,
                             INKS,
                             LABEL,
                             LABEL_COLOR,
                             PRED,
                             PRED_COLOR,
                             Ink,
                             describe,
                             legend_html,
)
from camlkit.viz.cps import sharpen_curve, sharpen_explorer
from camlkit.viz.curves import Panel, curve_panels, curves_figure, metrics_text, read_run, save_curves, split_curve_keys
from camlkit.viz.data import case_statistics, class_histograms, intensity_histogram
from camlkit.viz.embeddings import memory_bank_figure, pca_2d, pca_project
from camlkit.viz.images import (
                             blended_colorscale,
                             branch_viewer,
                             heat_rgba,
                             overlay_rgba,
                             slice_figure,
                             slice_layers,
                             slice_viewer,
                             take_slice,
                             tint_rgba,
                             to_gray_uint8,
                             to_numpy,
                             upsample_nearest,
)
from camlkit.viz.occ import (
                             first_per_class,
                             omni_correlation_explorer,
                             omni_correlation_figure,
                             omni_correlation_heatmap,
                             order_rows_cols,
                             top_per_class,
)
from camlkit.viz.occ_health import health_figure
from camlkit.viz.results import error_voxels, mesh_figure, scene_box, slice_comparison, surface_mesh, thin_points
from camlkit.viz.widgets import FigureExplorer, Table, displayable, png_bytes

__all__ = ["CLASS_NAMES", "FN", "FN_COLOR", "FP", "FP_COLOR", "F_A", "F_V", "FigureExplorer",
           "INKS", "Ink", "LABEL", "LABEL_COLOR", "PRED", "PRED_COLOR", "Panel",
           "Table", "attention_explorer", "attention_figure", "attention_scale",
           "attention_spread", "attention_to_grid", "blended_colorscale", "branch_viewer",
           "case_statistics", "class_histograms", "curve_panels", "curves_figure", "describe",
           "displayable", "error_voxels", "first_per_class", "health_figure", "heat_rgba",
           "intensity_histogram", "legend_html", "memory_bank_figure",
           "mesh_figure", "metrics_text", "omni_correlation_explorer", "omni_correlation_figure",
           "omni_correlation_heatmap", "order_rows_cols", "overlay_rgba", "pca_2d", "pca_project",
           "png_bytes", "query_index", "read_attention_map", "read_run", "save_curves",
           "scene_box", "sharpen_curve", "sharpen_explorer", "slice_comparison", "slice_figure",
           "slice_layers", "slice_viewer", "split_curve_keys", "surface_mesh", "take_slice",
           "thin_points", "tint_rgba", "to_gray_uint8", "to_numpy", "top_per_class",
           "upsample_nearest"]
