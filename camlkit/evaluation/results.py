"""What a result folder holds, read for camlkit.evaluation.report: a training run's, or an evaluation's.

- A **run folder** (camlkit.train) holds ``config.json`` (method, labeled count, seed, every
  setting) and ``summary.json`` (the final iteration's metrics, mean over the test cases).
- An **evaluation folder** (``camlkit evaluate --out``) holds ``summary.json`` whose
  ``"evaluated"`` entry names the file evaluated, its git blob id and the settings; for the
  authors' networks (camlkit.runtime.weights) the blob id says whether it is the pinned file.

Each result gets a **fingerprint**: its settings including the seed (not the folder it was
written to) and its results to the last digit (``summary.json``, ``cases.csv``). A copied
folder has the fingerprint of its original, so the report counts it once instead of as one
more seed (two runs of one config and seed on one machine compute the same numbers anyway).
"""

import csv
import hashlib
import json
from pathlib import Path

from camlkit.errors import CamlkitError
from camlkit.paper import METHODS, METRICS, PERCENT
from camlkit.runtime.resume import ADDED_LATER
from camlkit.runtime.weights import released_for

# settings that do not change what a run computes, or that name the run itself
NOT_SETTINGS = ("seed", "out", "data", "progress", "device", "num_workers", "checkpoint_every",
                "log_every", "step.occ_health")  # where and how a run was written or logged


def run_settings(config: dict) -> dict:
    """What a run computed with, from its config.json: a field camlkit added later and an older
    run does not store counts as the value camlkit used before it (camlkit.runtime.resume
    .ADDED_LATER), so runs that computed the same thing are seeds of one row."""
    return {k: v for k, v in {**ADDED_LATER, **config}.items() if k not in NOT_SETTINGS}


def fingerprint(folder, settings: dict) -> str:
    """SHA-256 of ``settings`` (JSON, keys sorted) and the folder's summary.json and cases.csv."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for name in ("summary.json", "cases.csv"):
        path = Path(folder) / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return digest.hexdigest()


def _metrics(summary) -> dict:
    return {name: float(summary[name][0]) for name in METRICS}


def _check_method(method, where):
    if method not in METHODS:
        raise CamlkitError(f"{where}: method {method!r} is not one camlkit knows "
                           f"(expected one of {', '.join(METHODS)})")


def read_run(run_dir) -> dict:
    """{"kind": "run", "method", "labeled", "seed", "preset", "settings", "dir", "path", "cases"
    (how many test cases its evaluation scored), "fingerprint", "dice", "jaccard", "hd95", "asd"}."""
    run_dir = Path(run_dir)
    config_path, summary_path = run_dir / "config.json", run_dir / "summary.json"
    for path in (config_path, summary_path):
        if not path.is_file():
            raise CamlkitError(f"{run_dir}: not a finished camlkit run ({path.name} is missing)")
    try:
        config, summary = json.loads(config_path.read_text()), json.loads(summary_path.read_text())
        run = {"kind": "run", **{key: config[key] for key in ("method", "labeled", "seed", "preset")}}
        run["settings"] = run_settings(config)
        run["dir"], run["path"] = run_dir.name, str(run_dir)
        run["split"] = summary.get("split", "test")
        run["cases"] = summary.get("cases")
        run.update(_metrics(summary))
    except (ValueError, KeyError, TypeError, IndexError) as err:
        raise CamlkitError(f"{run_dir}: unreadable config.json/summary.json ({err})") from None
    _check_method(run["method"], config_path)
    run["fingerprint"] = fingerprint(run_dir, {k: v for k, v in config.items() if k != "out"})
    return run


def read_evaluation(folder) -> dict:
    """{"kind": "evaluation", "method", "labeled", "cases", "file", "blob", "pinned",
    "released", "dir", "path", "fingerprint", "dice", ...} of a ``camlkit evaluate`` folder.

    ``pinned``: the blob id is one of camlkit.runtime.weights.RELEASED (checked here, not taken from
    the file); ``released``: the file was an authors'-layout state_dict.
    """
    folder = Path(folder)
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise CamlkitError(f"{folder}: not a finished camlkit run or evaluation (summary.json is missing)")
    try:
        summary = json.loads(summary_path.read_text())
        record = summary["evaluated"]
        found = {"kind": "evaluation", "method": record["method"], "labeled": record["labeled"],
                 "cases": int(summary["cases"]), "file": Path(record["checkpoint"]).name,
                 "blob": record["blob_id"], "released": record["kind"] == "released",
                 "dir": folder.name, "path": str(folder), "split": summary.get("split", "test"),
                 **_metrics(summary)}
    except (ValueError, KeyError, TypeError, IndexError) as err:
        what = ("no config.json, and its summary.json does not say what was evaluated"
                if isinstance(err, KeyError) and err.args == ("evaluated",) else f"unreadable summary.json ({err})")
        raise CamlkitError(f"{folder}: not a finished camlkit run or evaluation: {what}") from None
    if found["method"] is not None:
        _check_method(found["method"], summary_path)
    found["pinned"] = released_for(found["blob"]) is not None
    found["fingerprint"] = fingerprint(folder, {})
    return found


def read_result(folder) -> dict:
    """A run folder (it has config.json) or else an evaluation folder."""
    return read_run(folder) if (Path(folder) / "config.json").is_file() else read_evaluation(folder)


def drop_copies(results) -> tuple[list, list]:
    """(each result once, one sentence per copy left out): a folder whose fingerprint an earlier
    folder has is the same run (or evaluation) twice."""
    first, kept, notes = {}, [], []
    for result in results:
        original = first.setdefault(result["fingerprint"], result)
        if original is result:
            kept.append(result)
        elif result["kind"] == "run":
            notes.append(f"`{result['path']}` is the same run as `{original['path']}` (same settings, "
                         f"seed {result['seed']} and results): counted once, not as another seed.")
        else:
            notes.append(f"`{result['path']}` is the same evaluation as `{original['path']}` (same "
                         f"file and results): shown once.")
    return kept, notes


# ----------------------------------------------------------------------------- one run's cases

def read_cases(run_dir) -> list:
    """``cases.csv`` of a run, one dict per test case: Dice and Jaccard in %, 95HD and ASD in
    voxels, worst Dice first."""
    path = Path(run_dir) / "cases.csv"
    if not path.is_file():
        raise CamlkitError(f"{path}: missing (not a finished, evaluated run)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        cases = [{"case": row["case"], **{name: float(row[name]) * (100.0 if name in PERCENT else 1.0)
                                          for name in METRICS}} for row in rows]
    except (KeyError, ValueError) as err:
        raise CamlkitError(f"{path}: unreadable ({err})") from None
    return sorted(cases, key=lambda r: r["dice"])


CASE_COLUMNS = {"case": "case", "dice": "Dice (%)", "jaccard": "Jaccard (%)", "hd95": "95HD (voxel)",
                "asd": "ASD (voxel)"}


def cases_table(cases) -> list:
    """:func:`read_cases` rows with their units in the column names, for display."""
    return [{CASE_COLUMNS[k]: v for k, v in row.items()} for row in cases]
