"""Hold a short `paper`-preset run against the authors' own training logs (one GPU, ~7 minutes).

    python -m bench.gpu_reproduce --data DIR [--minutes 5] [--iterations N] [--eval-cases 4]
    python -m bench.gpu_reproduce --smoke            # CPU, under a minute: the smoke preset, 6 iterations

On the device: ``python -m bench.gpu_reproduce --data DIR --table $OUT/comparison.md``.

Trains CAML with the `paper` preset (16 labeled, seed 3407, fp32 as released) for as many
iterations as fit in ``--minutes`` (at most ``--iterations``), then compares, window by window of
``--window`` iterations, the mean and spread of the logged loss parts loss_s (L_s: both branches'
Dice losses), loss_c (l_c) and loss_o (l_o) with the same windows of the authors' released run
(``--logs``: ``caml_16labeled_losses.csv``, from the log.txt published with their checkpoints).
The release's iteration counter starts at 1, camlkit's at 0: camlkit's iteration t is the
release's t + 1. Finally the protocol Dice of f_v at the last iteration (sliding window, stride
18/4, on the first ``--eval-cases`` cases of test.list) is set beside the best Dice the release
had logged up to that iteration (it evaluated every 200 iterations from 800 on, on all 20 test
cases, and logged only improvements: an upper envelope of its own evaluations).

Not bit for bit: the random streams (initialisation, batches, augmentation, the bank's draw)
differ from the release's, so single iterations differ; windowed means should agree within the
spreads. The table is printed and written to ``--table`` (default ``<out>/comparison.md``).

The data folder may hold a subset of LA: cases named in train.list / test.list but absent are
left out (through a view of symlinks in the run folder), as long as the labeled set (the first
16 lines of train.list) is complete and at least 2 unlabeled and 1 test case are present.

How the time budget is kept: a first short run (``--calibrate`` iterations, no evaluation)
measures the seconds per iteration; the run then resumes from its checkpoint (exact resume,
camlkit.train) up to the number of iterations that fits what is left, and evaluates.
Strict fp32 by default (no TF32: the release ran on a TITAN RTX, which has none); ``--tf32``
allows TF32 convolutions and matmuls.
"""

import argparse
import csv
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from camlkit.config import make_config
from camlkit.data import case_path, read_list
from camlkit.errors import CamlkitError
from camlkit.runtime.runlog import read_log
from camlkit.train import train

REPO = Path(__file__).resolve().parents[1]
DEFAULT_LOGS = REPO.parent / "shared" / "reference" / "release_logs"
PARTS = (("loss_s", "L_s"), ("loss_c", "l_c"), ("loss_o", "l_o"))  # release name, camlkit name


# ----------------------------------------------------------------------------- inputs

def present_cases_view(data, labeled, run_dir):
    """``data`` itself if every listed case is present, else a folder of symlinks whose lists
    name only the present cases. The labeled set (first ``labeled`` lines) must be complete."""
    data = Path(data)
    if not data.is_dir():
        raise CamlkitError(f"{data}: data folder not found")
    lists, missing = {}, False
    for name in ("train.list", "test.list"):
        cases = read_list(data / name)
        present = [c for c in cases if case_path(data, c).is_file()]
        lists[name] = present
        missing |= len(present) < len(cases)
        if name == "train.list":
            absent = [c for c in cases[:labeled] if c not in present]
            if absent:
                raise CamlkitError(f"{data / name}: the labeled set (its first {labeled} lines) must be "
                                   f"present; missing {', '.join(absent[:4])}")
    if len(lists["train.list"]) < labeled + 2:
        raise CamlkitError(f"{data}: {len(lists['train.list']) - labeled} unlabeled cases present, need 2")
    if not lists["test.list"]:
        raise CamlkitError(f"{data / 'test.list'}: none of its cases is present")
    if not missing:
        return data
    view = run_dir / "data_view"
    for case in lists["train.list"] + lists["test.list"]:
        link = case_path(view, case).parent
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(case_path(data, case).parent.resolve(), target_is_directory=True)
    for name, cases in lists.items():
        (view / name).write_text("".join(f"{c}\n" for c in cases))
    return view


def read_release(logs, labeled):
    """({iteration: {loss_s, loss_c, loss_o}}, [(iteration, best dice)]) of the released run."""
    logs = Path(logs)
    losses_path, best_path = (logs / f"caml_{labeled}labeled_{kind}.csv" for kind in ("losses", "best_dice"))
    for path in (losses_path, best_path):
        if not path.is_file():
            raise CamlkitError(f"{path}: release log not found (see --logs)")
    with open(losses_path, newline="") as f:
        losses = {int(r["iteration"]): {k: float(r[k]) for k, _ in PARTS} for r in csv.DictReader(f)}
    with open(best_path, newline="") as f:
        best = [(int(r["iteration"]), float(r["dice"])) for r in csv.DictReader(f)]
    return losses, best


# ----------------------------------------------------------------------------- comparison

def windows(last, width):
    """Release-numbered windows [a, b] covering 1..last, the last one possibly shorter."""
    return [(a, min(a + width - 1, last)) for a in range(1, last + 1, width)]


def spread(values):
    """'mean ± sd' of a list (sd 0 for one value), or '—' for none."""
    if not values:
        return "—"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.4f} ± {sd:.4f}"


def best_so_far(best, iteration):
    logged = [d for it, d in best if it <= iteration]
    return max(logged) if logged else None


