"""Table 1's evaluation: every test case through the sliding-window protocol, four metrics, the
mean +- std, and the paper's row beside it (the paper, Sec. 3 "Quantitative Evaluation and
Comparison": the final iteration's model; the release's ``code/test_3d.py``).

- the model is f_v only, in eval mode (no dropout; CAML's CMA lives in f_a and is not used);
- each case: ``inference.predict_volume`` (sliding window, patch 112x112x80, stride 18/18/4 by
  default), then ``metrics.case_metrics`` on the binary foreground, in voxels; how the inputs are
  prepared is one camlkit.runtime.trained.InputSettings, the checkpoint's own unless flags change it;
- a model trained at ``scale`` < 1 (the CPU presets) sees the image resampled by ``scale``; its
  probabilities are brought back to the original grid before the argmax, so the metrics are
  always against the original full-resolution label.

``camlkit evaluate CHECKPOINT --data DIR`` (or ``--weights 16``: the authors' network, camlkit.runtime.weights)
writes ``cases.csv``, ``summary.md`` and ``summary.json`` (what ``camlkit report`` reads; it names
the file evaluated and its git blob id) into --out, holding the folder's lock (camlkit.runtime.runfolder)
meanwhile: a training writing that folder makes it refuse, before any case is computed.
Dice and Jaccard are fractions in the per-case rows and printed in % in the table, as the paper.
The authors' files store no settings, so they are evaluated as the authors trained them: full
resolution, patch 112x112x80, stride 18x18x4, no per-case z-scoring.

Everything that could fail is checked before the first case is computed: the settings, the
output folder and every test case (camlkit.runtime.preflight: ``check_output_dir``,
``check_test_set``, which training calls too before its first iteration).
"""

import csv
import io
import json
import statistics
from pathlib import Path

from camlkit.data import case_path, load_split, read_case
from camlkit.data.folder import find_data_dir
from camlkit.errors import CamlkitError
from camlkit.evaluation.inference import add_window_arguments, predict_volume, window_inputs
from camlkit.evaluation.metrics import case_metrics
from camlkit.files import clean_temps, write_text
from camlkit.paper import METHODS, METRICS, paper_numbers
from camlkit.runtime.checkpoint import checkpoint_config
from camlkit.runtime.device import resolve_device
from camlkit.runtime.preflight import (
    check_cases,
    check_output_dir,
    check_output_files,
    check_own_results,
    check_test_set,
)
from camlkit.runtime.runfolder import RunLock
from camlkit.runtime.trained import InputSettings, load_inference_model, stored_setting
from camlkit.runtime.weights import blob_id, cached, default_dest, download_command_hint, entry, released_for

COLUMNS = ("case",) + METRICS
RESULT_FILES = ("cases.csv", "summary.md", "summary.json")


def evaluate_cases(model, case_paths, inputs, batch_size=4, progress=True):
    """Per-case metrics ``[{"case", "dice", "jaccard", "hd95", "asd"}, ...]`` for LA .h5 cases,
    each predicted with the camlkit.runtime.trained.InputSettings ``inputs``."""
    from tqdm.auto import tqdm

    model.eval()
    rows = []
    bar = tqdm(list(case_paths), desc="evaluate", unit="case", disable=not progress)
    for path in bar:
        image, label = read_case(path)
        case = Path(path).parent.name
        bar.set_postfix_str(case)
        pred, _ = predict_volume(model, image, inputs, batch_size=batch_size)
        rows.append({"case": case, **case_metrics(pred, label, case=case)})
    return rows


