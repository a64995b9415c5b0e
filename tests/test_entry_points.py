"""Every command the README, binder/postBuild and scripts/ tell a user to run points at a module or
script that exists: each is run with --help (the module loads, its parser builds)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [ROOT / "README.md", ROOT / "binder" / "postBuild", *sorted((ROOT / "scripts").glob("*.sh"))]
COMMANDS = ("train", "evaluate", "predict", "report", "download", "preprocess")  # camlkit's own


def _named():
    """(how it is written, argv of its --help) for every `python -m X`, `python path.py` and
    `camlkit <command>` in the sources; pip, pytest and the test helper are not camlkit's."""
    found = {}
    for source in SOURCES:
        text = source.read_text()
        for module in re.findall(r"python3? -m ([A-Za-z_][\w.]*\w)", text):
            if module.split(".")[0] in ("camlkit", "bench") and "." in module:  # not "bench.<name>"
                found[f"python -m {module}"] = [sys.executable, "-m", module, "--help"]
        for script in re.findall(r"python3? ((?:data_scripts|bench)/[\w/]+\.py)", text):
            found[f"python {script}"] = [sys.executable, str(ROOT / script), "--help"]
        for command in re.findall(r"camlkit (\w+)", text):
            if command in COMMANDS:
                found[f"camlkit {command}"] = [sys.executable, "-m", "camlkit.cli", command, "--help"]
    return sorted(found.items())


def test_the_sources_name_the_entry_points_a_user_meets():
    names = dict(_named())
    for expected in ("python -m camlkit.cli", "camlkit download", "camlkit train",
                     "camlkit evaluate", "python -m bench.bench_train", "python data_scripts/download_la.py"):
        assert expected in names, expected


@pytest.mark.slow  # 14 fresh processes that import torch, 3-5 s each
@pytest.mark.parametrize("written, argv", _named(), ids=[n for n, _ in _named()])
def test_each_named_entry_point_answers_help(written, argv):
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{written}: {out.stderr.strip()[-400:]}"
    assert "usage:" in out.stdout.lower(), f"{written}: no usage line in {out.stdout[:200]!r}"
