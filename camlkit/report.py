"""Tables 1 and 2 from run folders: our mean ± std over seeds beside the paper's numbers.

Each run folder written by camlkit.train holds ``config.json`` (method, labeled count, seed and
every other setting) and ``summary.json`` (the final-iteration metrics averaged over the test
cases); camlkit.results reads them. Runs that share every setting but the seed are seeds of one
row; the row's mean ± std is taken over the seeds' test means, as the paper does over its three
seeds. Runs of one method and labeled count whose settings differ (another lr, say) get a row
each, named by what differs. A folder given twice, or a copy of one, is counted once (its
fingerprint, camlkit.results) and the report says so.

An evaluation folder of ``camlkit evaluate`` (the authors' weights: ``--weights 16``) is a row
of its own beside the paper's, "authors' weights, evaluated by camlkit", naming the file, its
git blob id and whether it is the pinned file.

Each table names the run folders and seeds it averages, shows "±" only over two or more seeds,
and is followed by sentences computed from its numbers: what CAML gains or loses against each
other method (Table 1) and what each module adds to the MC-Net baseline (Table 2).

``camlkit report RUN_DIR [RUN_DIR ...] [--out report.md]``
"""

import json
import statistics
from pathlib import Path

from camlkit.errors import CamlkitError
from camlkit.paper import METHODS, METRICS, paper_numbers
from camlkit.weights import COMMIT
from camlkit.results import PERCENT, cases_table, drop_copies, read_cases, read_result, read_run  # noqa: F401
ABLATION = ("mcnet", "mcnet+occ", "mcnet+cma", "caml")
NAMES = {"supervised": "labeled-only V-Net", "mcnet": "MC-Net", "mcnet+occ": "MC-Net + OCC",
         "mcnet+cma": "MC-Net + CMA", "caml": "CAML"}
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


def metric_values(runs, name):
    """One metric of each run, Dice and Jaccard in %."""
    return [r[name] * (100.0 if name in PERCENT else 1.0) for r in runs]


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


def runs_text(groups, methods=METHODS, evaluations=()) -> str:
    """Which run folders each row averages, and which file each evaluation row measured."""
    lines = []
    for method, labeled, name, runs, _ in _rows(groups, methods):
        folders = ", ".join(f"`{r['dir']}`" for r in runs)
        lines.append(f"- {labeled} labeled, {NAMES[method]} ({name}): {folders}")
    for ev in evaluations:
        whose = "the authors' network" if ev["released"] else "a camlkit checkpoint"
        pinned = ("" if not ev["released"] else f", the file pinned at Herschel555/CAML@{COMMIT[:8]}"
                  if ev["pinned"] else ", not one of the files pinned by camlkit.weights")
        lines.append(f"- {ev['labeled']} labeled, {whose} ({NAMES[ev['method']]}): `{ev['dir']}` "
                     f"evaluated {ev['file']} (git blob {ev['blob']}{pinned})")
    return "\n".join(lines)


def evaluation_sentences(evaluations) -> list:
    """Per evaluated file: its Dice beside the paper's row for the same method and labeled count."""
    sentences = []
    for ev in evaluations:
        paper = paper_numbers(ev["method"], ev["labeled"])
        said = (f"the paper's {NAMES[ev['method']]} row (mean over 3 seeds) {paper['dice']:.2f} ± "
                f"{paper['dice_std']:.2f} %" if paper else "the paper has no row for it")
        whose = "the authors' network" if ev["released"] else f"the checkpoint {ev['file']}"
        sentences.append(f"{ev['labeled']} labeled: {whose}, evaluated by camlkit on {ev['cases']} test "
                         f"case{'s' if ev['cases'] != 1 else ''}, reaches Dice {100 * ev['dice']:.2f} %; {said}.")
    return sentences


def _dice(runs):
    return statistics.fmean(metric_values(runs, "dice"))


def _seeds(n):
    return "1 seed" if n == 1 else f"{n} seeds"


def _over(runs_a, runs_b) -> str:
    """'on this seed', 'on the mean over 3 seeds each', ... for a comparison of two groups."""
    a, b = len(runs_a), len(runs_b)
    if a == b == 1:
        return "on this seed" if runs_a[0]["seed"] == runs_b[0]["seed"] else "on one seed each"
    if a == b:
        return f"on the mean over {a} seeds each"
    return f"on {_seeds(a)} against {_seeds(b)}"


