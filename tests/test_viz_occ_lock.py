"""camlkit.viz.occ_health: l_o and OCC's health panels of a run's log, drawn."""

import math

from camlkit import viz
from camlkit.diagnostics.occ_lock import LOCKED_L_O


def test_health_figure_marks_the_locked_values_and_keeps_shares_on_0_to_1():
    nan = math.nan
    rows = [{"iteration": i, "l_o": v, "occ_saturated": 0.0, "occ_sat_mismatch": nan,
             "occ_norm_zv": 3.0, "occ_norm_za": 2.0, "occ_norm_zp": 1.0, "occ_logit_gap": 9.0,
             "occ_grad": 0.5} for i, v in enumerate((18.42, 9.21, 0.0))]
    fig = viz.health_figure(rows)
    axes = [ax for ax in fig.axes if ax.has_data()]
    titles = [ax.get_title() for ax in axes]
    assert titles[0].startswith("l_o") and all("OCC health" in t for t in titles[1:])
    assert len(axes) == 4
    marked = sorted(round(line.get_ydata()[0], 2) for line in axes[0].get_lines()[1:])
    assert marked == sorted(LOCKED_L_O.values())
    assert axes[1].get_ylim() == (-0.03, 1.03)  # saturated share, all 0: still drawn on 0..1
    only_l_o = viz.health_figure([{"iteration": 1, "l_o": 9.2}, {"iteration": 2, "l_o": 0.1}])
    assert len([ax for ax in only_l_o.axes if ax.has_data()]) == 1  # an older log: l_o alone
