"""The end of a run: f_v of the final iteration evaluated on test.list, as the paper reports it.

Table 1 reports the model of the final iteration (paper §3, "Quantitative Evaluation and
Comparison": best-during-training selection would overfit the test set), through the sliding-window protocol of camlkit.evaluate. The run folder gets ``cases.csv`` (one row per case), ``summary.md`` (the mean
± std over cases beside the paper's row) and ``summary.json`` (what camlkit report reads).
Running out of memory or past ``ulimit -f`` here is one line saying that the training ended,
where its weights are and how to evaluate them again (camlkit.evaluate.evaluation_failed_message).
"""

import json
from contextlib import contextmanager

from camlkit.errors import CamlkitError
from camlkit.evaluate import evaluate_cases, format_table, summarize, write_csv
from camlkit.files import write_text
from camlkit.limits import limit_reached


def evaluate_run(cfg, f_v, run_dir):
    """Evaluate f_v on the run's test cases and write cases.csv, summary.md and summary.json."""
    from camlkit.data import load_split

    cases = list(load_split(cfg.data, cfg.labeled).test)[: cfg.eval_cases]
    f_v.eval()
    with limits_said():
        rows = evaluate_cases(f_v, cases, cfg.patch_size, cfg.eval_stride, scale=cfg.scale,
                              progress=cfg.progress, zscore_case=cfg.zscore_case)
        summary = summarize(rows)
        write_csv(rows, run_dir / "cases.csv")
        table = format_table(summary, cfg.method, cfg.labeled)
        write_text(table + "\n", run_dir / "summary.md")
        write_text(json.dumps(summary, indent=2), run_dir / "summary.json")
    if cfg.progress:
        print(table)
    return summary


@contextmanager
def limits_said():
    """Out of memory or past ``ulimit -f`` during the evaluation: a CamlkitError, which the run
    reports with what it kept (camlkit.evaluate.evaluation_failed_message)."""
    try:
        yield
    except (MemoryError, RuntimeError, OSError) as err:
        reached = limit_reached(err)
        if reached is None:
            raise
        raise CamlkitError(reached) from None