def compare(name_a, runs_a, name_b, runs_b) -> str:
    """One sentence: which of two groups has the higher mean Dice, and by how much."""
    gap = _dice(runs_a) - _dice(runs_b)
    if abs(gap) < 0.005:
        return f"{name_a} and {name_b} reach the same Dice ({_dice(runs_a):.2f} %) {_over(runs_a, runs_b)}."
    win, lose = (name_a, name_b) if gap > 0 else (name_b, name_a)
    return (f"{win} beats {lose} by {abs(gap):.2f} Dice {_over(runs_a, runs_b)} "
            f"({name_a} {_dice(runs_a):.2f} %, {name_b} {_dice(runs_b):.2f} %).")


def table1_sentences(groups) -> list:
    """Per labeled count: CAML against every other method run at that count."""
    sentences = []
    for labeled in sorted({k[1] for k in groups}):
        here = [(k, v) for k, v in groups.items() if k[1] == labeled]
        camls = [(k, v) for k, v in here if k[0] == "caml"]
        others = [(k, v) for k, v in here if k[0] != "caml"]
        if not camls:
            sentences.append(f"{labeled} labeled: no CAML run to compare with.")
        elif not others:
            sentences.append(f"{labeled} labeled: only CAML was run; the baselines (labeled-only "
                             "V-Net, MC-Net: notebooks 2 and 3) would show what it adds.")
        for (_, _, name_c), caml in camls:
            for (method, _, name), runs in others:
                sentences.append(f"{labeled} labeled: " + compare(
                    f"CAML ({name_c})", caml, f"{NAMES[method]} ({name})", runs))
    return sentences


def ordering_sentences(groups) -> list:
    """Per labeled count where all three were run: does the paper's ordering CAML > MC-Net >
    labeled-only V-Net hold on the mean Dice, and where does it break."""
    order = ("caml", "mcnet", "supervised")
    sentences = []
    for labeled in sorted({k[1] for k in groups}):
        here = {}
        for (method, lab, _), runs in groups.items():  # one group per method, or nothing to say
            if lab == labeled and method in order:
                here[method] = None if method in here else runs
        if any(here.get(m) is None for m in order):
            continue
        dice = {m: _dice(here[m]) for m in order}
        means = ", ".join(f"{NAMES[m]} {dice[m]:.2f} %" for m in order)
        broken = [f"{NAMES[a]} does not beat {NAMES[b]}" for a, b in zip(order, order[1:])
                  if dice[a] <= dice[b]]
        verdict = "holds" if not broken else "does not hold: " + " and ".join(broken)
        sentences.append(f"{labeled} labeled: the paper's ordering CAML > MC-Net > labeled-only "
                         f"V-Net {verdict} (mean Dice {means}).")
    return sentences


def table2_sentences(groups) -> list:
    """Per labeled count: what OCC, CMA and both add to the MC-Net baseline."""
    sentences = []
    for labeled in sorted({k[1] for k in groups}):
        here = {k[0]: v for k, v in groups.items() if k[1] == labeled and k[0] in ABLATION}
        if "mcnet" not in here:
            sentences.append(f"{labeled} labeled: no MC-Net baseline run (notebook 3), so no "
                             "module's share can be measured.")
            continue
        base = here["mcnet"]
        for method, what in (("mcnet+occ", "OCC"), ("mcnet+cma", "CMA"), ("caml", "CMA + OCC (CAML)")):
            if method in here:
                gap = _dice(here[method]) - _dice(base)
                verb = "raises" if gap >= 0.005 else "lowers" if gap <= -0.005 else "leaves"
                amount = f" by {abs(gap):.2f} to" if verb != "leaves" else " unchanged at"
                sentences.append(f"{labeled} labeled: adding {what} to MC-Net {verb} Dice{amount} "
                                 f"{_dice(here[method]):.2f} % {_over(here[method], base)} "
                                 f"(MC-Net {_dice(base):.2f} %; the paper: "
                                 f"{_paper_gap(method, labeled)}).")
    return sentences


def _paper_gap(method, labeled):
    ours, base = paper_numbers(method, labeled), paper_numbers("mcnet", labeled)
    if ours is None or base is None:
        return "no row"
    return f"{ours['dice'] - base['dice']:+.2f}"


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
        from camlkit.files import write_text

        write_text(text, args.out)
    else:
        print(text, end="")
    return 0
