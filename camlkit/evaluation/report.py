"""Tables 1 and 2 from run folders: our mean ± std over seeds beside the paper's numbers.

Each run folder written by camlkit.train holds ``config.json`` (method, labeled count, seed and
every other setting) and ``summary.json`` (the final-iteration metrics averaged over the test
cases); camlkit.evaluation.results reads them. Runs that share every setting but the seed are seeds of one
row; the row's mean ± std is taken over the seeds' test means, as the paper does over its three
seeds. Runs of one method and labeled count whose settings differ (another lr, say) get a row
each, named by what differs. A folder given twice, or a copy of one, is counted once (its
fingerprint, camlkit.evaluation.results) and the report says so.

An evaluation folder of ``camlkit evaluate`` (the authors' weights: ``--weights 16``) is a row
of its own beside the paper's, "authors' weights, evaluated by camlkit", naming the file, its
git blob id and whether it is the pinned file.

Each table names the run folders and seeds it averages, shows "±" only over two or more seeds, and
is followed by sentences computed from its numbers (camlkit.diagnostics.sentences): what CAML gains
or loses against each other method (Table 1) and what each module adds to the MC-Net baseline (Table
2).

``camlkit report RUN_DIR [RUN_DIR ...] [--out report.md]``
"""

import json
import statistics
from pathlib import Path

from camlkit.diagnostics.sentences import (
    ABLATION,
    NAMES,
    evaluation_sentences,
    metric_values,
    ordering_sentences,
    table1_sentences,
    table2_sentences,
)
from camlkit.errors import CamlkitError
from camlkit.evaluation.results import drop_copies, read_result, read_run
from camlkit.files import write_text
from camlkit.paper import METHODS, METRICS, paper_numbers
from camlkit.runtime.weights import COMMIT

ABLATION_FLAGS = {"mcnet": ("✓", "", ""), "mcnet+occ": ("✓", "✓", ""),
                  "mcnet+cma": ("✓", "", "✓"), "caml": ("✓", "✓", "✓")}


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


def mean_std(values, digits=2) -> str:
    """'mean ± std' over two or more values; the value alone for one."""
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def row_cells(runs):
    """Each metric over the seeds (Dice, Jaccard in %): 'mean ± std', or the value of one seed."""
    return [mean_std(metric_values(runs, name)) for name in METRICS]


def seeds_text(runs) -> str:
    """'seed 3407' or 'seeds 1, 2, 3'."""
    seeds = ", ".join(str(r["seed"]) for r in runs)
    return f"seed {seeds}" if len(runs) == 1 else f"seeds {seeds}"


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


TEST_CASES = 20  # the LA test set (test.list of the standard split)
HEADER = "Dice (%) | Jaccard (%) | 95HD (voxel) | ASD (voxel)"


def evaluation_name(ev) -> str:
    """How an evaluation folder's row is named: whose file, which bytes, how many cases."""
    split = "validation" if ev.get("split") == "val" else "test"
    cases = f"{ev['cases']} {split} case{'s' if ev['cases'] != 1 else ''}"
    if not ev["released"]:
        return f"checkpoint {ev['file']}, evaluated by camlkit; {cases}"
    which = "the pinned file" if ev["pinned"] else "not a pinned file"
    return (f"authors' weights, evaluated by camlkit: {ev['file']}, git blob {ev['blob'][:12]}, "
            f"{which}; {cases}")


def table1(groups, evaluations=()) -> str:
    """Table 1 style: per (labeled, method) the camlkit runs (one row per setting), the
    evaluations of files (the authors' weights), then the paper's row."""
    lines = [f"| labeled | method | seeds | {HEADER} |", "| --- | --- | --- | --- | --- | --- | --- |"]
    keys = {(labeled, METHODS.index(method)) for method, labeled, _ in groups}
    keys |= {(ev["labeled"], METHODS.index(ev["method"])) for ev in evaluations}
    for labeled, index in sorted(keys):
        method = METHODS[index]
        for (me, la, name), runs in sorted(groups.items(), key=lambda kv: kv[0][2]):
            if (me, la) == (method, labeled):
                lines.append(f"| {labeled} | {method} (camlkit, {name}) | "
                             f"{', '.join(str(r['seed']) for r in runs)} | " + " | ".join(row_cells(runs)) + " |")
        for ev in evaluations:
            if (ev["method"], ev["labeled"]) == (method, labeled):
                seed = "3407 (authors')" if ev["pinned"] else "–"
                lines.append(f"| {labeled} | {method} ({evaluation_name(ev)}) | {seed} | "
                             + " | ".join(row_cells([ev])) + " |")
        lines.append(f"| {labeled} | {method} (paper) | 3 seeds | " + " | ".join(paper_cells(method, labeled)) + " |")
    return "\n".join(lines)


