"""Tests for camlkit/viz/ and camlkit/course.py: the pure helpers on arrays small enough to check by hand, and the
explorer widgets redrawing when a control moves."""

import numpy as np
import pytest
import torch

pytest.importorskip("plotly")
pytest.importorskip("ipywidgets")

from camlkit import viz  # noqa: E402


# ----------------------------------------------------------------------------- slices
def test_take_slice_picks_the_plane_along_each_axis():
    vol = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    assert np.array_equal(viz.take_slice(vol, 0, 1), vol[1])
    assert np.array_equal(viz.take_slice(vol, 1, 2), vol[:, 2])
    assert np.array_equal(viz.take_slice(vol, 2, 3), vol[:, :, 3])
    assert viz.take_slice(torch.zeros(2, 3, 4), 2, 0).shape == (2, 3)


def test_take_slice_rejects_out_of_range_and_non_3d():
    with pytest.raises(IndexError, match="0..3"):
        viz.take_slice(np.zeros((2, 3, 4)), 2, 4)
    with pytest.raises(ValueError):
        viz.take_slice(np.zeros((2, 3)), 0, 0)


def test_overlay_rgba_blends_colour_only_inside_the_mask():
    image = np.array([[0.0, 1.0], [2.0, 4.0]])  # min 0, max 4 -> grey 0, 64, 128, 255
    mask = np.array([[1, 0], [0, 1]])
    rgba = viz.overlay_rgba(image, mask, opacity=0.5, color=(200, 0, 100))
    assert rgba.shape == (2, 2, 4) and rgba.dtype == np.uint8
    assert (rgba[..., 3] == 255).all()
    assert tuple(rgba[0, 1, :3]) == (64, 64, 64)  # outside: grey untouched
    assert tuple(rgba[1, 0, :3]) == (128, 128, 128)
    assert tuple(rgba[0, 0, :3]) == (100, 0, 50)  # 0.5 * 0 + 0.5 * colour
    assert tuple(rgba[1, 1, :3]) == (228, 128, 178)  # round(0.5 * 255 + 0.5 * colour)


def test_overlay_rgba_without_mask_and_with_two_masks():
    image = np.array([[0.0, 2.0]])
    plain = viz.overlay_rgba(image, None)
    assert tuple(plain[0, 1]) == (255, 255, 255, 255)
    two = viz.overlay_rgba(image, [np.array([[1, 1]]), np.array([[0, 1]])], opacity=1.0,
                           color=[(10, 20, 30), (40, 50, 60)])
    assert tuple(two[0, 0, :3]) == (10, 20, 30) and tuple(two[0, 1, :3]) == (40, 50, 60)
    with pytest.raises(ValueError, match="colours"):
        viz.overlay_rgba(image, [np.array([[1, 1]])], color=[(1, 2, 3), (4, 5, 6)])


def test_upsample_nearest_repeats_each_cell():
    grid = np.array([[1, 2], [3, 4]])
    up = viz.upsample_nearest(grid, (4, 6))
    assert up.shape == (4, 6)
    assert (up[:2, :3] == 1).all() and (up[2:, 3:] == 4).all()


# ----------------------------------------------------------------------------- data summaries
def test_case_statistics_rows():
    image = np.zeros((2, 2, 2), dtype=np.float32)
    image[0, 0, 0] = 8.0
    label = np.zeros((2, 2, 2), dtype=np.uint8)
    label[0, 0, :] = 1
    table = viz.case_statistics({"A": (image, label)})
    (row,) = table.rows
    assert row["shape"] == "2x2x2"
    assert row["foreground %"] == pytest.approx(25.0)
    assert row["mean"] == pytest.approx(1.0)
    assert row["atrium mean"] == pytest.approx(4.0)
    assert "foreground %" in repr(table) and "<table>" in table._repr_html_()
    same = viz.case_statistics([("A", image, label)])
    assert same.rows == table.rows


