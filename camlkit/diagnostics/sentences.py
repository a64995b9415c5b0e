"""The sentences a report prints under its tables, each computed from the table's numbers.

Which method beats which and by how much (Table 1), whether the paper's ordering CAML > MC-Net >
labeled-only V-Net holds, what each module adds to MC-Net (Table 2), and an evaluated file's
Dice beside the paper's row. camlkit.evaluation.report builds the tables and calls these.

Under an omni-correlation matrix (paper §2.3, Eq. 2; notebook 5): :func:`occ_row_sentences`, one
sentence per class of rows — where that class's weight goes and how much of it — since a matrix
can hold a bright column for atrium rows and broad background rows at once.
"""

import math
import statistics

import torch

from camlkit.paper import PERCENT, paper_numbers

ABLATION = ("mcnet", "mcnet+occ", "mcnet+cma", "caml")


NAMES = {"supervised": "labeled-only V-Net", "mcnet": "MC-Net", "mcnet+occ": "MC-Net + OCC",
         "mcnet+cma": "MC-Net + CMA", "caml": "CAML"}


def metric_values(runs, name):
    """One metric of each run, Dice and Jaccard in %."""
    return [r[name] * (100.0 if name in PERCENT else 1.0) for r in runs]


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


# ----------------------------------------------------------------------------- OCC rows

CLASS_NAMES = ("background", "atrium")  # the LA task's classes, as camlkit.viz.colors names them
BRIGHT = 0.5  # a prototype holding this much of a row class's weight is a bright column
PEAKED = 0.5  # rows whose largest weight averages this much are peaked (one prototype each)
AT_CHANCE = 0.1  # own-class mass within this of its chance reads "as uniform rows would"


def _name(c) -> str:
    return CLASS_NAMES[c] if c in (0, 1) else f"class {c}"


def occ_row_class(sim, row_class, col_class, c) -> dict:
    """The figures of the rows of class ``c`` of an omni-correlation matrix ``sim`` ``(m, n)``
    (rows: unlabeled voxels with f_v's predicted class ``row_class`` ``(m,)``; columns: memory
    prototypes of class ``col_class`` ``(n,)``): how many rows; their mean weight on prototypes
    of their own class and its chance (that class's share of the prototypes); the prototype they
    read most (``top``, its class and its mean weight over these rows: a bright column when
    large); their mean largest weight (``peak``); their normalised entropy."""
    sim = torch.as_tensor(sim, dtype=torch.float64)
    row_class, col_class = torch.as_tensor(row_class), torch.as_tensor(col_class)
    rows = sim[row_class == c]  # (m_c, n)
    column = rows.mean(0)  # (n,): each prototype's mean weight over these rows
    top = int(column.argmax())
    entropy = -(rows * rows.clamp_min(1e-300).log()).sum(1).mean() / math.log(sim.shape[1])
    return {"rows": len(rows), "own": float(rows[:, col_class == c].sum(1).mean()),
            "chance": float((col_class == c).double().mean()), "top": top,
            "top_class": int(col_class[top]), "top_weight": float(column[top]),
            "peak": float(rows.max(1).values.mean()), "entropy": float(entropy),
            "prototypes": sim.shape[1]}


def _side(f) -> str:
    """Where a row class's weight goes, in one word: "own class", "other class", "class-blind"."""
    if f["own"] > f["chance"] + AT_CHANCE:
        return "own class"
    return "other class" if f["own"] < f["chance"] - AT_CHANCE else "class-blind"


def _shape(f) -> str:
    """How a row class's rows peak: "a bright column", "peaked rows", "broad rows"."""
    if f["top_weight"] >= BRIGHT:
        return "a bright column"
    return "peaked rows" if f["peak"] >= PEAKED else "broad rows"


def _where(f, c) -> str:
    """Words for where the weight of one row class goes, chosen from occ_row_class's figures."""
    own, other = _name(c), _name(1 - c) if c in (0, 1) else "other"
    side = {"own class": f"{f['own']:.0%} of their weight on {own} prototypes (chance {f['chance']:.0%}): "
                         "their own class",
            "other class": f"{1 - f['own']:.0%} of their weight on {other} prototypes (chance "
                           f"{1 - f['chance']:.0%}): the other class",
            "class-blind": f"{f['own']:.0%} of their weight on {own} prototypes, as rows blind to the "
                           f"class would put (chance {f['chance']:.0%})"}[_side(f)]
    top = f"prototype {f['top']} ({_name(f['top_class'])})"
    shape = {"a bright column": f"a bright column: {top} takes {f['top_weight']:.0%} of their weight",
             "peaked rows": f"peaked rows, each on a prototype of its own (largest weight {f['peak']:.0%} "
                            f"on average; no prototype takes more than {f['top_weight']:.0%} of them)",
             "broad rows": f"broad rows: their largest weight is {f['peak']:.0%} on average (a uniform "
                           f"row: {1 / f['prototypes']:.1%}), {top} takes the most, {f['top_weight']:.0%}"}[_shape(f)]
    return f"{side}; {shape}; entropy {f['entropy']:.3f}"


def occ_row_classes(sim, row_class, col_class) -> dict:
    """{class: :func:`occ_row_class`} for every class of rows present."""
    return {c: occ_row_class(sim, row_class, col_class, c)
            for c in torch.unique(torch.as_tensor(row_class)).tolist()}


def _std(values) -> float:
    return float(values.std()) if len(values) > 1 else 0.0


def occ_draw_sentences(draws, who="") -> list:
    """Per class of rows, over several draws of prototypes (each draw's ``"by_class"``: its
    :func:`occ_row_classes`): own-class mass and the most-read prototype's weight as mean ± std,
    and whether where the weight goes and how the rows peak stay the same from draw to draw."""
    who = f"{who}: " if who else ""
    sentences = []
    for c in sorted({c for d in draws for c in d["by_class"]}):
        figures = [d["by_class"][c] for d in draws if c in d["by_class"]]
        own = torch.tensor([f["own"] for f in figures], dtype=torch.float64)
        top = torch.tensor([f["top_weight"] for f in figures], dtype=torch.float64)
        readings = list(dict.fromkeys(f"{_side(f)}, {_shape(f)}" for f in figures))
        said = (f"every draw reads the same ({readings[0]})" if len(readings) == 1 else
                f"the reading depends on the draw: {' / '.join(readings)}")
        sentences.append(f"{who}{_name(c)} rows over {len(figures)} draws: own-class mass "
                         f"{own.mean():.0%} ± {_std(own):.0%}, the most-read prototype takes "
                         f"{top.mean():.0%} ± {_std(top):.0%}; {said}.")
    return sentences


def occ_row_sentences(sim, row_class, col_class, who="") -> list:
    """One sentence per class of rows of an omni-correlation matrix, from its own numbers
    (:func:`occ_row_class`): where that class's weight goes (own class, other class, or blind
    to the class) and how (a bright column, peaked rows, broad rows)."""
    who = f"{who}: " if who else ""
    return [f"{who}{_name(c)} rows ({f['rows']:,}): {_where(f, c)}."
            for c, f in occ_row_classes(sim, row_class, col_class).items()]
