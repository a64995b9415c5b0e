"""camlkit.viz's attention and omni-correlation figures as notebooks 4 and 5 show them
(camlkit.viz.cma, camlkit.viz.occ): a common attention scale with its colorbar and the label
outline, class names on the omni-correlation axes, rows averaged for display, one stated colour
scale across panels (or one per panel, said so), a log-scale memory bank, full slider labels."""

import numpy as np
import pytest
import torch

from camlkit import viz
from camlkit.viz import cma as viz_cma
from camlkit.viz import occ as viz_occ


def test_label_outline_is_the_edge_of_the_mask():
    mask = np.zeros((5, 5), dtype=bool)
    mask[1:4, 1:4] = True
    rows, cols = viz_cma.label_outline(mask)
    edge = set(zip(rows.tolist(), cols.tolist()))
    assert (2, 2) not in edge and len(edge) == 8 and (1, 1) in edge and (3, 2) in edge
    assert viz_cma.label_outline(np.zeros((3, 3))) [0].size == 0


def _near_uniform(b=2, heads=2, k=8):
    """Rows that give half the tokens 0.9 and half 1.1 of a uniform share (rows sum to 1)."""
    row = torch.tensor([0.9, 1.1] * (k // 2)) / k
    return row.expand(b, heads, k, k).clone()


def test_attention_scale_comes_from_a_percentile_not_from_one_outlier():
    k = 64
    uniform = torch.full((2, 2, k, k), 1 / k)
    assert viz_cma.attention_scale(uniform) == 1.05  # exactly uniform: not stretched into colour
    flat = viz_cma.attention_spread(uniform)
    assert flat["narrowest"] and "the map is one colour" in viz_cma.read_attention_map(flat)
    assert "between 1 and 1 times a uniform row's" in viz_cma.read_attention_map(flat)
    near = _near_uniform(k=k)
    near[1, 0, 3] = torch.eye(k)[5]  # one query puts everything on token 5: weight x k = 64
    top = viz_cma.attention_scale(near)
    assert top == pytest.approx(1 / 0.9)  # 0.9 is the farthest from 1 of the common weights
    assert viz_cma.attention_scale(near, percentile=100) == pytest.approx(1e12)  # the zeros
    spread = viz_cma.attention_spread(near)
    assert not spread["narrowest"]
    assert spread["largest"] == pytest.approx(k) and spread["top"] == pytest.approx(top)
    assert spread["above_twice"] == pytest.approx(1 / near.numel())
    assert "not hot spots" in viz_cma.read_attention_map(spread)
    peaked = torch.eye(k).expand(2, 2, k, k)
    assert "hot spots" in viz_cma.read_attention_map(viz_cma.attention_spread(peaked))
    assert "not hot spots" not in viz_cma.read_attention_map(viz_cma.attention_spread(peaked))


def _grey_image(b=2, size=8):
    """Images whose slices window to 0..255 with every pixel but two at grey 128."""
    image = torch.full((b, 1, size, size, size), 128.0)
    image[:, :, 0, 0] = 0.0
    image[:, :, 0, 1] = 255.0
    return image


def _rgb(entry) -> np.ndarray:
    return np.array([float(c) for c in entry[1][4:-1].split(",")])


def test_colorbar_range_and_colours_are_those_of_the_blend():
    k, grid = 8, (2, 2, 2)
    row = torch.tensor([0.9] * 4 + [1.1] * 4) / k  # tokens with h' = 0 get 0.9, h' = 1 get 1.1
    near = row.expand(2, 2, k, k).clone()
    inter = torch.full((k, 2, 2, 2), 0.5)
    ex = viz.attention_explorer(_grey_image(), near, inter, grid)
    fig = ex.figure
    bar = [t for t in fig.data if t.type == "scatter" and t.marker.showscale]
    top = viz_cma.attention_scale(near)
    half = np.log2(top)
    assert len(bar) == 1 and bar[0].marker.cmin == pytest.approx(-half)
    assert bar[0].marker.cmax == pytest.approx(half)  # the colorbar spans what the blend uses
    assert list(bar[0].marker.colorbar.ticktext) == [f"{v:.3g}" for v in (0.9, 0.949, 1, 1.05, 1 / 0.9)]
    scale = bar[0].marker.colorscale
    rgba = np.asarray(fig.data[0].z).astype(float)[..., :3]
    low, high = rgba[2, 6], rgba[6, 6]  # image rows 0-3 are h' = 0 (0.9, the bar's bottom), 4-7 h' = 1
    assert np.abs(low - _rgb(scale[0])).max() <= 1  # the bar's bottom colour, as blended
    ratio_high = (np.log2(1.1) + half) / (2 * half)  # where 1.1 sits on the bar
    colours = np.array([_rgb(e) for e in scale])
    expected = np.array([np.interp(ratio_high, [e[0] for e in scale], colours[:, c]) for c in range(3)])
    assert np.abs(high - expected).max() <= 6  # between two of the bar's 11 stops
    ends = viz_cma.attention_figure(_grey_image(), near, inter, grid, top=1.05)  # 0.9 and 1.1 beyond 1.05
    bar = [t for t in ends.data if t.type == "scatter" and t.marker.showscale][0]
    assert bar.marker.colorbar.ticktext[0] == "≤ 0.952" and bar.marker.colorbar.ticktext[-1] == "≥ 1.05"
    assert "0.9 to 1.1" in ends.layout.annotations[0].text  # the title gives what is drawn
    ex.controls["opacity"].value = 0.3  # the bar follows the slider
    assert ex.figure.data[3].marker.colorscale != scale and "0.3" in ex.figure.data[3].marker.colorbar.title.text


def test_explorer_shares_one_scale_and_outlines_the_label():
    k = 8
    peaked = _near_uniform(k=k)
    peaked[1, 0, 3] = torch.eye(k)[5]
    image = torch.zeros(2, 1, 8, 8, 8)
    label = torch.zeros(2, 8, 8, 8, dtype=torch.long)
    label[:, 2:6, 2:6, :] = 1
    inter = torch.full((k, 2, 2, 2), 0.5)
    ex = viz.attention_explorer(image, peaked, inter, (2, 2, 2), label=label)
    fig = ex.figure
    bar = [t for t in fig.data if t.type == "scatter" and t.marker.showscale]
    cmax = bar[0].marker.cmax
    ex.controls["sample"].value = 1
    bar = [t for t in ex.figure.data if t.type == "scatter" and t.marker.showscale]
    assert len(bar) == 1 and bar[0].marker.cmax == cmax  # one colorbar, the common scale
    outline = [t for t in fig.data if t.name == "atrium (label)"]
    assert len(outline) == 1 and len(outline[0].x) == 12  # the 4x4 square's edge
    assert all(c.style.description_width == "initial" for c in ex.controls.values()
               if hasattr(c.style, "description_width"))


def test_block_rows_averages_within_each_class_only():
    z = np.arange(10.0)[:, None] * np.ones((1, 2))
    classes = np.array([0] * 6 + [1] * 4)
    small, cls, f = viz_occ.block_rows(z, classes, max_rows=4)
    assert f == 3 and cls.tolist() == [0, 0, 1, 1]
    assert small[:, 0].tolist() == [1.0, 4.0, 7.0, 9.0]  # (0,1,2) (3,4,5) | (6,7,8) (9)
    same, _, one = viz_occ.block_rows(z, classes, max_rows=10)
    assert one == 1 and np.array_equal(same, z)


def test_heatmap_names_the_classes_and_downsamples_for_display():
    rng = np.random.default_rng(0)
    sim = rng.random((4000, 256))
    row_class = np.repeat([0, 1], 2000)
    col_class = np.repeat([0, 1], 128)
    fig = viz.omni_correlation_heatmap(sim, row_class, rng.random(4000), col_class)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (126, 128) and z.dtype == np.float32  # 2 x ceil(2000 / 32) rows
    assert list(fig.layout.yaxis.ticktext) == ["background", "atrium"]
    assert list(fig.layout.xaxis.ticktext) == ["background", "atrium"]
    assert "means of 32 rows" in fig.layout.yaxis.title.text
    assert len(fig.to_json()) < 200_000


def test_heatmap_sums_columns_so_a_prototype_holding_a_row_still_shows_as_one():
    sim = np.zeros((4, 256))
    sim[:, 5] = 1.0  # every row on prototype 5: one bright column
    cls = np.repeat([0, 1], 128)
    fig = viz.omni_correlation_heatmap(sim, np.array([0, 0, 1, 1]), np.ones(4), cls)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (4, 128) and z.max() == 1.0  # prototypes 4 and 5 summed, not averaged
    assert np.allclose(z.sum(1), 1.0)  # a displayed row is still a distribution
    assert "summed in groups of 2" in fig.layout.xaxis.title.text
    assert all(shape.line.color != "white" for shape in fig.layout.shapes)  # white = weight 1


def test_panels_on_their_own_scales_each_with_a_colorbar_beside_it():
    sim_a = np.array([[0.9, 0.1], [0.2, 0.8]])
    sim_b = np.array([[0.5, 0.5], [0.45, 0.55]])
    cls = np.array([0, 1])
    fig = viz_occ.omni_correlation_panels({"dot": (sim_a, cls, [1, 1], cls),
                                           "cosine": (sim_b, cls, [1, 1], cls)}, shared=False)
    assert [t.zmax for t in fig.data] == pytest.approx([0.9, 0.55]) and all(t.showscale for t in fig.data)
    assert fig.data[0].colorbar.x < 0.5 < fig.layout.xaxis2.domain[0]  # between the panels
    assert fig.layout.yaxis.title.text and not fig.layout.yaxis2.title.text


def test_panels_share_one_stated_scale():
    sim_a = np.array([[0.9, 0.1], [0.2, 0.8]])
    sim_b = np.array([[0.5, 0.5], [0.5, 0.5]])
    cls = np.array([0, 1])
    fig = viz_occ.omni_correlation_panels({"dot": (sim_a, cls, [1, 1], cls),
                                           "cosine": (sim_b, cls, [1, 1], cls)})
    assert [t.zmax for t in fig.data] == [0.9, 0.9]
    assert [t.showscale for t in fig.data] == [False, True]
    assert "all panels" in fig.data[1].colorbar.title.text


def test_memory_bank_on_a_log_axis_with_numbers_and_totals():
    fig = viz.memory_bank_figure(np.array([[62000, 40], [50000, 120]]), ["a", "b"])
    assert fig.layout.yaxis.type == "log"
    assert list(fig.data[0].x) == [-0.2, 0.8] and list(fig.data[1].x) == [0.2, 1.2]  # side by side
    assert list(fig.data[1].text) == ["40", "120"]
    assert "background 112,000, atrium 160" in fig.layout.title.text


def test_occ_explorer_labels_are_not_cut_and_share_a_scale():
    gen = torch.Generator().manual_seed(0)
    z_v, z_a, z_p = (torch.randn(n, 4, generator=gen) for n in (10, 10, 6))
    ex = viz.omni_correlation_explorer(z_v, z_a, z_p, np.array([0, 1] * 5), np.linspace(0.5, 1, 10),
                                       np.array([0, 0, 0, 1, 1, 1]), i=3, j=2)
    assert ex.controls["temperature"].style.description_width == "initial"
    assert ex.controls["temperature"].description.startswith("temperature")
    assert ex.figure.data[0].zmax == ex.figure.data[1].zmax
    assert [t.showscale for t in ex.figure.data] == [False, True]
