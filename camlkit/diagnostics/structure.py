"""Structure figures: numbers that say whether CMA's attention and OCC's correlations hold class
structure, or only look as if they do.

A picture of attention weights or of an omni-correlation matrix (paper §2.2, §2.3, Fig. 1) can
show hot spots in a random network too. These small pure functions measure what the pictures
are meant to show, each against its chance level:

CMA (§2.2, the intra-sample layer E_1; weights ``(b, heads, k, k)``, rows = queries):

* :func:`atrium_attention` — the attention mass that atrium queries put on atrium tokens, beside
  the atrium's share of the tokens (what a query that ignores content would give);
* :func:`normalised_entropy` — the entropy of each row divided by log(number of columns):
  1 = uniform, 0 = one-hot.

OCC (§2.3, Eq. 2; ``sim`` of shape ``(m, n)``: unlabeled voxels x memory prototypes):

* :func:`same_class_mass` — the weight a row puts on prototypes of its own (predicted) class,
  averaged per class, then over classes; chance = the share of its class among the prototypes
  (1/2 for the balanced j-per-class prototypes of two classes);
* :func:`collapse_share` — the share of rows whose top prototype is the most common top
  prototype (1 = every row peaks on the same prototype: a collapse); :func:`collapse_by_class`
  says which rows collapse, and onto a prototype of which class;
* :func:`normalised_entropy` again, over prototypes.

:func:`attention_figures`, :func:`occ_figures` collect them; :func:`read_attention` and
:func:`read_occ` turn them into a sentence chosen from the numbers, :func:`read_draws` the OCC
figures of several draws of prototypes (and whether the reading depends on the draw).

The figures of a network (its attention on real crops, OCC's rows computed with the training
step's own functions) are camlkit.diagnostics.measure's ``network_attention`` and ``network_occ``.
"""

import math

import torch
import torch.nn.functional as F

# ----------------------------------------------------------------------------- shared

def normalised_entropy(rows) -> float:
    """Mean over rows of H(row) / log(n) for rows of a softmax ``(..., n)``: 1 = uniform rows,
    0 = one-hot rows. Zero weights count as 0 log 0 = 0."""
    rows = torch.as_tensor(rows, dtype=torch.float64)
    n = rows.shape[-1]
    if n < 2:
        raise ValueError("normalised entropy needs rows of at least 2 entries")
    h = -(rows * torch.log(rows.clamp_min(1e-300))).sum(-1)  # (...,)
    return float(h.mean() / math.log(n))


# ----------------------------------------------------------------------------- CMA