def test_class_histograms_are_densities_per_class():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(10, 10, 10))
    label = (image > 0.5).astype(np.uint8)
    edges, dens = viz.class_histograms(image, label, bins=20)
    assert sorted(dens) == [0, 1] and len(edges) == 21
    for d in dens.values():
        assert (d * np.diff(edges)).sum() == pytest.approx(1.0)
    assert (dens[1][edges[1:] <= 0.5] == 0).all()  # atrium voxels are all above 0.5
    fig = viz.intensity_histogram(image, label, bins=20)
    assert [t.name for t in fig.data] == ["background", "atrium"]


# ----------------------------------------------------------------------------- sharpening
def test_sharpen_curve_uses_the_given_function():
    fig = viz.sharpen_curve(0.5, sharpen=lambda p, T: p * 0 + T)
    assert np.allclose(fig.data[1].y, 0.5)
    fig = viz.sharpen_curve(0.1, sharpen=lambda p, T: p ** (1 / T) / (p ** (1 / T) + (1 - p) ** (1 / T)))
    y = np.asarray(fig.data[1].y)
    assert y[100] == pytest.approx(0.5) and y[120] > 0.8  # p = 0.5 stays, p = 0.6 -> ~0.98


def test_sharpen_explorer_redraws_on_slider_change():
    ex = viz.sharpen_explorer(1.0, sharpen=lambda p, T: p * 0 + T)
    assert np.allclose(ex.figure.data[1].y, 1.0)
    ex.controls["T"].value = 0.1
    assert np.allclose(ex.figure.data[1].y, 0.1)


# ----------------------------------------------------------------------------- attention
def test_query_index_matches_einops_token_order():
    from einops import rearrange

    grid = (2, 3, 4)
    fmap = torch.arange(24).reshape(1, 1, *grid)
    tokens = rearrange(fmap, "b c h w d -> b (h w d) c")[0, :, 0]
    for pos in [(0, 0, 0), (1, 2, 3), (0, 1, 2), (1, 0, 1)]:
        assert tokens[viz.query_index(*pos, grid)] == fmap[0, 0][pos]
    with pytest.raises(IndexError):
        viz.query_index(2, 0, 0, grid)


def test_attention_to_grid_inverts_the_flattening():
    grid = (2, 3, 4)
    row = np.zeros(24)
    row[viz.query_index(1, 2, 0, grid)] = 1.0
    g = viz.attention_to_grid(row, grid)
    assert g.shape == grid and g[1, 2, 0] == 1.0 and g.sum() == 1.0
    with pytest.raises(ValueError, match="24"):
        viz.attention_to_grid(np.zeros(23), grid)


def _attention_batch(b=2, heads=2, grid=(2, 2, 2), size=(8, 8, 8)):
    k = int(np.prod(grid))
    gen = torch.Generator().manual_seed(0)
    intra = torch.rand(b, heads, k, k, generator=gen).softmax(-1)
    inter = torch.rand(k, heads, b, b, generator=gen).softmax(-1)
    image = torch.rand(b, 1, *size, generator=gen)
    return image, intra, inter, grid


def test_attention_figure_heat_follows_the_attended_token():
    image, intra, inter, grid = _attention_batch()
    intra = torch.zeros_like(intra)
    intra[..., viz.query_index(1, 0, 1, grid)] = 1.0  # every query looks at token (1, 0, 1)
    fig = viz.attention_figure(torch.zeros_like(image), intra, inter, grid, qd=1, opacity=1.0)
    rgba = np.asarray(fig.data[0].z).astype(int)
    hot = rgba[..., 0] > rgba[..., 2]  # red: above a uniform share; blue: below
    assert hot[4:, :4].all() and not hot[:4].any() and not hot[:, 4:].any()
    heat = fig.data[2]
    assert np.allclose(np.asarray(heat.z), inter[viz.query_index(0, 0, 1, grid), 0].numpy())


