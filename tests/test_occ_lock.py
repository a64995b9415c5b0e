"""camlkit.diagnostics.occ_lock: l_o's plateaus and the health columns of a run's log, read into a sentence."""

import math
from pathlib import Path

import pytest

from camlkit.diagnostics import occ_lock
from camlkit.runtime.runlog import read_log

MINI = Path(__file__).resolve().parents[1] / "results" / "mini_table2"


def test_the_committed_mini_logs_give_the_counts_the_occ_study_quotes():
    """Seeds 1 and 2 of the mini CAML runs: 80 logged Eq. 1 iterations each, l_o in [9.0, 9.6]
    in 21 and 24, above 17 in 15 and 1, below 1 in 18 and 31."""
    one = occ_lock.l_o_plateaus(read_log(MINI / "mini-caml-4L-seed1" / "log.csv"))
    two = occ_lock.l_o_plateaus(read_log(MINI / "mini-caml-4L-seed2" / "log.csv"))
    assert one == {"iterations": 80, "below 1": 18, "9.0-9.6": 21, "above 17": 15}
    assert two == {"iterations": 80, "below 1": 31, "9.0-9.6": 24, "above 17": 1}
    sentence = occ_lock.read_lock(read_log(MINI / "mini-caml-4L-seed1" / "log.csv"), "seed 1")
    assert sentence.startswith("seed 1: of 80 logged Eq. 1 iterations, l_o is below 1 in 18, "
                               "in [9.0, 9.6] in 21, above 17 in 15; 45% sit")
    assert "saturated in both" not in sentence  # an older log: no health columns


def _row(iteration, l_o, lambda_o=0.01, **health):
    return {"iteration": iteration, "l_o": l_o, "lambda_o": lambda_o, **health}


def test_warm_up_rows_do_not_count_and_the_readings_follow_the_numbers():
    warm = [_row(i, 0.0, lambda_o=0.0) for i in range(5)]
    assert occ_lock.l_o_plateaus(warm)["iterations"] == 0
    assert "never acted" in occ_lock.read_lock(warm)
    agreeing = warm + [_row(10 + i, 0.01) for i in range(8)] + [_row(20, 3.0), _row(21, 9.2)]
    assert occ_lock.l_o_plateaus(agreeing) == {"iterations": 10, "below 1": 8, "9.0-9.6": 1,
                                               "above 17": 0}
    assert "l_o near 0 in 80%" in occ_lock.read_lock(agreeing)
    moving = [_row(i, 2.0 + i / 10) for i in range(10)]
    assert "none on the disagreeing plateaus" in occ_lock.read_lock(moving)


def test_health_columns_are_summarised_and_the_locked_gradient_named():
    nan = math.nan
    rows = [_row(0, 0.0, lambda_o=0.0, occ_saturated=nan, occ_sat_mismatch=nan, occ_grad=nan),
            _row(1, 18.42, occ_saturated=1.0, occ_sat_mismatch=1.0, occ_grad=1e-9),
            _row(2, 9.21, occ_saturated=0.5, occ_sat_mismatch=1.0, occ_grad=1e-8),
            _row(3, 0.5, occ_saturated=0.0, occ_sat_mismatch=nan, occ_grad=0.3)]
    health = occ_lock.health_summary(rows)
    assert health == pytest.approx({"saturated": 0.5, "with_saturated": 2, "iterations": 3, "mismatch": 1.0,
                                    "grad": 1e-8, "grad_locked": 5.5e-9})
    sentence = occ_lock.read_lock(rows)
    assert "67% sit on the plateaus of one-hot rows that pick different prototypes" in sentence
    assert ("In 2 of 3 logged Eq. 1 iterations some rows were saturated in both branches (largest "
            "probability above 1 - 1e-6): 50% of the rows on average over all 3; of the saturated rows, "
            "100% pick different prototypes") in sentence
    assert "median |∂l_o/∂z| 1e-08, 5.5e-09 in iterations with l_o > 9." in sentence
    assert occ_lock.health_summary([_row(1, 1.0)]) is None
    none = [_row(1, 3.0, occ_saturated=0.0, occ_sat_mismatch=nan, occ_grad=0.5)]
    assert ("No row was saturated in both branches in any logged Eq. 1 iteration; median |∂l_o/∂z| 0.5."
            in occ_lock.read_lock(none))
    rare = [_row(1, 3.0, occ_saturated=0.003, occ_sat_mismatch=1.0, occ_grad=0.5),
            _row(2, 3.0, occ_saturated=0.0, occ_sat_mismatch=nan, occ_grad=0.5)]
    assert "In 1 of 2 logged Eq. 1 iterations" in occ_lock.read_lock(rare)
    assert ": 0.15% of the rows on average over all 2" in occ_lock.read_lock(rare)  # never "0%"
