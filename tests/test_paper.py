"""camlkit/paper.py against the paper's Tables 1 and 2 and the headline numbers, as transcribed in
tests/data/ (paper_tables.tsv, headline_numbers.tsv; tests/data/README.md says where they came from)."""

import csv
from pathlib import Path

import pytest

from camlkit.paper import METHODS, METRICS, paper_numbers

DATA = Path(__file__).resolve().parent / "data"
TABLE1 = {"V-Net": "supervised", "MC-Net": "mcnet", "ours": "caml"}  # the paper's row names
TABLE2 = {"baseline": "table2-baseline", "baseline+OCC": "mcnet+occ", "baseline+CMA": "mcnet+cma",
          "baseline+OCC+CMA": "table2-both"}


def read_tsv(path):
    """The rows of a tab-separated file under tests/data, its '#' lines (where it came from) skipped."""
    with open(path, newline="") as f:
        return list(csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t"))


@pytest.fixture(scope="module")
def paper_rows():
    """(method, labeled) -> 8 numbers (mean, std alternating) as printed in the paper."""
    rows = {}
    for row in read_tsv(DATA / "paper_tables.tsv"):
        names = TABLE1 if row["table"] == "Table 1" else TABLE2
        rows[(names[row["row"]], int(row["labeled"]))] = [float(row[f"{m}{s}"]) for m in METRICS
                                                          for s in ("", "_std")]
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


def test_headline_numbers_match_the_second_transcription():
    names = {"V-Net": "supervised", "MC-Net": "mcnet", "CAML": "caml"}
    rows = read_tsv(DATA / "headline_numbers.tsv")
    for line in rows:
        row = paper_numbers(names[line["method"]], int(line["labeled"]))
        assert [row[m] for m in METRICS] == [float(line[m]) for m in METRICS], line
    assert len(rows) == 8


def test_unknown_rows_are_none():
    assert paper_numbers("caml", 80) is None
    assert paper_numbers("nonsense", 4) is None
    assert paper_numbers("caml", "16")["source"] == "Table 1"
