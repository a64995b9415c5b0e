import json
import subprocess
import sys

import pytest

from camlkit.errors import CamlkitError
from camlkit.evaluation.report import report
from camlkit.evaluation.results import cases_table, read_cases


def _run(path, method, labeled, seed, dice, hd95=10.0, lr=0.05, cases=20):
    path.mkdir()
    (path / "config.json").write_text(json.dumps(
        {"method": method, "labeled": labeled, "seed": seed, "preset": "quick", "lr": lr,
         "out": str(path), "data": "data/LA"}))
    (path / "summary.json").write_text(json.dumps(
        {"dice": [dice, 0.01], "jaccard": [dice - 0.1, 0.01], "hd95": [hd95, 1.0],
         "asd": [2.0, 0.1], "cases": cases}))
    return path


def test_seeds_are_averaged_and_the_paper_row_sits_beside(tmp_path):
    runs = [_run(tmp_path / "a", "caml", 4, 1, 0.80, hd95=8.0),
            _run(tmp_path / "b", "caml", 4, 2, 0.90, hd95=12.0),
            _run(tmp_path / "c", "mcnet", 4, 1, 0.70)]
    text = report(runs)
    caml_row = next(line for line in text.splitlines() if "caml (camlkit" in line)
    assert "| 1, 2 | 85.00 ± 7.07 | 75.00 ± 7.07 | 10.00 ± 2.83 | 2.00 ± 0.00 |" in caml_row
    assert "| 4 | caml (paper) | 3 seeds | 87.34 ± 0.05 | 77.65 ± 0.08 | 9.76 ± 0.92 | 2.49 ± 0.22 |" in text
    table2 = text.split("## Table 2")[1]
    # one seed: its value, no "± 0.00", and the seed named
    assert "| 4 | ✓ |  |  | camlkit (quick; seed 1) | 70.00 | 60.00 | 10.00 | 2.00 |" in table2
    assert "| 4 | ✓ |  |  | paper | 80.92 ± 3.88" in table2
    assert "1 seeds" not in text
    # the run folders behind each row
    assert "- 4 labeled, CAML (quick): `a`, `b`" in text and "- 4 labeled, MC-Net (quick): `c`" in text
    # what the comparisons show, from the numbers
    assert "CAML (quick) beats MC-Net (quick) by 15.00 Dice on 2 seeds against 1 seed" in text
    assert "adding CMA + OCC (CAML) to MC-Net raises Dice by 15.00 to 85.00 %" in text


def test_a_run_scored_on_part_of_the_test_set_says_so(tmp_path):
    text = report([_run(tmp_path / "smoke", "caml", 4, 1, 0.5, cases=2), _run(tmp_path / "full", "mcnet", 4, 1, 0.6)])
    assert "`smoke` (scored on 2 of the 20 test cases)" in text
    assert "`full` (scored" not in text


def test_when_caml_loses_the_sentence_says_so(tmp_path):
    runs = [_run(tmp_path / "caml", "caml", 4, 1, 0.8534),
            _run(tmp_path / "mcnet", "mcnet", 4, 1, 0.8625)]
    text = report(runs)
    assert "MC-Net (quick) beats CAML (quick) by 0.91 Dice on this seed" in text
    assert "adding CMA + OCC (CAML) to MC-Net lowers Dice by 0.91" in text
    assert "the paper: +6.42" in text


def test_the_ordering_sentence_says_whether_the_papers_order_holds(tmp_path):
    runs = [_run(tmp_path / "c1", "caml", 4, 1, 0.80), _run(tmp_path / "c2", "caml", 4, 2, 0.76),
            _run(tmp_path / "m", "mcnet", 4, 1, 0.75), _run(tmp_path / "s", "supervised", 4, 1, 0.70)]
    assert ("4 labeled: the paper's ordering CAML > MC-Net > labeled-only V-Net holds (mean Dice "
            "CAML 78.00 %, MC-Net 75.00 %, labeled-only V-Net 70.00 %)") in report(runs)
    _run(tmp_path / "s2", "supervised", 4, 2, 0.79)  # the baseline's mean rises to 74.50 %
    (tmp_path / "m" / "summary.json").write_text((tmp_path / "m" / "summary.json").read_text()
                                                 .replace("0.75", "0.74"))
    text = report(runs[:3] + [tmp_path / "s", tmp_path / "s2"])
    assert "does not hold: MC-Net does not beat labeled-only V-Net (mean Dice CAML 78.00 %, " \
           "MC-Net 74.00 %, labeled-only V-Net 74.50 %)" in text
    assert "ordering" not in report(runs[:3])  # no labeled-only run: nothing to say