def test_attention_explorer_changes_with_the_sliders():
    image, intra, inter, grid = _attention_batch()
    ex = viz.attention_explorer(image, intra, inter, grid)
    before = np.asarray(ex.figure.data[2].z).copy()
    ex.controls["qh"].value = 0 if ex.controls["qh"].value else 1
    assert not np.allclose(before, np.asarray(ex.figure.data[2].z))
    with pytest.raises(ValueError, match="token grid"):
        viz.attention_explorer(image, intra, inter, (2, 2, 3))


# ----------------------------------------------------------------------------- OCC
def test_order_rows_cols_groups_by_class_then_confidence():
    row_class = np.array([1, 0, 1, 0, 1])
    row_conf = np.array([0.6, 0.7, 0.9, 0.95, 0.8])
    col_class = np.array([1, 0, 1, 0])
    rows, cols = viz.order_rows_cols(row_class, row_conf, col_class)
    assert rows.tolist() == [3, 1, 2, 4, 0]
    assert cols.tolist() == [1, 3, 0, 2]


def test_top_and_first_per_class():
    cls = np.array([0, 1, 0, 1, 0])
    conf = np.array([0.1, 0.5, 0.9, 0.7, 0.5])
    assert viz.top_per_class(cls, conf, 2).tolist() == [2, 4, 3, 1]
    assert viz.first_per_class(cls, 1).tolist() == [0, 1]


def _dot_softmax(z, z_p, t):
    return (z @ z_p.T / t).softmax(dim=1)


def _ce(sim_v, sim_a):
    return -(sim_a * torch.log(sim_v + 1e-8)).sum(1).mean()


def test_omni_correlation_heatmap_reorders_the_matrix():
    sim = np.arange(6.0).reshape(3, 2)
    fig = viz.omni_correlation_heatmap(sim, row_class=[1, 0, 0], row_conf=[0.9, 0.1, 0.8],
                                       col_class=[1, 0])
    assert np.asarray(fig.data[0].z).tolist() == [[5, 4], [3, 2], [1, 0]]


def test_omni_correlation_explorer_starts_with_every_row_and_the_steps_l_o():
    from camlkit import occ

    gen = torch.Generator().manual_seed(1)
    z_v, z_a, z_p = (3 * torch.randn(n, 4, generator=gen) for n in (10, 10, 6))
    row_class, col_class = np.array([0, 1] * 5), np.array([0, 0, 0, 1, 1, 1])
    ex = viz.omni_correlation_explorer(z_v, z_a, z_p, row_class, np.linspace(0.5, 1, 10), col_class)
    assert (ex.controls["i"].value, ex.controls["j"].value) == (5, 3)  # every row and column
    assert ex.figure.layout.meta["l_o"] == pytest.approx(
        float(_ce(_dot_softmax(z_v, z_p, 0.1), _dot_softmax(z_a, z_p, 0.1))), rel=1e-5)
    stable = viz.omni_correlation_explorer(z_v, z_a, z_p, row_class, np.linspace(0.5, 1, 10),
                                           col_class, similarity="cosine", occ_log="log_softmax")
    logits_v = occ.correlation_logits(z_v, z_p, 0.1, "cosine")
    expected = occ.occ_loss(logits_v.softmax(1), occ.omni_correlation(z_a, z_p, 0.1, "cosine"),
                            logits_v.log_softmax(1))
    assert stable.figure.layout.meta["l_o"] == pytest.approx(float(expected), rel=1e-5)


def test_a_loss_of_minus_zero_reads_zero():
    from camlkit.viz.occ import format_loss

    assert format_loss(-1e-8) == "0.0000" and format_loss(-0.0) == "0.0000"
    assert format_loss(18.420681) == "18.4207"
    z = torch.tensor([[10.0, 0.0]])  # one row, one-hot on prototype 0 in both branches
    fig = viz.omni_correlation_figure(z, z, torch.eye(2) * 10, [0], [1.0], [0, 1], i=1, j=1)
    assert fig.layout.meta["l_o"] <= 0 and "l_o = 0.0000" in fig.layout.title.text


