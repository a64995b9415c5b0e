"""The end of a run: f_v of the final iteration evaluated on test.list, as the paper reports it.

A run with ``eval_split="val"`` scores its validation cases instead (the last ``val_cases`` of
train.list, never trained on: camlkit.data.load_split), for choices that must not look at the
test set; ``summary.json`` then says ``"split": "val"``.

Table 1 reports the model of the final iteration (paper §3, "Quantitative Evaluation and
Comparison": best-during-training selection would overfit the test set), through the sliding-window
protocol of camlkit.evaluation.evaluate. The run folder gets ``cases.csv`` (one row per case),
``summary.md`` (the mean ± std over cases beside the paper's row) and ``summary.json`` (what camlkit
report reads). Running out of memory or past ``ulimit -f`` here is one line saying that the training
ended, where its weights are and how to evaluate them again
(camlkit.evaluation.evaluate.evaluation_failed_message).
"""

import json
from contextlib import contextmanager

from camlkit.data import load_split
from camlkit.errors import CamlkitError
from camlkit.evaluation.evaluate import evaluate_cases, format_table, summarize, write_csv
from camlkit.files import write_text
from camlkit.limits import limit_reached
from camlkit.runtime.trained import InputSettings


def evaluate_run(cfg, f_v, run_dir):
    """Evaluate f_v on the run's test (or validation) cases: cases.csv, summary.md, summary.json."""
    split = load_split(cfg.data, cfg.labeled, cfg.val_cases)
    cases = list(split.val if cfg.eval_split == "val" else split.test)[: cfg.eval_cases]
    f_v.eval()
    with evaluation_limits_as_one_line():
        rows = evaluate_cases(f_v, cases, InputSettings.of(cfg), progress=cfg.progress)
        summary = summarize(rows)
        write_csv(rows, run_dir / "cases.csv")
        if cfg.eval_split == "val":
            summary = {**summary, "split": "val"}
        table = format_table(summary, cfg.method, cfg.labeled)
        if cfg.eval_split == "val":
            table = (f"Validation cases ({len(cases)}, the last of train.list; not the test set, so "
                     f"no paper row applies)\n\n{table}")
        write_text(table + "\n", run_dir / "summary.md")
        write_text(json.dumps(summary, indent=2), run_dir / "summary.json")
    if cfg.progress:
        print(table)
    return summary


@contextmanager
def evaluation_limits_as_one_line():
    """Out of memory or past ``ulimit -f`` during the evaluation: a CamlkitError, which the run
    reports with what it kept (camlkit.evaluation.evaluate.evaluation_failed_message)."""
    try:
        yield
    except (MemoryError, RuntimeError, OSError) as err:
        reached = limit_reached(err)
        if reached is None:
            raise
        raise CamlkitError(reached) from None
