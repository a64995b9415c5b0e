"""The run log: ``log.csv`` (always) and TensorBoard scalars in ``tb/`` (when the optional
``tensorboard`` extra is installed: ``pip install camlkit[tensorboard]``).

One row per logged iteration with the parts of Eq. 1 (L, L_s, l_c, l_o), the two ramp weights
(lambda_c, lambda_o), the learning rate and the seconds since the (re)start; a run with OCC adds
the health of its omni-correlation rows (camlkit.diagnostics.health: ``occ_saturated``,
``occ_sat_mismatch``, ``occ_norm_zv``/``za``/``zp``, ``occ_logit_gap``, ``occ_grad``; NaN where
no row was computed, e.g. during the warm-up; camlkit.train.log_fields names the columns). A resumed run keeps
the rows before the iteration it restarts from and rewrites the rest, so the log of a run that
was stopped and resumed equals the log of one that was not.
"""

import csv
from pathlib import Path

from camlkit.files import open_no_link

LOG_FIELDS = ("iteration", "L", "L_s", "l_c", "l_o", "lambda_c", "lambda_o", "lr", "seconds")


def tensorboard_writer(folder, purge_step):
    """A TensorBoard SummaryWriter, or None when the optional ``tensorboard`` is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder), purge_step=purge_step)


class RunLog:
    """CSV of every logged iteration + TensorBoard scalars (rank 0 only)."""

    def __init__(self, run_dir: Path, resume: bool, start: int, fields=LOG_FIELDS):
        self.path, self.fields = run_dir / "log.csv", tuple(fields)
        rows = read_log(self.path) if resume and self.path.exists() else []
        rows = [r for r in rows if r["iteration"] < start]  # drop what the resumed run redoes
        # never through a planted link; a column older rows lack reads as NaN
        with open_no_link(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.fields, restval="nan", extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self.tb = tensorboard_writer(run_dir / "tb", start)

    def write(self, row):
        with open_no_link(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, restval="nan", extrasaction="ignore").writerow(row)
        if self.tb is not None:
            for key in self.fields[1:]:
                group = "occ_health" if key.startswith("occ_") else "train"
                self.tb.add_scalar(f"{group}/{key}", row.get(key, float("nan")), row["iteration"])

    def close(self):
        if self.tb is not None:
            self.tb.close()


def read_log(path, missing_ok=False):
    """The rows of a log.csv as dicts (iteration an int, the rest floats).

    A line the training process is still writing (too few or too many values, or one that does
    not parse) is skipped, so a log can be read while a run writes it. ``missing_ok``: no file
    gives [] (a launched run that has not logged yet) instead of an error.
    """
    path = Path(path)
    if missing_ok and not path.is_file():
        return []
    rows = []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                rows.append({k: (int(v) if k == "iteration" else float(v)) for k, v in row.items()})
            except (TypeError, ValueError):  # None for a missing value, a list for extra ones
                continue
    return rows