def test_omni_correlation_explorer_recomputes_with_temperature():
    gen = torch.Generator().manual_seed(0)
    z_v, z_a, z_p = (torch.randn(n, 4, generator=gen) for n in (10, 10, 6))
    row_class, col_class = np.array([0, 1] * 5), np.array([0, 0, 0, 1, 1, 1])
    row_conf = np.linspace(0.5, 1.0, 10)
    ex = viz.omni_correlation_explorer(z_v, z_a, z_p, row_class, row_conf, col_class, i=3, j=2)
    z = np.asarray(ex.figure.data[0].z)
    assert z.shape == (6, 4) and np.allclose(z.sum(1), 1.0)  # rows are distributions
    l_o = ex.figure.layout.meta["l_o"]
    ex.controls["temperature"].value = 10.0
    assert ex.figure.layout.meta["l_o"] != pytest.approx(l_o)
    assert np.asarray(ex.figure.data[0].z).std() < z.std()  # hotter -> flatter rows
    ex.controls["j"].value = 3
    assert np.asarray(ex.figure.data[0].z).shape == (6, 6)


def test_pca_project_finds_the_main_axis():
    rng = np.random.default_rng(0)
    a = np.outer(rng.normal(size=50), [3.0, 0.0, 0.0]) + 0.01 * rng.normal(size=(50, 3))
    b = np.outer(rng.normal(size=30), [3.0, 0.0, 0.0]) + 0.01 * rng.normal(size=(30, 3))
    (pa, pb), explained = viz.pca_project(a, b)
    assert pa.shape == (50, 2) and pb.shape == (30, 2)
    assert explained[0] > 0.99
    mean = np.concatenate([a, b]).mean(0)
    assert np.allclose(pa[:, 0], a[:, 0] - mean[0], atol=0.05)  # sign fixed: loading positive
    fig = viz.pca_2d(torch.tensor(a), np.zeros(50, int), b, np.r_[np.zeros(15, int), np.ones(15, int)])
    assert len(fig.data) == 4  # 2 legend entries + 1 layer of unlabeled crosses + memory


# ----------------------------------------------------------------------------- results
def test_error_voxels():
    pred = np.zeros((3, 3, 3), bool)
    gt = np.zeros((3, 3, 3), bool)
    pred[0, 0, 0] = pred[1, 1, 1] = True
    gt[1, 1, 1] = gt[2, 2, 2] = True
    err = viz.error_voxels(pred, gt)
    assert err["fp"].tolist() == [[0, 0, 0]] and err["fn"].tolist() == [[2, 2, 2]]


def test_surface_mesh_encloses_the_mask_in_physical_units():
    mask = np.zeros((6, 6, 6), np.uint8)
    mask[1:4, 2:5, 2:4] = 1
    verts, faces = viz.surface_mesh(mask, spacing=(2.0, 1.0, 1.0))
    assert faces.shape[1] == 3 and len(verts) > 0
    assert verts[:, 0].min() == pytest.approx(2 * 0.5) and verts[:, 0].max() == pytest.approx(2 * 3.5)
    assert verts[:, 1].min() == pytest.approx(1.5) and verts[:, 1].max() == pytest.approx(4.5)
    empty_v, empty_f = viz.surface_mesh(np.zeros((3, 3, 3)))
    assert empty_v.shape == (0, 3) and empty_f.shape == (0, 3)


def _cube_pair():
    gt = np.zeros((10, 12, 8), np.uint8)
    gt[2:7, 3:9, 2:6] = 1
    return np.roll(gt, 1, axis=0), gt