def comparison_table(ours, release, best, dice, last, width, meta):
    """The markdown table: loss parts per window (camlkit vs release), then Dice."""
    by_release_iteration = {row["iteration"] + 1: row for row in ours}
    head = ["release iterations"] + [f"{r} {who}" for r, _ in PARTS for who in ("camlkit", "release")]
    lines = [f"# camlkit vs the released run: {meta}", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for a, b in windows(last, width):
        cells = [f"{a}-{b}"]
        for r, k in PARTS:
            cells.append(spread([by_release_iteration[t][k] for t in range(a, b + 1) if t in by_release_iteration]))
            cells.append(spread([release[t][r] for t in range(a, b + 1) if t in release]))
        lines.append("| " + " | ".join(cells) + " |")
    released = best_so_far(best, last)
    release_cell = (f"{100 * released:.2f} (best logged up to iteration {last}, 20 test cases)"
                    if released is not None else
                    f"— (the release first evaluated at iteration {best[0][0] if best else 800})")
    ours_cell = (f"{100 * dice['mean']:.2f} ± {100 * dice['sd']:.2f} ({dice['cases']} test cases)"
                 if dice else "— (not evaluated)")
    lines += ["", "| Dice (%) at the last iteration | camlkit (final iteration) | release |",
              "| --- | --- | --- |", f"| iteration {last} | {ours_cell} | {release_cell} |"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- the run

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("CAMLKIT_DATA", "data/LA"))
    p.add_argument("--logs", default=str(DEFAULT_LOGS), help="folder of the release's logs")
    p.add_argument("--out", default="runs/gpu_reproduce", help="run folder (must not hold a run)")
    p.add_argument("--table", help="where to write the table (default OUT/comparison.md)")
    p.add_argument("--minutes", type=float, default=5.0, help="training budget, calibration included")
    p.add_argument("--iterations", type=int, default=15000, help="at most this many iterations")
    p.add_argument("--calibrate", type=int, default=20, help="iterations of the timing run")
    p.add_argument("--eval-cases", type=int, default=4, help="first N cases of test.list")
    p.add_argument("--eval-reserve", type=float, default=60.0, help="seconds kept for evaluation")
    p.add_argument("--window", type=int, default=50, help="iterations per compared window")
    p.add_argument("--labeled", type=int, default=16)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--device", default="auto")
    p.add_argument("--tf32", action="store_true", help="allow TF32 (not fp32 as released)")
    p.add_argument("--smoke", action="store_true", help="the smoke preset, 6 iterations: a CPU check")
    return p.parse_args(argv)


def run(args):
    started = time.time()
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = args.tf32
    preset = "smoke" if args.smoke else "paper"
    labeled = 4 if args.smoke else args.labeled
    cap = min(args.iterations, 6) if args.smoke else args.iterations
    calibrate = min(3 if args.smoke else args.calibrate, cap)
    run_dir = Path(args.out)
    if (run_dir / "checkpoints" / "last.pth").exists():
        raise CamlkitError(f"{run_dir} already holds a run: choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)
    release, best = read_release(args.logs, labeled)
    data = present_cases_view(args.data, labeled, run_dir)
    present = {name: len(read_list(Path(data) / name)) for name in ("train.list", "test.list")}
    args.cases = (f"{labeled} labeled, {present['train.list'] - labeled} unlabeled and "
                  f"{present['test.list']} test cases present")
    cfg = make_config(preset, method="caml", labeled=labeled, seed=args.seed, data=str(data),
                      out=str(run_dir), iterations=calibrate, eval_cases=args.eval_cases,
                      log_every=1, checkpoint_every=10**9, progress=False, device=args.device)

    train(cfg, evaluate=False)  # the timing run
    rows = read_log(run_dir / "log.csv")
    per_iteration = (rows[-1]["seconds"] - rows[0]["seconds"]) / max(len(rows) - 1, 1)
    left = 60 * args.minutes - (time.time() - started) - args.eval_reserve
    total = max(calibrate, min(cap, calibrate + int(left / max(per_iteration, 1e-6))))
    print(f"{per_iteration:.3f} s per iteration after {calibrate}: training to {total}", flush=True)
    train(dataclasses.replace(cfg, iterations=total), resume=True, evaluate=True)
    return finish(args, run_dir, release, best, total, per_iteration, time.time() - started)


def finish(args, run_dir, release, best, total, per_iteration, elapsed):
    import json

    ours = read_log(run_dir / "log.csv")
    summary = json.loads((run_dir / "summary.json").read_text())
    dice = {"mean": summary["dice"][0], "sd": summary["dice"][1], "cases": summary["cases"]}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else "CPU"
    meta = (f"`{'smoke' if args.smoke else 'paper'}` preset, CAML, {args.labeled if not args.smoke else 4} "
            f"labeled, seed {args.seed}, {total} iterations on {device}, "
            f"{per_iteration:.2f} s/iteration, {'TF32' if args.tf32 else 'fp32'}, "
            f"{elapsed / 60:.1f} min in all; {args.cases}")
    table = comparison_table(ours, release, best, dice, total, args.window, meta)
    print(table)
    path = Path(args.table) if args.table else run_dir / "comparison.md"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(table)
    os.replace(tmp, path)
    print(f"table written to {path}")
    return 0


def main(argv=None):
    args = parse_args(argv)
    try:
        return run(args)
    except CamlkitError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
