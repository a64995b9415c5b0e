"""Tables 1 and 2 from run folders: our mean ± std over seeds beside the paper's numbers.

Each run folder written by camlkit.train holds ``config.json`` (method, labeled count, seed and
every other setting) and ``summary.json`` (the final-iteration metrics averaged over the test
cases). Runs that share every setting but the seed are seeds of one row; the row's mean ± std is
taken over the seeds' test means, as the paper does over its three seeds. Runs of one method and
labeled count whose settings differ (another lr, say) get a row each, named by what differs.

``camlkit report RUN_DIR [RUN_DIR ...] [--out report.md]``
"""

import json
import statistics
from pathlib import Path

from camlkit.errors import CamlkitError
from camlkit.paper import METHODS, METRICS, paper_numbers

PERCENT = ("dice", "jaccard")
ABLATION = ("mcnet", "mcnet+occ", "mcnet+cma", "caml")
ABLATION_FLAGS = {"mcnet": ("✓", "", ""), "mcnet+occ": ("✓", "✓", ""),
                  "mcnet+cma": ("✓", "", "✓"), "caml": ("✓", "✓", "✓")}


# settings that do not change what a run computes, or that name the run itself
NOT_SETTINGS = ("seed", "out", "data", "progress", "device", "num_workers", "checkpoint_every",
                "log_every")


def read_run(run_dir) -> dict:
    """{"method", "labeled", "seed", "preset", "settings", "dice", "jaccard", "hd95", "asd"}."""
    run_dir = Path(run_dir)
    config_path, summary_path = run_dir / "config.json", run_dir / "summary.json"
    for path in (config_path, summary_path):
        if not path.is_file():
            raise CamlkitError(f"{run_dir}: not a finished camlkit run ({path.name} is missing)")
    try:
        config, summary = json.loads(config_path.read_text()), json.loads(summary_path.read_text())
        run = {key: config[key] for key in ("method", "labeled", "seed", "preset")}
        run["settings"] = {k: v for k, v in config.items() if k not in NOT_SETTINGS}
        run.update({name: float(summary[name][0]) for name in METRICS})
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise CamlkitError(f"{run_dir}: unreadable config.json/summary.json ({err})") from None
    if run["method"] not in METHODS:
        raise CamlkitError(f"{config_path}: method {run['method']!r} is not one camlkit knows "
                           f"(expected one of {', '.join(METHODS)})")
    return run


def group_runs(runs):
    """{(method, labeled, name): [run, ...]}: the seeds of each setting, in the paper's order.

    ``name`` is the preset, followed by the settings that differ between the groups of the same
    method and labeled count, e.g. "quick, lr=0.1".
    """
    by_setting = {}
    for run in sorted(runs, key=lambda r: (METHODS.index(r["method"]), r["labeled"], r["seed"])):
        key = (run["method"], run["labeled"], json.dumps(run["settings"], sort_keys=True))
        by_setting.setdefault(key, []).append(run)
    groups = {}
    for (method, labeled, _), members in by_setting.items():
        rivals = [m[0]["settings"] for (me, la, _), m in by_setting.items() if (me, la) == (method, labeled)]
        mine = members[0]["settings"]
        differ = sorted(k for k in mine if any(r.get(k) != mine[k] for r in rivals))
        name = ", ".join([members[0]["preset"]] + [f"{k}={mine[k]}" for k in differ if k != "preset"])
        groups[(method, labeled, name)] = members
    return groups


def row_cells(runs):
    """'mean ± std' over seeds for each metric (Dice, Jaccard in %)."""
    cells = []
    for name in METRICS:
        factor = 100.0 if name in PERCENT else 1.0
        values = [r[name] * factor for r in runs]
        std = statistics.stdev(values) if len(values) > 1 else 0.0
        cells.append(f"{statistics.fmean(values):.2f} ± {std:.2f}")
    return cells


def paper_cells(method, labeled):
    paper = paper_numbers(method, labeled)
    if paper is None:
        return ["–"] * len(METRICS)
    return [f"{paper[name]:.2f} ± {paper[name + '_std']:.2f}" for name in METRICS]


def _rows(groups, methods=METHODS):
    """(method, labeled, name, runs, last): the groups in table order; ``last`` marks the final
    group of its (method, labeled), after which the paper's row goes."""
    items = sorted(((k, v) for k, v in groups.items() if k[0] in methods),
                   key=lambda kv: (kv[0][1], METHODS.index(kv[0][0]), kv[0][2]))
    for i, ((method, labeled, name), runs) in enumerate(items):
        following = items[i + 1][0][:2] if i + 1 < len(items) else None
        yield method, labeled, name, runs, following != (method, labeled)


HEADER = "Dice (%) | Jaccard (%) | 95HD (voxel) | ASD (voxel)"


def table1(groups) -> str:
    """Table 1 style: one row per (labeled, method, setting), then the paper's."""
    lines = [f"| labeled | method | seeds | {HEADER} |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for method, labeled, name, runs, last in _rows(groups):
        lines.append(f"| {labeled} | {method} (camlkit, {name}) | {len(runs)} | "
                     + " | ".join(row_cells(runs)) + " |")
        if last:
            lines.append(f"| {labeled} | {method} (paper) | 3 | "
                         + " | ".join(paper_cells(method, labeled)) + " |")
    return "\n".join(lines)


def table2(groups) -> str:
    """Table 2 style: the ablation rows (baseline, +OCC, +CMA, both) that the runs cover."""
    lines = [f"| labeled | baseline | OCC | CMA | source | {HEADER} |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method, labeled, name, runs, last in _rows(groups, ABLATION):
        flags = " | ".join(ABLATION_FLAGS[method])
        lines.append(f"| {labeled} | {flags} | camlkit ({name}; {len(runs)} seeds) | "
                     + " | ".join(row_cells(runs)) + " |")
        if last:
            lines.append(f"| {labeled} | {flags} | paper | " + " | ".join(paper_cells(method, labeled)) + " |")
    return "\n".join(lines)


def report(run_dirs) -> str:
    """The markdown report for a list of run folders."""
    if not run_dirs:
        raise CamlkitError("no run folders given")
    groups = group_runs([read_run(d) for d in run_dirs])
    parts = ["## Table 1 — LA, final iteration (mean ± std over seeds)", "", table1(groups)]
    if any(method in ABLATION for method, _, _ in groups):
        parts += ["", "## Table 2 — ablation", "", table2(groups)]
    return "\n".join(parts) + "\n"


def add_cli(subparsers):
    p = subparsers.add_parser("report", help="Table 1 / Table 2 markdown from run folders")
    p.add_argument("runs", nargs="+", help="run folders written by camlkit train")
    p.add_argument("--out", help="write the markdown here (default: print it)")
    p.set_defaults(func=report_command)


def report_command(args):
    text = report(args.runs)
    if args.out:
        from camlkit.files import write_text

        write_text(text, args.out)
    else:
        print(text, end="")
    return 0