def test_mesh_figure_traces_use_the_colour_language():
    pred, gt = _cube_pair()
    fig = viz.mesh_figure(pred, gt, step_size=1)
    names = [t.name for t in fig.data]
    assert names == ["label", "prediction", "label", "false positive (fp)", "false negative (fn)"]
    assert len(fig.data[3].x) == 6 * 4 and len(fig.data[4].x) == 6 * 4  # one 6x4 face each
    assert fig.data[0].color == viz.LABEL.plotly() and fig.data[1].color == viz.PRED.plotly()
    fp, fn = fig.data[3].marker, fig.data[4].marker
    assert fp.color == viz.FP.plotly() and fn.color == viz.FN.plotly()
    assert fn.symbol != fp.symbol  # false negatives read apart from dots
    for word in ("green", "yellow", "red-orange", "blue"):
        assert word in fig.layout.title.text
    assert "false positive 24 voxels" in fig.layout.title.text  # all drawn: no "drawn" count


def test_mesh_figure_keeps_surfaces_and_errors_apart():
    """The issue-18 view: errors drawn over the surfaces hid them; now the surfaces have a scene
    of their own, both translucent, and the errors are a sample on a faint label."""
    gt = np.zeros((30, 30, 30), np.uint8)
    gt[5:25, 5:25, 5:25] = 1
    pred = np.roll(gt, 4, axis=0)  # 4 slabs of 20 x 20 voxels wrong each way: 1,600 each
    fig = viz.mesh_figure(pred, gt, step_size=2, max_points=500)
    surfaces = [t for t in fig.data if t.scene == "scene"]
    errors = [t for t in fig.data if t.scene == "scene2"]
    assert [t.type for t in surfaces] == ["mesh3d", "mesh3d"]  # label and prediction, no points
    assert all(0 < t.opacity < 1 for t in surfaces)
    assert [t.type for t in errors] == ["mesh3d", "scatter3d", "scatter3d"]
    assert errors[0].opacity < min(t.opacity for t in surfaces) and not errors[0].showlegend
    assert all(len(t.x) == 500 for t in errors[1:])
    drawn = np.c_[errors[2].x, errors[2].y, errors[2].z]
    assert len(np.unique(drawn, axis=0)) == 500  # a draw without repeats ...
    truth = {tuple(v) for v in viz.error_voxels(pred, gt)["fn"].tolist()}
    assert {tuple(v) for v in drawn.astype(int).tolist()} <= truth  # ... of real error voxels
    assert np.ptp(drawn[:, 0]) >= 3  # spread over the error slabs, not the first rows only
    assert "false negative 1,600 voxels, 500 drawn" in fig.layout.title.text
    assert fig.layout.scene.camera == fig.layout.scene2.camera  # the same view in both


def test_thin_points_is_a_seeded_draw_in_order():
    pts = np.arange(300).reshape(100, 3)
    a, b = viz.thin_points(pts, 10), viz.thin_points(pts, 10)
    assert np.array_equal(a, b) and len(a) == 10 and np.all(np.diff(a[:, 0]) > 0)
    assert np.array_equal(viz.thin_points(pts, 200), pts)


def test_mesh_figure_default_view_holds_every_vertex():
    pred, gt = _cube_pair()
    spacing = (1.0, 0.5, 2.0)
    fig = viz.mesh_figure(pred, gt, spacing=spacing, step_size=1)
    scene = fig.layout.scene
    for name, axis in zip("xyz", (scene.xaxis, scene.yaxis, scene.zaxis)):
        lo, hi = axis.range
        values = np.concatenate([np.asarray(getattr(t, name), dtype=float) for t in fig.data])
        assert len(values) and lo < values.min() and values.max() < hi
        assert tuple(fig.layout.scene2[f"{name}axis"].range) == (lo, hi)  # the errors' scene too
    ratio = scene.aspectratio  # equal units along the three axes
    extents = [axis.range[1] - axis.range[0] for axis in (scene.xaxis, scene.yaxis, scene.zaxis)]
    assert np.allclose([ratio.x, ratio.y, ratio.z], np.array(extents) / max(extents))