def test_per_case_rows_are_in_percent_worst_first(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "cases.csv").write_text("case,dice,jaccard,hd95,asd\nA,0.9,0.8,3.0,1.0\n"
                                   "B,0.418,0.3,12.5,4.0\n")
    rows = read_cases(run)
    assert [r["case"] for r in rows] == ["B", "A"]
    assert rows[0]["dice"] == pytest.approx(41.8) and rows[1]["jaccard"] == pytest.approx(80.0)
    assert rows[0]["hd95"] == 12.5
    assert list(cases_table(rows)[0]) == ["case", "Dice (%)", "Jaccard (%)", "95HD (voxel)", "ASD (voxel)"]
    with pytest.raises(CamlkitError, match="cases.csv: missing"):
        read_cases(tmp_path)


def test_runs_with_other_settings_are_not_averaged_as_seeds(tmp_path):
    runs = [_run(tmp_path / "a", "caml", 16, 1, 0.80),
            _run(tmp_path / "b", "caml", 16, 2, 0.84),
            _run(tmp_path / "c", "caml", 16, 1, 0.60, lr=0.1)]
    lines = report(runs).splitlines()
    assert "| 16 | caml (camlkit, quick, lr=0.05) | 1, 2 | 82.00 ± 2.83" in "\n".join(lines)
    assert "| 16 | caml (camlkit, quick, lr=0.1) | 1 | 60.00 |" in "\n".join(lines)
    table1 = lines[: lines.index("## Table 2 — ablation")]
    assert sum("caml (paper)" in line for line in table1) == 1  # once, after both settings


def test_a_run_from_before_a_field_existed_is_a_seed_of_the_same_row(tmp_path):
    """mini Table 2's runs predate step.occ_log, val_cases and eval_split; a run of today with
    those at the values camlkit used before them (and health logging on) joins their row."""
    old = _run(tmp_path / "old", "mcnet", 4, 1, 0.70)
    new = _run(tmp_path / "new", "mcnet", 4, 3, 0.74)
    config = json.loads((new / "config.json").read_text())
    config.update({"step.occ_log": "eps", "val_cases": 0, "eval_split": "test", "step.occ_health": True})
    (new / "config.json").write_text(json.dumps(config))
    assert "| 4 | mcnet (camlkit, quick) | 1, 3 | 72.00 ± 2.83" in report([old, new])
    config["step.occ_log"] = "log_softmax"  # computed otherwise: a row of its own
    (new / "config.json").write_text(json.dumps(config))
    assert "step.occ_log=log_softmax) | 3 | 74.00 |" in report([old, new])


def test_not_a_run_folder(tmp_path):
    with pytest.raises(CamlkitError, match="not a finished camlkit run"):
        report([tmp_path])


