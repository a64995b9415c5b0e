"""OCC's similarity: the released dot product vs the paper's cosine, trained and measured.

The released code compares embeddings by dot product / t (t = 0.1); the paper (§2.3, Eq. 2)
writes cosine similarity. With dot products an embedding of large norm can dominate every row
of the omni-correlation matrix (a collapse onto one prototype); cosine bounds every logit to
[-1/t, 1/t]. This study trains CAML with each similarity for several seeds, evaluates Dice at
the final iteration (camlkit.train), and measures OCC's structure on a fixed set of crops
(camlkit.diagnostics.measure.network_occ, which calls the training step's own OCC code): the memory bank
filled from the first 4 labeled training cases, the rows from the first ``--crops`` test cases,
one seeded crop each, prepared as the network was trained (camlkit.runtime.trained.matched_crops). Each
network is measured with the Eq. 1 step it was trained with (its stored StepConfig: similarity,
temperature, heads_on, bank_fa_rows, occ_log; j capped at what the small bank holds).

    python -m bench.occ_study --seeds 3407 1 --device cuda --data data/LA --out runs/occ_study
    python -m bench.occ_study --preset smoke --seeds 1 --data data/LA --out /tmp/occ_smoke

Writes ``OUT/<similarity>-seed<seed>/`` (run folders; a finished one is reused, a cut one
resumed), ``OUT/occ_study.csv`` (one row per run) and ``OUT/occ_study.md`` (that table plus
mean ± std per similarity). A quick-preset run took about 13 minutes on the project's 2-core
CPU (measured 2026-11, one thread, the machine shared with other work).
"""

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

SIMILARITIES = ("dot", "cosine")
FIELDS = ("similarity", "seed", "iterations", "dice", "same_class", "chance", "collapse",
          "entropy", "l_o_measured", "l_o_last_logged", "run", "note")


def configure(preset, similarity, iterations=None, **fields):
    """A TrainConfig of ``preset`` (camlkit.config) whose OCC compares by ``similarity``
    (``step.similarity``); ``iterations`` shortens the run, the warm-up (``step.warmup``)
    shrinking in proportion. ``fields``: more overrides by config path."""
    from camlkit.config import make_config

    base = make_config(preset)
    if iterations is not None:
        fields["iterations"] = iterations
        fields["step.warmup"] = round(base.step.warmup * iterations / base.iterations)
    return make_config(preset, method="caml", **{"step.similarity": similarity}, **fields)


def train_one(args, similarity, seed) -> Path:
    """Train (or reuse, or resume) one run; returns its folder."""
    from camlkit.train import train

    run_dir = Path(args.out) / f"{similarity}-seed{seed}"
    cfg = configure(args.preset, similarity, args.iterations, seed=seed, data=str(args.data),
                    device=args.device, out=str(run_dir), progress=args.progress)
    if (run_dir / "summary.json").is_file() and (run_dir / "model_final.pth").is_file():
        return run_dir
    train(cfg, resume=(run_dir / "checkpoints" / "last.pth").is_file())
    return run_dir


def fixed_crops(data, settings, n_crops):
    """The measurement's inputs for a network: (4 labeled training crops, ``n_crops`` test
    crops), seeded, prepared as that network was trained."""
    from camlkit.data import load_split
    from camlkit.runtime.trained import matched_crops

    split = load_split(data, 4)
    labeled = matched_crops(split.labeled[:4], settings, seed=0)
    test = matched_crops(split.test[:n_crops], settings, seed=1)
    return labeled, test["image"]


def measure(run_dir, data, n_crops) -> dict:
    """Dice from the run's evaluation, OCC's structure figures on the fixed crops, and l_o."""
    from camlkit.diagnostics import measure
    from camlkit.lab.runs import FINAL
    from camlkit.runtime.runlog import read_log
    from camlkit.runtime.trained import load_trained

    net, settings = load_trained(run_dir / FINAL)
    labeled, unlabeled = fixed_crops(data, settings, n_crops)
    summary = json.loads((run_dir / "summary.json").read_text())
    rows = read_log(run_dir / "log.csv")
    result = {"similarity": settings.step.similarity, "iterations": settings.iterations,
              "dice": summary["dice"][0], "l_o_last_logged": rows[-1]["l_o"] if rows else None,
              "run": str(run_dir), "note": ""}
    try:
        measured = measure.network_occ(net, labeled, unlabeled, settings.step)
    except ValueError as err:  # e.g. a network that predicts one class: OCC is undefined
        return {**result, **dict.fromkeys(("same_class", "chance", "collapse", "entropy",
                                           "l_o_measured")), "note": f"undefined: {err}"}
    return {**result, **measured["figures"], "l_o_measured": measured["l_o"]}


def table(rows) -> str:
    """Markdown: one line per run, then mean ± std per similarity."""
    def cell(value):
        if value is None:
            return "–"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(FIELDS) + " |", "|" + " --- |" * len(FIELDS)]
    lines += ["| " + " | ".join(cell(r[f]) for f in FIELDS) + " |" for r in rows]
    lines += ["", "| similarity | runs | Dice | same-class mass (chance) | collapse | entropy |",
              "| --- | --- | --- | --- | --- | --- |"]
    for similarity in SIMILARITIES:
        group = [r for r in rows if r["similarity"] == similarity]
        if not group:
            continue

        def stat(key, group=group):
            values = [r[key] for r in group if r[key] is not None]
            if not values:
                return "undefined"
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):.3f} ± {spread:.3f}"

        chances = [r["chance"] for r in group if r["chance"] is not None]
        chance = f" ({chances[0]:.2f})" if chances else ""
        lines.append(f"| {similarity} | {len(group)} | {stat('dice')} | {stat('same_class')}"
                     f"{chance} | {stat('collapse')} | {stat('entropy')} |")
    return "\n".join(lines) + "\n"


def write_results(rows, out: Path):
    import io

    from camlkit.files import write_text

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, FIELDS)
    writer.writeheader()
    writer.writerows({f: ("" if r[f] is None else r[f]) for f in FIELDS} for r in rows)
    write_text(buffer.getvalue(), out / "occ_study.csv")
    write_text(table(rows), out / "occ_study.md")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[3407, 1])
    parser.add_argument("--preset", default="quick", help="camlkit.train preset (paper, quick, mini, smoke)")
    parser.add_argument("--iterations", type=int, help="override the preset's iterations")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", default="data/LA", help="the preprocessed LA folder")
    parser.add_argument("--out", default="runs/occ_study")
    parser.add_argument("--crops", type=int, default=4, help="test crops the figures are measured on")
    parser.add_argument("--similarities", nargs="+", default=list(SIMILARITIES), choices=SIMILARITIES)
    parser.add_argument("--quiet", dest="progress", action="store_false")
    args = parser.parse_args(argv)

    from camlkit.errors import CamlkitError

    out = Path(args.out)
    try:
        if not (Path(args.data) / "train.list").is_file():
            raise CamlkitError(f"{args.data}: not an LA folder (no train.list)")
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for seed in args.seeds:
            for similarity in args.similarities:
                run_dir = train_one(args, similarity, seed)
                rows.append({"seed": seed, **measure(run_dir, args.data, args.crops)})
                write_results(rows, out)  # after every run: a cut study keeps what it has
    except (CamlkitError, ValueError) as err:
        print(f"occ_study: {err}", file=sys.stderr)
        return 1
    print(table(rows))
    print(f"written: {out / 'occ_study.csv'}, {out / 'occ_study.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