def test_scene_box_of_nothing_is_a_unit_box():
    ranges, ratio = viz.scene_box([np.zeros((0, 3))])
    assert ranges == [(0.0, 1.0)] * 3 and ratio == dict(x=1.0, y=1.0, z=1.0)


def test_slice_comparison_makes_three_panels_in_the_course_colours():
    import matplotlib
    import matplotlib.pyplot as plt

    backend, open_figures = matplotlib.get_backend(), plt.get_fignums()
    pred, gt = _cube_pair()
    fig = viz.slice_comparison(np.random.rand(*gt.shape), pred, gt, index=3)
    assert len([ax for ax in fig.axes if ax.get_title()]) == 3
    assert plt.get_fignums() == open_figures and matplotlib.get_backend() == backend  # no pyplot
    contour_colours = [tuple(np.round(c.get_edgecolor()[0][:3], 3)) for c in fig.axes[1].collections]
    assert contour_colours == [tuple(np.round(viz.LABEL.mpl()[:3], 3)),
                               tuple(np.round(viz.PRED.mpl()[:3], 3))]
    errors = fig.axes[2].images[-1]
    assert np.allclose(errors.cmap(1 / 3)[:3], viz.FP.mpl()[:3])  # 1 = false positive
    assert np.allclose(errors.cmap(2 / 3)[:3], viz.FN.mpl()[:3])  # 2 = false negative
    assert [t.get_text() for t in fig.legends[0].get_texts()][:4] == [
        "label", "prediction", "false positive", "false negative"]
    assert viz.png_bytes(fig).startswith(b"\x89PNG")


def test_slice_viewer_axis_and_index():
    vol = np.random.rand(4, 6, 8)
    label = np.zeros_like(vol, dtype=np.uint8)
    ex = viz.slice_viewer(vol, label)
    assert ex.controls["index"].max == 7 and np.asarray(ex.figure.data[0].z).shape == (4, 6, 4)
    ex.controls["axis"].value = 0
    assert ex.controls["index"].max == 3
    assert np.asarray(ex.figure.data[0].z).shape == (6, 8, 4)


def _log_rows(n=6):
    """Rows shaped like log.csv: l_o is ten times bigger than the other parts."""
    return [{"iteration": i, "L": 2.0 - 0.1 * i, "L_s": 1.0 - 0.1 * i, "l_c": 0.05 + 0.01 * i,
             "l_o": 16.0 - i, "lambda_c": i / 10, "lambda_o": i / 100, "lr": 0.01,
             "seconds": 0.5} for i in range(n)]


def test_curve_keys_split_into_losses_and_weights():
    rows = [{"iteration": i, "loss": 1.0 / (i + 1), "loss_c": 0.1, "lambda_c": i / 10}
            for i in range(5)]
    losses, weights = viz.split_curve_keys(rows)
    assert losses == ["loss", "loss_c"] and weights == ["lambda_c"]


def test_curve_panels_give_each_loss_part_its_own_axis():
    panels = viz.curve_panels(_log_rows())
    assert [p.keys for p in panels] == [("L",), ("L_s",), ("l_c",), ("l_o",),
                                        ("lambda_c", "lambda_o")]
    fig = viz.curves_figure(_log_rows())
    drawn = [tuple(line.get_label() for line in ax.lines) for ax in fig.axes if ax.lines]
    assert drawn == [p.keys for p in panels]
    l_c_axis = fig.axes[2]
    assert l_c_axis.get_ylim()[1] < 1.0  # not flattened by l_o (up to 16)


def test_curves_figure_shows_the_final_metrics_as_text():
    summary = {"dice": [0.8638, 0.05], "jaccard": [0.76, 0.07], "hd95": [9.1, 3.0],
               "asd": [2.5, 1.0], "cases": 20}
    text = viz.metrics_text(summary)
    assert "Dice 86.38 ± 5.00 %" in text and "20 test cases" in text and "95HD 9.10" in text
    one = viz.metrics_text({"dice": [0.5, 0.0], "cases": 1})
    assert "Dice 50.00 %" in one and "±" not in one
    fig = viz.curves_figure(_log_rows(), summary)
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == [text]
    assert viz.metrics_text(None) == ""