def table2(groups) -> str:
    """Table 2 style: the ablation rows (baseline, +OCC, +CMA, both) that the runs cover."""
    lines = [f"| labeled | baseline | OCC | CMA | source | {HEADER} |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for method, labeled, name, runs, last in _rows(groups, ABLATION):
        flags = " | ".join(ABLATION_FLAGS[method])
        lines.append(f"| {labeled} | {flags} | camlkit ({name}; {seeds_text(runs)}) | "
                     + " | ".join(row_cells(runs)) + " |")
        if last:
            lines.append(f"| {labeled} | {flags} | paper | " + " | ".join(paper_cells(method, labeled)) + " |")
    return "\n".join(lines)


def _scored(run) -> str:
    """' (scored on 2 of the 20 test cases)' for a run evaluated on part of the test set."""
    cases = run.get("cases")
    if cases is None or cases >= TEST_CASES or run.get("split") == "val":
        return ""
    return f" (scored on {cases} of the {TEST_CASES} test cases)"


def runs_text(groups, methods=METHODS, evaluations=()) -> str:
    """Which run folders each row averages, and which file each evaluation row measured."""
    lines = []
    for method, labeled, name, runs, _ in _rows(groups, methods):
        folders = ", ".join(f"`{r['dir']}`" + _scored(r) for r in runs)
        lines.append(f"- {labeled} labeled, {NAMES[method]} ({name}): {folders}")
    for ev in evaluations:
        whose = "the authors' network" if ev["released"] else "a camlkit checkpoint"
        pinned = ("" if not ev["released"] else f", the file pinned at Herschel555/CAML@{COMMIT[:8]}"
                  if ev["pinned"] else ", not one of the files pinned by camlkit.runtime.weights")
        lines.append(f"- {ev['labeled']} labeled, {whose} ({NAMES[ev['method']]}): `{ev['dir']}` "
                     f"evaluated {ev['file']} (git blob {ev['blob']}{pinned})")
    return "\n".join(lines)


def report(run_dirs) -> str:
    """The markdown report for a list of run folders and evaluation folders."""
    if not run_dirs:
        raise CamlkitError("no run folders given")
    results, notes = drop_copies([read_result(d) for d in run_dirs])
    validation = [r for r in results if r["split"] == "val"]
    results = [r for r in results if r["split"] != "val"]
    if not results:
        return validation_section(validation)
    evaluations = [r for r in results if r["kind"] == "evaluation" and r["method"] and r["labeled"] is not None]
    notes += [f"`{r['path']}`: an evaluation without a method and labeled count (camlkit evaluate "
              f"--method M --labeled N names them), not in the tables." for r in results
              if r["kind"] == "evaluation" and r not in evaluations]
    groups = group_runs([r for r in results if r["kind"] == "run"])
    parts = [*[f"Note: {n}" for n in notes], *([""] if notes else []),
             "## Table 1 — LA, final iteration (camlkit: the seeds listed; paper: mean ± std "
             "over 3 seeds)", "", table1(groups, evaluations), "", "Runs:", "",
             runs_text(groups, evaluations=evaluations), "",
             *[f"- {s}" for s in table1_sentences(groups) + ordering_sentences(groups)
               + evaluation_sentences(evaluations)]]
    if any(method in ABLATION for method, _, _ in groups):
        parts += ["", "## Table 2 — ablation", "", table2(groups), "", "Runs:", "",
                  runs_text(groups, ABLATION), "", *[f"- {s}" for s in table2_sentences(groups)]]
    if validation:
        parts += ["", validation_section(validation).rstrip("\n")]
    return "\n".join(parts) + "\n"


def validation_section(results) -> str:
    """Runs scored on their validation cases (``eval_split="val"``): a table of their own, never
    beside the paper's test-set numbers."""
    lines = ["## Validation cases (the last cases of train.list, never trained on; not the test "
             "set, so no paper row)", "", f"| labeled | method | seeds | {HEADER} |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    runs = [r for r in results if r["kind"] == "run"]
    for (method, labeled, name), members in sorted(group_runs(runs).items(), key=lambda kv: kv[0][2]):
        lines.append(f"| {labeled} | {method} ({name}) | {', '.join(str(r['seed']) for r in members)} | "
                     + " | ".join(row_cells(members)) + " |")
    for ev in (r for r in results if r["kind"] == "evaluation"):
        lines.append(f"| {ev['labeled']} | {ev['method']} ({evaluation_name(ev)}) | – | "
                     + " | ".join(row_cells([ev])) + " |")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- one run's cases

def pick_run(run_dirs, prefer="caml"):
    """A dropdown of run folders (ipywidgets), the first ``prefer`` run selected."""
    import ipywidgets as widgets

    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise CamlkitError("no run folders to choose from")
    methods = [read_run(d)["method"] for d in run_dirs]
    default = run_dirs[methods.index(prefer)] if prefer in methods else run_dirs[0]
    return widgets.Dropdown(options=[(d.name, d) for d in run_dirs], value=default,
                            description="run", layout=widgets.Layout(width="max-content"))


def add_cli(subparsers):
    p = subparsers.add_parser("report", help="Table 1 / Table 2 markdown from run folders")
    p.add_argument("runs", nargs="+", help="run folders written by camlkit train, and evaluation folders "
                                           "of camlkit evaluate (e.g. of the authors' weights)")
    p.add_argument("--out", help="write the markdown here (default: print it)")
    p.set_defaults(func=report_command)


def report_command(args):
    text = report(args.runs)
    if args.out:
        write_text(text, args.out)
    else:
        print(text, end="")
    return 0
