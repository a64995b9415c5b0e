"""camlkit/paper.py against the paper's own text (Tables 1 and 2) and REFERENCE_NOTES.md."""

import re
from pathlib import Path

import pytest

from camlkit.paper import METHODS, METRICS, paper_numbers

SHARED = Path(__file__).resolve().parents[2] / "shared"
PAPER = SHARED / "paper" / "000_7c04451973ad3121.txt"


def numbers(line):
    return [float(x) for x in re.findall(r"\d+\.\d+", line)]


@pytest.fixture(scope="module")
def paper_rows():
    """(method, labeled) -> 8 numbers (mean, std alternating) read from the paper text."""
    lines = PAPER.read_text().splitlines()
    rows = {}
    for line in lines:
        if line.startswith("V-Net\t"):
            labeled = int(line.split("\t")[1])
            rows[("supervised", labeled)] = numbers(line)[:8]
    mcnet = [line for line in lines if line.startswith("MC-Net [19]")]
    ours = [line for line in lines if line.startswith("ours")]
    for labeled, m, o in zip((4, 8, 16), mcnet, ours):
        rows[("mcnet", labeled)] = numbers(m)[:8]
        rows[("caml", labeled)] = numbers(o)[:8]
    start = next(i for i, line in enumerate(lines) if line.startswith("Labeled\tUnlabeled\tBaseline"))
    ablation = [numbers(line) for line in lines[start + 1:start + 13]]
    for block, labeled in enumerate((4, 8, 16)):
        base, occ, cma, both = ablation[4 * block:4 * block + 4]
        rows[("mcnet+occ", labeled)] = occ
        rows[("mcnet+cma", labeled)] = cma
        rows[("table2-baseline", labeled)] = base
        rows[("table2-both", labeled)] = both
    return rows


def as_list(row):
    return [v for name in METRICS for v in (row[name], row[f"{name}_std"])]


def test_every_entry_matches_the_paper_text(paper_rows):
    checked = 0
    for method in METHODS:
        for labeled in (4, 8, 16, 80):
            row = paper_numbers(method, labeled)
            key = (method, labeled)
            if row is None:
                assert key not in paper_rows
                continue
            assert as_list(row) == pytest.approx(paper_rows[key]), key
            checked += 1
    assert checked == 16


def test_table2_baseline_and_full_rows_equal_table1(paper_rows):
    for labeled in (4, 8, 16):
        assert as_list(paper_numbers("mcnet", labeled)) == pytest.approx(paper_rows[("table2-baseline", labeled)])
        assert as_list(paper_numbers("caml", labeled)) == pytest.approx(paper_rows[("table2-both", labeled)])


def test_headline_numbers_match_reference_notes():
    notes = (SHARED / "REFERENCE_NOTES.md").read_text()
    names = {"V-Net, labeled only": "supervised", "V-Net, all labeled": "supervised",
             "MC-Net (the ablation's baseline)": "mcnet", "CAML": "caml"}
    seen = 0
    for line in notes.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[1] in names:
            labeled = int(cells[0].split()[0])
            row = paper_numbers(names[cells[1]], labeled)
            assert row["dice"] == float(cells[2].split()[0])
            assert [row["jaccard"], row["hd95"], row["asd"]] == [float(c) for c in cells[3:]]
            seen += 1
    assert seen == 8


def test_unknown_rows_are_none():
    assert paper_numbers("caml", 80) is None
    assert paper_numbers("nonsense", 4) is None
    assert paper_numbers("caml", "16")["source"] == "Table 1"