def test_save_curves_from_a_run_folder_is_atomic(tmp_path):
    import csv
    import json

    import matplotlib

    backend = matplotlib.get_backend()
    rows = _log_rows()
    with open(tmp_path / "log.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "summary.json").write_text(json.dumps({"dice": [0.9, 0.01], "cases": 2}))
    out = viz.save_curves(tmp_path, tmp_path / "curves.png")
    assert out.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "log.csv", "summary.json"]
    assert matplotlib.get_backend() == backend
    viz.save_curves(rows, tmp_path / "again.png")
    assert (tmp_path / "again.png").stat().st_size > 1000


def test_save_curves_bad_input_names_the_file(tmp_path):
    from camlkit.errors import CamlkitError

    with pytest.raises(CamlkitError, match="log.csv"):
        viz.save_curves(tmp_path, tmp_path / "curves.png")
    with pytest.raises(CamlkitError, match="missing"):
        viz.save_curves(_log_rows(), tmp_path / "missing" / "curves.png")
    assert list(tmp_path.iterdir()) == []


def test_library_never_switches_the_matplotlib_backend():
    from pathlib import Path

    for path in (Path(viz.__file__).parents[1]).rglob("*.py"):  # all of camlkit/, viz/ included
        source = path.read_text()
        for banned in ("matplotlib.use(", "import matplotlib.pyplot", "from matplotlib import pyplot"):
            assert banned not in source, f"{path.name}: {banned}"


# ----------------------------------------------------------------------------- colour language
def test_the_colour_language_gives_each_meaning_its_own_colour():
    rgbs = [ink.rgb for ink in viz.INKS]
    assert len(set(rgbs)) == len(rgbs) == 6
    assert viz.describe(viz.LABEL, viz.PRED) == "label green, prediction yellow"
    html = viz.legend_html()
    for ink in viz.INKS:
        assert ink.name in html and ink.plotly() in html


def test_slice_figure_overlays_and_names_label_and_prediction():
    image = np.zeros((4, 4, 3))
    label = np.zeros((4, 4, 3), bool)
    label[0, 0] = True
    fig = viz.slice_figure(image, label, np.zeros_like(label), index=1, opacity=1.0)
    rgba = np.asarray(fig.data[0].z)
    assert tuple(rgba[0, 0, :3]) == viz.LABEL.rgb
    assert [t.name for t in fig.data[1:]] == ["label", "prediction"]
    assert "label green" in fig.layout.title.text and "prediction yellow" in fig.layout.title.text


def test_branch_viewer_names_the_two_branches():
    image = np.random.rand(6, 6, 4)
    v = np.zeros((6, 6, 4), bool)
    v[1:3, 1:3] = True
    ex = viz.branch_viewer(image, v, np.roll(v, 2, 0))
    title = ex.figure.layout.title.text
    assert "f_v" in title and "f_a" in title and "label" not in title and "prediction" not in title
    assert [t.marker.color for t in ex.figure.data[1:]] == [viz.F_V.plotly(), viz.F_A.plotly()]


# ----------------------------------------------------------------------------- notebook setup
def test_smoke_reads_the_environment(monkeypatch):
    from camlkit import course

    monkeypatch.setenv("CAMLKIT_SMOKE", "1")
    assert course.smoke()
    monkeypatch.setenv("CAMLKIT_SMOKE", "0")
    assert not course.smoke()
    monkeypatch.delenv("CAMLKIT_SMOKE")
    assert not course.smoke()


def test_find_data_dir_prefers_the_environment(tmp_path, monkeypatch):
    from camlkit import course
    from camlkit.errors import CamlkitError

    (tmp_path / "train.list").write_text("A\n")
    monkeypatch.setenv("CAMLKIT_DATA", str(tmp_path))
    assert course.find_data_dir() == tmp_path.resolve()
    monkeypatch.setenv("CAMLKIT_DATA", str(tmp_path / "missing"))
    with pytest.raises(CamlkitError, match="CAMLKIT_DATA"):
        course.find_data_dir()


