"""Is OCC still teaching? A run's log read for the lock of l_o (notebook 5).

With the released dot product / t nothing bounds a logit, so OCC's rows (Eq. 2) can become
one-hot. Where both branches' rows are one-hot, l_o (Eq. 3, released ``log(p + 1e-8)``) can take
only a few values: 0 when the rows agree, ½·(−log 1e-8) = 9.21 when the rows of one class
disagree, −log 1e-8 = 18.42 when every row does — and in a mismatched one-hot row its gradient
p(1 − p)/(p + 1e-8) is ~0 (camlkit.diagnostics.health.saturation_toy): l_o adds a constant and no signal.

Two readings of a run's ``log.csv`` rows (camlkit.runtime.runlog.read_log), over the logged Eq. 1
iterations where OCC acts (lambda_o > 0):

* :func:`l_o_plateaus` — how many sit at l_o < 1, in [9.0, 9.6], above 17 (every run has l_o);
* :func:`health_summary` — the per-iteration health columns (camlkit.diagnostics.health.row_health and
  ``occ_grad``, logged by runs of this camlkit; older logs have none);

and :func:`read_lock` turns both into a sentence chosen from the numbers.
"""

import math
import statistics

PLATEAUS = {"below 1": (-math.inf, 1.0), "9.0-9.6": (9.0, 9.6), "above 17": (17.0, math.inf)}
# l_o where both branches' rows are one-hot (two classes of rows): -log(1e-8) = 18.42 per
# disagreeing row
LOCKED_L_O = {"rows agree": 0.0, "one class disagrees": 9.21, "every row disagrees": 18.42}


def eq1_rows(rows) -> list:
    """The logged iterations where l_o counts in Eq. 1 (lambda_o > 0: after the warm-up)."""
    return [r for r in rows if r.get("lambda_o", 0.0) > 0]


def l_o_plateaus(rows) -> dict:
    """{"iterations": logged Eq. 1 iterations, "below 1": n, "9.0-9.6": n, "above 17": n}."""
    values = [r["l_o"] for r in eq1_rows(rows)]
    counts = {name: sum(lo <= v <= hi for v in values) for name, (lo, hi) in PLATEAUS.items()}
    return {"iterations": len(values), **counts}


def _finite(rows, key) -> list:
    return [r[key] for r in rows if isinstance(r.get(key), float) and math.isfinite(r[key])]


def health_summary(rows) -> dict | None:
    """Means over the logged Eq. 1 iterations of the saturated share and, of those rows, the
    mismatched share (over the iterations that had saturated rows: ``with_saturated`` of
    ``iterations``); the median |∂l_o/∂(z_v, z_a)| overall and in iterations on a disagreeing
    plateau (l_o > 9, None when there is none). None when the log has no health columns."""
    rows = eq1_rows(rows)
    saturated = _finite(rows, "occ_saturated")
    if not saturated:
        return None
    mismatch = _finite(rows, "occ_sat_mismatch")
    grad = _finite(rows, "occ_grad")
    locked = _finite([r for r in rows if r["l_o"] > 9.0], "occ_grad")
    return {"saturated": statistics.mean(saturated),
            "with_saturated": sum(v > 0 for v in saturated), "iterations": len(saturated),
            "mismatch": statistics.mean(mismatch) if mismatch else None,
            "grad": statistics.median(grad) if grad else None,
            "grad_locked": statistics.median(locked) if locked else None}


def read_lock(rows, who="") -> str:
    """A sentence on the lock, chosen from :func:`l_o_plateaus` and :func:`health_summary`."""
    who = f"{who}: " if who else ""
    counts = l_o_plateaus(rows)
    n = counts["iterations"]
    if n == 0:
        return f"{who}no logged Eq. 1 iteration: l_o never acted."
    stuck = counts["9.0-9.6"] + counts["above 17"]
    where = (f"of {n} logged Eq. 1 iterations, l_o is below 1 in {counts['below 1']}, in "
             f"[9.0, 9.6] in {counts['9.0-9.6']}, above 17 in {counts['above 17']}")
    if stuck / n >= 0.2:
        reading = (f"{stuck / n:.0%} sit on the plateaus of one-hot rows that pick different "
                   "prototypes (9.21, 18.42), where the released log gives almost no gradient")
    elif counts["below 1"] / n >= 0.2:
        reading = (f"{stuck / n:.0%} on the disagreeing plateaus; l_o near 0 in "
                   f"{counts['below 1'] / n:.0%}: rows that agree (saturated or not)")
    elif stuck:
        reading = f"only {stuck / n:.0%} on the disagreeing plateaus: l_o moves between them"
    else:
        reading = "none on the disagreeing plateaus: l_o moves between them"
    sentence = f"{who}{where}; {reading}."
    health = health_summary(rows)
    if health is not None:
        if health["mismatch"] is None:
            saturated = "No row was saturated in both branches in any logged Eq. 1 iteration"
        else:
            saturated = (f"In {health['with_saturated']} of {health['iterations']} logged Eq. 1 "
                         f"iterations some rows were saturated in both branches (largest "
                         f"probability above 1 - 1e-6): {_share(health['saturated'])} of the rows "
                         f"on average over all {health['iterations']}; of the saturated rows, "
                         f"{_share(health['mismatch'])} pick different prototypes in the two branches")
        sentence += f" {saturated}; median |∂l_o/∂z| {_g(health['grad'])}"
        if health["grad_locked"] is not None:
            sentence += f", {_g(health['grad_locked'])} in iterations with l_o > 9"
        sentence += "."
    return sentence


def _share(value) -> str:
    """A share in per cent that never reads 0 % when it is not 0 (0.3 % stays 0.3 %)."""
    return f"{value:.0%}" if value == 0 or value >= 0.01 else f"{value:.2%}"


def _g(value) -> str:
    return "n/a" if value is None else f"{value:.2g}"
