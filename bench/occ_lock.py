"""Is OCC locked? The l_o plateaus of runs' logs, and what their health columns say about them.

    python -m bench.occ_lock RUN_DIR [RUN_DIR ...]

For each run folder (its ``log.csv``), over the logged Eq. 1 iterations (lambda_o > 0):

* how often l_o sits where one-hot rows put it: in [9.0, 9.6] (½ · −log 1e-8 = 9.21: every row of
  one class picks another prototype in the two branches), above 17 (18.42: every row does), below
  1 (rows agree);
* with the health columns (camlkit.diagnostics.health.row_health, runs from this version on): the median share
  of saturated rows, and of those mismatched, and the median |∂l_o/∂z| in the plateau iterations
  against the iterations with l_o in [1, 9) — results/occ_regime/PLAN.md's test of the mechanism:
  confirmed when most plateau iterations have ≥ 90 % saturated rows with some mismatched, and
  their gradient is ≥ 10x smaller (median) than off the plateau.

Prints a Markdown table, one row per run.
"""

import argparse
import math
import statistics
from pathlib import Path

from camlkit.diagnostics.occ_lock import PLATEAUS, eq1_rows, l_o_plateaus
from camlkit.runtime.runlog import read_log


def _median(values):
    values = [v for v in values if math.isfinite(v)]
    return statistics.median(values) if values else float("nan")


def _on(row, name) -> bool:
    low, high = PLATEAUS[name]
    return low <= row["l_o"] <= high


def lock_figures(rows) -> dict:
    """Counts (camlkit.diagnostics.occ_lock.l_o_plateaus) and PLAN.md's medians of one run's Eq. 1 rows."""
    eq1 = eq1_rows(rows)
    counts = l_o_plateaus(rows)
    plateau = [r for r in eq1 if _on(r, "9.0-9.6") or _on(r, "above 17")]
    middle = [r for r in eq1 if 1.0 <= r["l_o"] < PLATEAUS["9.0-9.6"][0]]
    figures = {"eq1": counts["iterations"], "at_9.2": counts["9.0-9.6"],
               "above_17": counts["above 17"], "below_1": counts["below 1"],
               "health": any(math.isfinite(r.get("occ_saturated", float("nan"))) for r in eq1)}
    if figures["health"]:
        figures.update(
            plateau_saturated=_median([r["occ_saturated"] for r in plateau]),
            plateau_mismatch=_median([r["occ_sat_mismatch"] for r in plateau]),
            plateau_grad=_median([r["occ_grad"] for r in plateau]),
            middle_grad=_median([r["occ_grad"] for r in middle]),
            locked_share=(sum(r["occ_saturated"] >= 0.9 and r["occ_sat_mismatch"] > 0
                              for r in plateau) / len(plateau)) if plateau else float("nan"),
        )
    return figures


def verdict(figures) -> str:
    """PLAN.md's reading of one run: the mechanism confirmed, refuted, or not testable."""
    if not figures["health"]:
        return "no health columns"
    if not figures["at_9.2"] + figures["above_17"]:
        return "no plateau"
    ratio = figures["middle_grad"] / figures["plateau_grad"] if figures["plateau_grad"] > 0 else math.inf
    if math.isnan(ratio):
        return "no iteration off the plateau to compare"
    locked = figures["locked_share"] > 0.5 and ratio >= 10
    return f"{'confirmed' if locked else 'refuted'} (gradient ratio {ratio:.3g})"


def table(run_dirs) -> str:
    lines = ["| run | Eq. 1 rows | l_o in [9.0, 9.6] | > 17 | < 1 | plateau: saturated | "
             "mismatched | median grad | off-plateau grad | mechanism |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for run in run_dirs:
        f = lock_figures(read_log(Path(run) / "log.csv"))
        health = [f.get(k, float("nan")) for k in ("plateau_saturated", "plateau_mismatch",
                                                    "plateau_grad", "middle_grad")]
        cells = " | ".join("–" if math.isnan(v) else f"{v:.3g}" for v in health)
        lines.append(f"| {Path(run).name} | {f['eq1']} | {f['at_9.2']} | {f['above_17']} | "
                     f"{f['below_1']} | {cells} | {verdict(f)} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run folders holding log.csv")
    print(table(parser.parse_args(argv).runs), end="")


if __name__ == "__main__":
    main()