def summarize(rows):
    """Mean and sample standard deviation of each metric over cases: {"dice": (mean, std), ...}."""
    if not rows:
        raise CamlkitError("no evaluated cases to summarize")
    summary = {}
    for name in METRICS:
        values = [float(row[name]) for row in rows]
        summary[name] = (statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
    summary["cases"] = len(rows)
    return summary


def write_csv(rows, path):
    """Per-case rows as CSV (columns case, dice, jaccard, hd95, asd), written atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(buffer.getvalue(), path)


def _cell(mean, std, percent, spread=True):
    factor = 100.0 if percent else 1.0
    return f"{mean * factor:.2f} ± {std * factor:.2f}" if spread else f"{mean * factor:.2f}"


def format_table(summary, method=None, labeled=None):
    """A markdown table: our mean ± std over cases, and the paper's row (mean ± std over 3 seeds).

    Validation scores (``summary["split"] == "val"``) get no paper row: the paper's are test-set
    numbers."""
    header = "| | Dice (%) | Jaccard (%) | 95HD (voxel) | ASD (voxel) |\n| --- | --- | --- | --- | --- |\n"
    n = summary.get("cases", "?")
    ours = [_cell(*summary[name], percent=name in ("dice", "jaccard"), spread=n != 1) for name in METRICS]
    title = "camlkit (1 case)" if n == 1 else f"camlkit ({n} cases, mean ± std over cases)"
    lines = [f"| {title} | " + " | ".join(ours) + " |"]
    if summary.get("split") == "val":
        return header + lines[0].replace("camlkit (", "camlkit, validation cases (", 1) + "\n"
    paper = paper_numbers(method, labeled) if method is not None and labeled is not None else None
    if paper is not None:
        cells = [f"{paper[name]:.2f} ± {paper[name + '_std']:.2f}" for name in METRICS]
        lines.append(f"| paper {paper['source']}: {method}, {labeled} labeled (mean ± std over 3 seeds) | "
                     + " | ".join(cells) + " |")
    elif method is not None or labeled is not None:
        lines.append(f"| paper: no row for method={method}, labeled={labeled} | – | – | – | – |")
    return header + "\n".join(lines) + "\n"



def evaluation_failed_message(run_dir, err) -> str:
    """What a run says when its final evaluation fails after the training ended and was saved."""
    return (f"the training ended and {Path(run_dir) / 'model_final.pth'} is saved, but its evaluation "
            f"failed: {err}. Fix this and run the same command again with --resume: it redoes only "
            f"the evaluation")


# ----------------------------------------------------------------------------- command line

def resolve_checkpoint(args):
    """The file to evaluate: the CHECKPOINT given, or with ``--weights N`` the authors' network
    for N labeled scans in the cache (camlkit.runtime.weights), which must be the pinned file."""
    if args.checkpoint is not None and args.weights is not None:
        raise CamlkitError(f"{args.checkpoint} and --weights {args.weights}: give one of them")
    if args.checkpoint is None and args.weights is None:
        raise CamlkitError("nothing to evaluate: give a checkpoint file, or --weights 4|8|16 for the "
                           "authors' network")
    if args.checkpoint is not None:
        return Path(args.checkpoint)
    pinned = entry(args.weights)
    path = cached(pinned.labeled)
    if path is None:
        raise CamlkitError(f"the authors' {pinned.labeled}-labeled network is not in {default_dest()}: "
                           f"`{download_command_hint(pinned.labeled)}` fetches it")
    return path


def evaluation_record(path, blob, kind, method, labeled, inputs, data):
    """What summary.json says about the evaluation: the file (path and git blob id: which bytes
    were evaluated), whether it is one of the authors' pinned files, and the settings (the
    fields of the InputSettings ``inputs``: patch_size, stride, scale, zscore_case)."""
    pinned = released_for(blob)
    return {"checkpoint": str(Path(path).resolve()), "blob_id": blob, "kind": kind,
            "pinned_labeled": pinned.labeled if pinned else None, "method": method, "labeled": labeled,
            **inputs.to_dict(), "data": str(Path(data).resolve())}


def evaluate_command(args):
    out = check_output_dir(args.out)
    check_output_files(out, RESULT_FILES)
    checkpoint = resolve_checkpoint(args)
    check_own_results(out, checkpoint)  # another run's results are never replaced
    stored = checkpoint_config(checkpoint)  # reads and checks the checkpoint file
    kind = "camlkit" if stored else "released"
    inputs = window_inputs(args, InputSettings.from_config(stored))
    device = resolve_device(args.device)
    args.data = args.data or str(find_data_dir())  # the one rule when --data is not given
    paths = evaluation_cases(args, stored, checkpoint)
    blob = blob_id(checkpoint)
    pinned = released_for(blob) if kind == "released" else None
    if args.weights is not None and pinned is None:
        raise CamlkitError(f"{checkpoint}: not the pinned file any more (its git blob id differs): "
                           f"`camlkit download --weights {args.weights}` fetches it again")
    method = args.method or stored_setting(stored, "method") or ("caml" if kind == "released" else None)
    labeled = next((v for v in (args.labeled, stored_setting(stored, "labeled"), pinned and pinned.labeled)
                    if v is not None), None)
    model = load_inference_model(checkpoint, map_location=device)

    with RunLock(out):  # a training (or another evaluation) writing this folder: one line, no work
        clean_temps(out)
        rows = evaluate_cases(model, paths, inputs, batch_size=args.batch_size, progress=not args.quiet)
        summary = summarize(rows)
        summary["evaluated"] = evaluation_record(checkpoint, blob, kind, method, labeled, inputs, args.data)
        if args.split == "val":
            summary["split"] = "val"
        table = format_table(summary, method, labeled)
        settings = (f"patch {inputs.patch_size}, stride {inputs.stride}, scale {inputs.scale}, "
                    f"z-scored cases {inputs.zscore_case}, checkpoint {checkpoint} (git blob {blob})")
        write_csv(rows, out / "cases.csv")
        write_text(f"# Evaluation on LA\n\n{settings}\n\n{table}", out / "summary.md")
        write_text(json.dumps(summary, indent=2) + "\n", out / "summary.json")
    print(table, end="")
    print(f"wrote {out / 'cases.csv'}, {out / 'summary.md'} and {out / 'summary.json'}")
    return 0


def evaluation_cases(args, stored, checkpoint):
    """The case files ``camlkit evaluate`` scores: test.list, or with ``--split val`` the
    validation cases the checkpoint's run held out, as its checkpoint names them (``stored``: its
    config, camlkit.runtime.trained.stored_setting "val_case_ids"; a checkpoint of before they
    were stored: the last ``val_cases`` of train.list). ``--val-cases`` may only repeat their
    number. Each case is read and validated first."""
    if args.split == "test":
        return check_test_set(args.data, args.cases, flag="--cases")
    if args.cases is not None and args.cases < 1:
        raise CamlkitError(f"--cases {args.cases}: expected at least 1 case")
    ids = stored_setting(stored, "val_case_ids")
    held = len(ids) if ids is not None else int(stored_setting(stored, "val_cases", 0))
    run = f"the run of {checkpoint}" if stored else f"{checkpoint} (the authors' network)"
    if args.val_cases is not None and args.val_cases != held:
        raise CamlkitError(f"--val-cases {args.val_cases}: {run} held out {held} validation case(s); "
                           f"--split val scores exactly those (leave --val-cases out)")
    if held == 0:
        raise CamlkitError(f"--split val: {run} held out no validation cases (it was trained on "
                           f"every case of train.list); score the test cases instead (--split test)")
    if ids is None:  # stored before the ids were: the last K of train.list after its labeled cases
        labeled = int(stored_setting(stored, "labeled", 0))
        return check_cases(load_split(args.data, labeled, held).val[: args.cases])
    paths = [case_path(args.data, case) for case in ids][: args.cases]
    for case, path in zip(ids, paths):
        if not path.is_file():
            raise CamlkitError(f"validation case {case} of {run} is missing: {path} not found")
    return check_cases(paths)


def add_cli(subparsers):
    parser = subparsers.add_parser(
        "evaluate", help="Table 1 metrics of a checkpoint on the LA test cases",
        description="Evaluate f_v of a checkpoint on the cases of test.list with the paper's protocol "
                    "(sliding window, Dice / Jaccard / 95HD / ASD in voxels) and print the paper's row beside it.",
    )
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="camlkit checkpoint or the authors' released .pth (or --weights)")
    parser.add_argument("--weights", type=int, default=None, metavar="N",
                        help="the authors' network for N = 4, 8 or 16 labeled scans, from the cache "
                             "(camlkit download --weights N puts it there)")
    parser.add_argument("--data", default=None, help="LA folder with test.list and '2018LA_Seg_Training Set' "
                        "(default: $CAMLKIT_DATA, else data/LA here or in the parent folder; camlkit.data.folder)")
    parser.add_argument("--out", default="runs/evaluate",
                        help="folder for cases.csv, summary.md and summary.json, created if needed; files "
                             "of the same name there are replaced; a folder a training holds, or one "
                             "holding another run than the checkpoint's, is refused (default: %(default)s)")
    parser.add_argument("--method", choices=METHODS, default=None,
                        help="paper row to compare with (default: the checkpoint's)")
    parser.add_argument("--labeled", type=int, default=None,
                        help="labeled cases of the paper row (default: the checkpoint's)")
    parser.add_argument("--cases", type=int, default=None,
                        help="evaluate only the first K test cases, K >= 1 (default: all of test.list)")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="score test.list, or the validation cases a run held out (the last K of "
                             "train.list, never trained on): choices made on them leave the test set alone")
    parser.add_argument("--val-cases", type=int, default=None, metavar="K",
                        help="with --split val: the number of validation cases the run held out (they "
                             "are named in its checkpoint; another number is refused; default: the run's)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_window_arguments(parser)
    parser.set_defaults(func=evaluate_command)
