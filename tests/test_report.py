import json
import subprocess
import sys

import pytest

from camlkit.errors import CamlkitError
from camlkit.report import report


def _run(path, method, labeled, seed, dice, hd95=10.0, lr=0.05):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(
        {"method": method, "labeled": labeled, "seed": seed, "preset": "quick", "lr": lr,
         "out": str(path), "data": "data/LA"}))
    (path / "summary.json").write_text(json.dumps(
        {"dice": [dice, 0.01], "jaccard": [dice - 0.1, 0.01], "hd95": [hd95, 1.0],
         "asd": [2.0, 0.1], "cases": 20}))
    return path


def test_seeds_are_averaged_and_the_paper_row_sits_beside(tmp_path):
    runs = [_run(tmp_path / "a", "caml", 4, 1, 0.80, hd95=8.0),
            _run(tmp_path / "b", "caml", 4, 2, 0.90, hd95=12.0),
            _run(tmp_path / "c", "mcnet", 4, 1, 0.70)]
    text = report(runs)
    caml_row = next(line for line in text.splitlines() if "caml (camlkit" in line)
    assert "| 2 | 85.00 ± 7.07 | 75.00 ± 7.07 | 10.00 ± 2.83 | 2.00 ± 0.00 |" in caml_row
    assert "| 4 | caml (paper) | 3 | 87.34 ± 0.05 | 77.65 ± 0.08 | 9.76 ± 0.92 | 2.49 ± 0.22 |" in text
    table2 = text.split("## Table 2")[1]
    assert "| 4 | ✓ |  |  | camlkit (quick; 1 seeds) | 70.00 ± 0.00" in table2
    assert "| 4 | ✓ |  |  | paper | 80.92 ± 3.88" in table2


def test_runs_with_other_settings_are_not_averaged_as_seeds(tmp_path):
    runs = [_run(tmp_path / "a", "caml", 16, 1, 0.80),
            _run(tmp_path / "b", "caml", 16, 2, 0.84),
            _run(tmp_path / "c", "caml", 16, 1, 0.60, lr=0.1)]
    lines = report(runs).splitlines()
    assert "| 16 | caml (camlkit, quick, lr=0.05) | 2 | 82.00 ± 2.83" in "\n".join(lines)
    assert "| 16 | caml (camlkit, quick, lr=0.1) | 1 | 60.00 ± 0.00" in "\n".join(lines)
    table1 = lines[: lines.index("## Table 2 — ablation")]
    assert sum("caml (paper)" in line for line in table1) == 1  # once, after both settings


def test_not_a_run_folder(tmp_path):
    with pytest.raises(CamlkitError, match="not a finished camlkit run"):
        report([tmp_path])


def test_cli_writes_the_report(tmp_path):
    run = _run(tmp_path / "a", "supervised", 16, 1, 0.8)
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "report", str(run),
                          "--out", str(tmp_path / "r.md")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "85.94 ± 0.48" in (tmp_path / "r.md").read_text()  # V-Net 16 labeled, Table 1