def token_atrium(label, token_grid) -> torch.Tensor:
    """Which attention tokens are atrium: ``(b, h, w, d)`` labels -> ``(b, k)`` bool.

    A token of stage 4 covers a block of voxels (8x8x8 for the 1/8 grid ``token_grid``); it is
    an atrium token when at least half of its voxels are atrium. Tokens are ordered as CMA
    orders them (``'b c h w d -> b (h w d) c'``, camlkit.cma).
    """
    label = torch.as_tensor(label)
    block = [s // g for s, g in zip(label.shape[1:], token_grid)]
    share = F.avg_pool3d((label == 1).double()[:, None], block, block)  # (b, 1, h', w', d')
    return (share >= 0.5).flatten(1)  # (b, k)


def atrium_attention(attn, atrium) -> tuple[float, float]:
    """(mass, chance) for E_1 weights ``attn`` ``(b, heads, k, k)`` and tokens ``atrium`` ``(b, k)``.

    ``mass``: for every atrium query, the sum of its weights on atrium tokens of the same sample;
    averaged over atrium queries, heads and the samples holding atrium. ``chance``: the atrium's
    share of the tokens, averaged over the same samples — what uniform rows would give.
    Samples without atrium tokens are skipped; ValueError when no sample has any.
    """
    attn = torch.as_tensor(attn, dtype=torch.float64)
    atrium = torch.as_tensor(atrium, dtype=torch.bool)
    masses, chances = [], []
    for weights, tokens in zip(attn, atrium):  # (heads, k, k), (k,)
        if not tokens.any():
            continue
        on_atrium = weights[:, tokens][:, :, tokens].sum(-1)  # (heads, atrium queries)
        masses.append(on_atrium.mean())
        chances.append(tokens.double().mean())
    if not masses:
        raise ValueError("no sample holds an atrium token: the figure is undefined")
    return float(torch.stack(masses).mean()), float(torch.stack(chances).mean())


def attention_figures(attn_intra, atrium, attn_inter=None) -> dict:
    """The CMA figures: atrium mass and its chance, the rows' normalised entropy (E_1, and E_2
    when ``attn_inter`` ``(k, heads, b, b)`` is given)."""
    mass, chance = atrium_attention(attn_intra, atrium)
    figures = {"atrium_mass": mass, "chance": chance, "entropy": normalised_entropy(attn_intra)}
    if attn_inter is not None:
        figures["entropy_inter"] = normalised_entropy(attn_inter)
    return figures


def _versus_chance(value, chance) -> str:
    """Words for how far ``value`` has gone from ``chance`` towards the perfect 1.0."""
    gain = (value - chance) / (1 - chance) if chance < 1 else 0.0
    if gain < -0.02:
        return "below chance"
    if gain < 0.02:
        return "at chance"
    if gain < 0.1:
        return "barely above chance"
    if gain < 0.5:
        return "above chance"
    return "well above chance"


def _spread(entropy) -> str:
    if entropy > 0.98:
        return "rows as flat as uniform ones"
    if entropy > 0.9:
        return "nearly uniform rows"
    if entropy > 0.6:
        return "somewhat peaked rows"
    return "peaked rows"


def read_attention(figures, who="") -> str:
    """A sentence reading :func:`attention_figures` honestly, chosen from the numbers."""
    who = f"{who}: " if who else ""
    return (f"{who}atrium queries put {figures['atrium_mass']:.3f} of their attention on atrium "
            f"tokens vs chance {figures['chance']:.3f} ({_versus_chance(figures['atrium_mass'], figures['chance'])}); "
            f"entropy {figures['entropy']:.3f} ({_spread(figures['entropy'])}).")


# ----------------------------------------------------------------------------- OCC

def same_class_mass(sim, row_class, col_class) -> tuple[float, float]:
    """(mass, chance) for omni-correlation rows ``sim`` ``(m, n)``.

    ``mass``: for each row, the summed weight on prototypes whose class (``col_class``, ``(n,)``)
    equals the row's class (``row_class``, ``(m,)``: f_v's prediction for the unlabeled voxel);
    averaged over the rows of each class, then over the classes present (so a class with more
    rows does not weigh more). ``chance``: the same average of the share of the row's class among
    the prototypes — 0.5 for two classes with j prototypes each, what uniform rows give.
    """
    by_class = same_class_by_class(sim, row_class, col_class)
    col_class = torch.as_tensor(col_class)
    chances = [float((col_class == c).double().mean()) for c in by_class]
    return sum(by_class.values()) / len(by_class), sum(chances) / len(chances)


def same_class_by_class(sim, row_class, col_class) -> dict:
    """Per row class ``c``: the mean weight its rows put on prototypes of class ``c``.

    What :func:`same_class_mass` averages. It tells a row that ignores the classes apart from
    rows that all look at ONE class: both can average to chance, but ``{0: 0.5, 1: 0.5}`` is
    the first and ``{0: 1.0, 1: 0.0}`` (every row on background prototypes) the second."""
    sim = torch.as_tensor(sim, dtype=torch.float64)
    row_class, col_class = torch.as_tensor(row_class), torch.as_tensor(col_class)
    return {int(c): float(sim[row_class == c][:, col_class == c].sum(1).mean())
            for c in torch.unique(row_class)}


def collapse_share(sim) -> float:
    """The share of rows whose top prototype (argmax) is the most common top prototype.

    1/m..1: near 1/n-ish for rows peaking on different prototypes, 1.0 when every row peaks on
    the same one (a collapse onto one prototype)."""
    top = torch.as_tensor(sim).argmax(-1)  # (m,)
    return float(torch.bincount(top).max() / len(top))


def collapse_weight(sim) -> float:
    """The mean weight rows put on the most common top prototype (:func:`collapse_share`'s).

    A bright column needs both: many rows peak on one prototype AND it holds much of their
    weight. Broad rows can share an argmax while that prototype holds only a few per cent."""
    sim = torch.as_tensor(sim, dtype=torch.float64)
    common = torch.bincount(sim.argmax(-1)).argmax()
    return float(sim[:, common].mean())


def collapse_by_class(sim, row_class, col_class) -> dict:
    """Per row class: (share of its rows whose top prototype is that class's most common top
    prototype, the class of that prototype). Says *which* rows collapse and onto what, e.g.
    ``{0: (0.99, 1), 1: (0.68, 1)}``: nearly every background row peaks on one atrium prototype."""
    top = torch.as_tensor(sim).argmax(-1)  # (m,)
    row_class, col_class = torch.as_tensor(row_class), torch.as_tensor(col_class)
    result = {}
    for c in torch.unique(row_class).tolist():
        counts = torch.bincount(top[row_class == c])
        result[c] = (float(counts.max() / counts.sum()), int(col_class[counts.argmax()]))
    return result


def occ_figures(sim, row_class, col_class) -> dict:
    """The OCC figures: same-class mass and its chance, collapse share and the weight on that
    common prototype (``collapse_weight``), normalised entropy, and the same-class mass of each row
    class (``same_class_by_class``, {class: mass})."""
    mass, chance = same_class_mass(sim, row_class, col_class)
    return {"same_class": mass, "chance": chance, "collapse": collapse_share(sim),
            "entropy": normalised_entropy(sim), "collapse_weight": collapse_weight(sim),
            "same_class_by_class": same_class_by_class(sim, row_class, col_class)}


def _peak(figures) -> tuple[str, str]:
    """(kind, words) for how the rows peak: one bright column, broad rows sharing an argmax,
    partly collapsed, or no collapse."""
    collapse = figures["collapse"]
    weight = figures.get("collapse_weight")
    held = "" if weight is None else f", which holds {weight:.0%} of their weight on average"
    if collapse > 0.2 and weight is not None and weight < 0.2:
        return "no bright column", (f"no bright column: {collapse:.0%} of rows share a top "
                                    f"prototype{held} (broad rows)")
    if collapse > 0.5:
        return "collapsed", f"collapsed: {collapse:.0%} of rows peak on the same prototype{held}"
    if collapse > 0.2:
        return "partly collapsed", (f"partly collapsed: {collapse:.0%} of rows peak on the same "
                                    f"prototype{held}")
    return "no collapse", f"no collapse: at most {collapse:.0%} of rows share a top prototype"


def occ_verdict(figures) -> tuple[str, str, str]:
    """The words :func:`read_occ` chooses: (versus chance, peak, spread), e.g. ``("at chance",
    "collapsed", "peaked rows")``; two draws with the same verdict read the same."""
    return (_versus_chance(figures["same_class"], figures["chance"]), _peak(figures)[0],
            _spread(figures["entropy"]))


def read_occ(figures, who="") -> str:
    """A sentence reading :func:`occ_figures` honestly, chosen from the numbers."""
    who = f"{who}: " if who else ""
    return (f"{who}same-class mass {figures['same_class']:.1%} vs chance {figures['chance']:.0%} "
            f"({_versus_chance(figures['same_class'], figures['chance'])}{_one_sided(figures)}); "
            f"{_peak(figures)[1]}; entropy {figures['entropy']:.3f} ({_spread(figures['entropy'])}).")


def read_draws(draws, who="") -> str:
    """Figures over several draws of prototypes (network_occ's ``"draws"``): mean ± std and
    range of each, and whether the verdict (:func:`occ_verdict`) depends on the draw."""
    who = f"{who}: " if who else ""
    values = {"same-class mass": ([d["figures"]["same_class"] for d in draws], ".1%"),
              "collapse": ([d["figures"]["collapse"] for d in draws], ".0%"),
              "entropy": ([d["figures"]["entropy"] for d in draws], ".3f"),
              "l_o": ([d["l_o"] for d in draws], ".4f")}
    parts = []
    for name, (v, form) in values.items():
        v = torch.tensor(v, dtype=torch.float64)
        sd = float(v.std()) if len(v) > 1 else 0.0
        mean, low, high = (_num(x, form) for x in (v.mean(), v.min(), v.max()))
        parts.append(f"{name} {mean} ± {_num(sd, form)} ({low} to {high})")
    verdicts = [occ_verdict(d["figures"]) for d in draws]
    differ = [i for i, words in enumerate(zip(*verdicts)) if len(set(words)) > 1]
    if not differ:
        verdict = f"every draw reads the same ({', '.join(verdicts[0])})"
    else:
        changes = "; ".join(" / ".join(dict.fromkeys(v[i] for v in verdicts)) for i in differ)
        verdict = f"the verdict depends on the draw: {changes}"
    return f"{who}over {len(draws)} draws, " + ", ".join(parts) + f"; {verdict}."


def _num(value, form) -> str:
    """``value`` in format ``form``, never "-0" (a loss of -1e-9 reads 0)."""
    value = float(value)
    return format(0.0 if abs(value) < 1e-6 else value, form)


def _one_sided(figures) -> str:
    """Words for the per-class same-class masses: each class's own figure, and a warning when
    the average hides rows that all look at one class (one class near 1, another near 0)."""
    by_class = figures.get("same_class_by_class")
    if not by_class:
        return ""
    each = ", ".join(f"{_class_name(c)} rows {m:.0%}" for c, m in by_class.items())
    top = max(by_class, key=by_class.get)
    if len(by_class) == 2 and by_class[top] - min(by_class.values()) > 0.5:
        return f"; {each} — nearly every row looks at {_class_name(top)} prototypes"
    return f"; {each}"


def _class_name(c) -> str:
    """The LA task's class names (0 background, 1 atrium), as camlkit.viz.colors names them."""
    return ("background", "atrium")[c] if c in (0, 1) else f"class {c}"
