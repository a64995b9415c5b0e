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
    occ      omni-correlation, memory bank, PCA                      (notebook 5, §2.3)
    occ_lock l_o and OCC's row health over a run                     (notebook 5)
    results  error voxels, meshes, slice comparison                  (notebook 7)
    curves   training curves: one panel per loss part, lambda(t)      (notebooks 2, 3, 6)

Every name is re-exported here, so ``from camlkit import viz; viz.slice_viewer(...)`` works.
``viz.smoke`` and ``viz.find_data_dir`` are aliases of :mod:`camlkit.course` (notebook setup).
"""

from camlkit.course import DATA_ENV, SMOKE_ENV, find_data_dir, smoke  # notebook setup (aliases)
from camlkit.viz.cma import (attention_explorer, attention_figure, attention_scale, attention_spread,
                             attention_to_grid, query_index, read_attention_map)
from camlkit.viz.colors import (CLASS_NAMES, F_A, F_V, FN, FN_COLOR, FP, FP_COLOR, INKS, LABEL,
                                LABEL_COLOR, PRED, PRED_COLOR, Ink, describe, legend_html)
from camlkit.viz.cps import sharpen_curve, sharpen_explorer
from camlkit.viz.curves import (LiveLossCurves, Panel, curve_panels, curves_figure, loss_curves,
                                metrics_text, read_run, save_curves, split_curve_keys)
from camlkit.viz.data import case_statistics, class_histograms, intensity_histogram
from camlkit.viz.images import (blended_colorscale, branch_viewer, heat_rgba, overlay_rgba,
                                slice_figure, slice_layers, slice_viewer, take_slice, tint_rgba,
                                to_gray_uint8, to_numpy, upsample_nearest)
from camlkit.viz.occ import (first_per_class, memory_bank_figure, omni_correlation_explorer,
                             omni_correlation_figure, omni_correlation_heatmap, order_rows_cols,
                             pca_2d, pca_project, top_per_class)
from camlkit.viz.occ_lock import health_figure
from camlkit.viz.results import (error_voxels, mesh_figure, scene_box, slice_comparison,
                                surface_mesh, thin_points)
from camlkit.viz.widgets import FigureExplorer, Table, displayable, png_bytes

__all__ = [name for name in dir() if not name.startswith("_") and name not in (
    "cma", "colors", "cps", "curves", "data", "images", "occ", "occ_lock", "results", "widgets")]