def test_memory_bank_figure_stacks_classes_per_slot():
    fig = viz.memory_bank_figure(np.array([[5, 1], [0, 0], [2, 3]]), ["a", "b", "c"])
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["background", "atrium"]
    assert list(bars[1].y) == [1, 0, 3] and "11 embeddings" in fig.layout.title.text
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "c"]


def test_memory_bank_figure_marks_an_empty_class_with_a_zero_where_its_bar_would_stand():
    fig = viz.memory_bank_figure(np.array([[5000, 0], [300, 12]]), ["a", "b"])
    bars = [t for t in fig.data if t.type == "bar"]
    zeros = [t for t in fig.data if t.type == "scatter"]
    assert len(zeros) == 1 and list(zeros[0].text) == ["0"]
    assert list(zeros[0].y) == [1]  # the floor of the log axis (10^0)
    assert zeros[0].x[0] == pytest.approx(bars[1].x[0])  # slot a's atrium bar position
    assert zeros[0].marker.line.color == bars[1].marker.color  # in the atrium's colour
    full = viz.memory_bank_figure(np.array([[5, 1]]), ["a"])
    assert all(t.type == "bar" for t in full.data)


def test_pca_keeps_memory_and_unlabeled_apart_and_no_class_hidden():
    from camlkit.viz.colors import CLASS_INKS, PREDICTED_CLASS_INKS

    rng = np.random.default_rng(0)
    fig = viz.pca_2d(rng.normal(size=(8, 3)), np.repeat([0, 1], 4), rng.normal(size=(900, 3)),
                     np.repeat([0, 1], [800, 100]), max_points=300)
    colours = {t.name: t.marker.color for t in fig.data if t.name}
    memory = {c for n, c in colours.items() if n.startswith("memory")}
    unlabeled = {c for n, c in colours.items() if n.startswith("unlabeled")}
    assert memory == {ink.plotly() for ink in CLASS_INKS}
    assert unlabeled == {ink.plotly() for ink in PREDICTED_CLASS_INKS}
    assert not memory & unlabeled
    assert "300 of 800" in " ".join(colours) and "100 of 100" in " ".join(colours)
    points = [t for t in fig.data if not t.name]  # both classes' crosses in one shuffled layer
    assert len(points) == 1 and len(points[0].x) == 400
    kinds = list(points[0].hovertext)
    first_atrium = kinds.index(PREDICTED_CLASS_INKS[1].name)
    assert first_atrium < 100  # atrium crosses spread through the layer, not all on top


def test_find_data_dir_tries_the_working_folder_then_its_parent(tmp_path, monkeypatch):
    """data/LA of the working folder, else of its parent (a notebook runs in notebooks/); nothing
    beside the repository: a folder two levels up is not found."""
    from camlkit import course
    from camlkit.errors import CamlkitError

    monkeypatch.delenv("CAMLKIT_DATA", raising=False)
    repo = tmp_path / "outside" / "repo"
    work = repo / "notebooks"
    above = repo / "data" / "LA"  # data/LA of the repository, seen from notebooks/
    local = work / "data" / "LA"
    beside = tmp_path / "outside" / "data" / "LA"  # beside the repository: never looked at
    for folder in (work, above, beside):
        folder.mkdir(parents=True, exist_ok=True)
    (beside / "train.list").write_text("A\n")
    monkeypatch.chdir(work)
    with pytest.raises(CamlkitError, match="looked in"):
        course.find_data_dir()
    (above / "train.list").write_text("A\n")
    assert course.find_data_dir() == above.resolve()
    local.mkdir(parents=True)
    (local / "train.list").write_text("A\n")
    assert course.find_data_dir() == local.resolve()
    assert course.data_candidates() == [local, above]