def test_cli_writes_the_report(tmp_path):
    run = _run(tmp_path / "a", "supervised", 16, 1, 0.8)
    out = subprocess.run([sys.executable, "-m", "camlkit.cli", "report", str(run),
                          "--out", str(tmp_path / "r.md")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "85.94 ± 0.48" in (tmp_path / "r.md").read_text()  # V-Net 16 labeled, Table 1


# ----------------------------------------------------------------------------- the same run twice

def test_a_copied_run_folder_is_counted_once_and_said(tmp_path):
    import shutil

    original = _run(tmp_path / "caml", "caml", 4, 3407, 0.80)
    (original / "cases.csv").write_text("case,dice,jaccard,hd95,asd\nA,0.8,0.7,10.0,2.0\n")
    shutil.copytree(original, tmp_path / "caml_copy")
    config = json.loads((tmp_path / "caml_copy" / "config.json").read_text())
    config["out"] = str(tmp_path / "caml_copy")  # where it lies does not make it another run
    (tmp_path / "caml_copy" / "config.json").write_text(json.dumps(config))
    text = report([original, tmp_path / "caml_copy", original])
    row = next(line for line in text.splitlines() if "caml (camlkit" in line)
    assert "| 3407 | 80.00 | 70.00 | 10.00 | 2.00 |" in row  # one seed, no "3407, 3407 ... ± 0.00"
    assert "±" not in row
    assert (f"Note: `{tmp_path / 'caml_copy'}` is the same run as `{original}` (same settings, seed 3407 "
            "and results): counted once, not as another seed.") in text
    assert text.count("is the same run as") == 2  # the copy, and the folder given twice
    # same seed, other results (e.g. trained on changed data): two runs, not a copy
    other = _run(tmp_path / "other", "caml", 4, 3407, 0.70)
    text = report([original, other])
    assert "same run" not in text and "| 3407, 3407 | 75.00 ± 7.07" in text


# ----------------------------------------------------------------------------- evaluation folders

def _evaluation(path, blob, dice=0.9012, labeled=16, kind="released", cases=20, method="caml"):
    path.mkdir()
    record = {"checkpoint": f"/cache/caml_la_{labeled}labeled_iter15000.pth", "blob_id": blob, "kind": kind,
              "pinned_labeled": None, "method": method, "labeled": labeled, "patch_size": [112, 112, 80],
              "stride": [18, 18, 4], "scale": 1.0, "zscore_case": False, "data": "/data/LA"}
    (path / "summary.json").write_text(json.dumps(
        {"dice": [dice, 0.02], "jaccard": [dice - 0.08, 0.02], "hd95": [6.5, 1.0], "asd": [1.75, 0.2],
         "cases": cases, "evaluated": record}))
    return path


PINNED_16 = "d7f729cb8af5584d6e1962f76ad60aba7c0540df"


def test_an_evaluation_of_the_authors_weights_is_its_own_row(tmp_path):
    runs = [_run(tmp_path / "q16", "caml", 16, 3407, 0.70),
            _evaluation(tmp_path / "authors16", PINNED_16),
            _evaluation(tmp_path / "mirror16", "ab" * 20, dice=0.5, cases=1)]
    lines = report(runs).splitlines()
    table = lines[lines.index("| labeled | method | seeds | Dice (%) | Jaccard (%) | 95HD (voxel) | ASD (voxel) |"):]
    assert table[2].startswith("| 16 | caml (camlkit, quick) | 3407 | 70.00 |")
    assert table[3] == ("| 16 | caml (authors' weights, evaluated by camlkit: caml_la_16labeled_iter15000.pth, "
                        "git blob d7f729cb8af5, the pinned file; 20 test cases) | 3407 (authors') | 90.12 | "
                        "82.12 | 6.50 | 1.75 |")
    assert table[4] == ("| 16 | caml (authors' weights, evaluated by camlkit: caml_la_16labeled_iter15000.pth, "
                        "git blob abababababab, not a pinned file; 1 test case) | – | 50.00 | 42.00 | 6.50 | 1.75 |")
    assert table[5].startswith("| 16 | caml (paper) | 3 seeds | 90.78 ± 0.11 |")
    text = "\n".join(lines)
    assert (f"- 16 labeled, the authors' network (CAML): `authors16` evaluated caml_la_16labeled_iter15000.pth "
            f"(git blob {PINNED_16}, the file pinned at Herschel555/CAML@b6354792)") in text
    assert ("16 labeled: the authors' network, evaluated by camlkit on 20 test cases, reaches Dice 90.12 %; "
            "the paper's CAML row (mean over 3 seeds) 90.78 ± 0.11 %.") in text
    assert "seeds 3407, 3407" not in text and "| 3407 | 70.00" in text  # the evaluation is no seed


def test_an_evaluation_alone_and_its_copy(tmp_path):
    import shutil

    first = _evaluation(tmp_path / "e4", "cd" * 20, labeled=4, dice=0.85)
    shutil.copytree(first, tmp_path / "e4_copy")
    text = report([first, tmp_path / "e4_copy"])
    assert text.count("| 4 | caml (authors' weights") == 1 and "| 4 | caml (paper) | 3 seeds | 87.34" in text
    assert f"`{tmp_path / 'e4_copy'}` is the same evaluation as `{first}`" in text
    unnamed = _evaluation(tmp_path / "e_unnamed", "cd" * 20, labeled=None, dice=0.5)
    text = report([first, unnamed])
    assert "an evaluation without a method and labeled count" in text and "50.00" not in text


def test_a_summary_without_config_or_record_is_refused(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "summary.json").write_text(json.dumps({"dice": [0.9, 0.1], "cases": 2}))
    with pytest.raises(CamlkitError, match="not a finished camlkit run or evaluation: no config.json, and its "
                                           "summary.json does not say what was evaluated"):
        report([tmp_path / "x"])
