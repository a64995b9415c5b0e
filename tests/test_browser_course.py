"""The course as a learner meets it, in JupyterLab driven by headless Chromium (the server and
helpers of tests/test_browser.py; runs go to ``runs/`` beside the served copy of notebooks/):

* notebooks 4 then 5 with no trained network: 4 trains the short run into runs/short/, and 5
  finds that same run after another folder appeared in runs/;
* an interrupt of the watch cell in notebooks 3 and 6 under *Run All*: one line, no traceback,
  the cells after it do not run, and the run goes on to its end;
* notebook 7 with no run at all (the committed tables show, the rest says what it needs in one
  line), and twice in a row after it evaluated the authors'-network stand-in.

``CAMLKIT_SCREENSHOTS=folder`` keeps screenshots of the figures named in each test.
Run alone with ``pytest -m browser tests/test_browser_course.py``.
"""

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from test_browser import (
    ACTIVE,
    CHROMIUM,
    CHROMIUM_ARGS,
    _run_all_cells,
    _wait_for_kernel,
    screenshot_output,
    serve_lab,
)

import camlkit

pytestmark = [pytest.mark.browser, pytest.mark.timeout(900)]


@pytest.fixture
def page():
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} not found")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium.new_page(viewport={"width": 1400, "height": 1000})
        finally:
            chromium.close()


def _open(page, url, notebook):
    page.goto(f"{url}lab/workspaces/{Path(notebook).stem}/tree/{notebook}?reset", wait_until="domcontentloaded")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    _wait_for_kernel(page, 90)


def _prompts(page):
    """The input prompts of the code cells; a cell whose input is collapsed (an exercise's answer)
    shows none and is not counted."""
    return [p for p in _code_cells(page).locator(".jp-InputPrompt").all_inner_texts() if p.strip()]


def _outputs(page):
    return " ".join(page.locator(f"{ACTIVE} .jp-OutputArea-output").all_inner_texts())


def _run_all(page, url, notebook, timeout_s=300):
    """Open ``notebook``, Run All, wait for every cell; its outputs' text, with no traceback."""
    _open(page, url, notebook)
    _run_all_cells(page)
    _wait_for_all(page, timeout_s)
    return _checked_outputs(page)


def _wait_for_all(page, timeout_s):
    """Until every code cell has run; fails at once, with the outputs, when Run All stopped early
    (a cell failed: the cells after it are never run)."""
    deadline, idle_since = time.monotonic() + timeout_s, None
    while True:
        prompts = _prompts(page)
        if prompts and all(p.strip()[1:-2].strip().isdigit() for p in prompts):
            return
        if any("*" in p for p in prompts):
            idle_since = None
        elif idle_since is None:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 10:
            raise AssertionError(f"Run All stopped early at {prompts}: {_outputs(page)[-3000:]}")
        assert time.monotonic() < deadline, f"cells still running after {timeout_s} s: {prompts}"
        time.sleep(1.0)


def _checked_outputs(page):
    text = _outputs(page)
    assert "Traceback" not in text and not re.search(r"\w+Error: ", text), text[-3000:]
    return text


def _run_all_again(page, timeout_s=300):
    """Run All in the open notebook once more: until every prompt shows a new number."""
    before = _prompts(page)
    _run_all_cells(page)
    deadline = time.monotonic() + timeout_s
    while _prompts(page)[-1] == before[-1]:
        assert time.monotonic() < deadline, "Run All did not reach the last cell"
        time.sleep(1.0)
    _wait_for_all(page, timeout_s)
    return _checked_outputs(page)


def _code_cells(page):
    return page.locator(f"{ACTIVE} .jp-CodeCell")


def _index_of(page, text):
    sources = _code_cells(page).locator(".jp-InputArea").all_inner_texts()
    hits = [i for i, source in enumerate(sources) if text in source]
    assert len(hits) == 1, f"{len(hits)} code cells contain {text!r}"
    return hits[0]


def test_notebooks_4_and_5_use_the_same_short_run(page, tmp_path):
    short = tmp_path / "runs" / "short" / "smoke-caml-4L-seed3407" / "model_final.pth"
    with serve_lab(tmp_path, timeout_s=840) as url:
        text4 = _run_all(page, url, "04_cma.ipynb")
        assert short.is_file(), sorted(str(p) for p in tmp_path.rglob("model_final.pth"))
        assert f"trained: {short}" in text4
        (tmp_path / "runs" / "quick-caml-16L-seed3407").mkdir()  # runs/ gets more: a run just started
        text5 = _run_all(page, url, "05_occ.ipynb")
        assert f"network (run): {short}" in text5  # the same run, not trained again
        assert "trained in" not in text5
    assert not (Path(camlkit.__file__).parent / "runs").exists()  # nothing inside the package


def _interrupt(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    item = page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Interrupt Kernel$")).first
    item.wait_for(state="visible", timeout=10_000)
    item.click()


WATCHED = {  # notebook -> (text of its watch cell, its run folder)
    "03_mutual_learning.ipynb": ("MC-Net has no OCC term", "smoke-mcnet-4L-seed3407"),
    "06_caml_training.ipynb": ("launch.watch(run, until_iteration=WATCH_UNTIL)", "smoke-caml-4L-seed3407"),
}


@pytest.mark.parametrize("notebook", sorted(WATCHED))
def test_an_interrupted_watch_stops_run_all_and_not_the_run(page, tmp_path, notebook):
    watch_text, run_name = WATCHED[notebook]
    run_dir = tmp_path / "runs" / run_name
    with serve_lab(tmp_path) as url:
        _open(page, url, notebook)
        _run_all_cells(page)
        deadline = time.monotonic() + 180
        while not (run_dir / "process.json").is_file():  # the launch cell has started the run
            assert time.monotonic() < deadline, "no run was launched"
            time.sleep(0.1)
        pid = json.loads((run_dir / "process.json").read_text())["pid"]
        os.kill(pid, signal.SIGSTOP)  # hold the run still while the watch cell waits for it
        try:
            index = _index_of(page, watch_text)
            watch = _code_cells(page).nth(index)
            watch.locator(".widget-hprogress").first.wait_for(timeout=120_000)
            assert watch.locator(".jp-InputPrompt").inner_text().strip() == "[*]:"
            _interrupt(page)
            deadline = time.monotonic() + 60
            while any("*" in p for p in _code_cells(page).locator(".jp-InputPrompt").all_inner_texts()):
                assert time.monotonic() < deadline, "cells still queued after the interrupt"
                time.sleep(0.5)
            said = watch.locator(".jp-Cell-outputArea").inner_text()
            assert "stopped watching" in said and "the run goes on" in said, said
            assert "Traceback" not in _outputs(page), _outputs(page)[-3000:]
            prompts = _code_cells(page).locator(".jp-InputPrompt").all_inner_texts()
            assert all(p.strip() in ("[ ]:", "[]:", "") for p in prompts[index + 1:]), prompts  # "": collapsed
        finally:
            os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 300
        while not (run_dir / "model_final.pth").is_file():  # the run goes on to its end
            assert time.monotonic() < deadline, "the run did not finish after the interrupt"
            time.sleep(1.0)
        assert "stop_requested" not in json.loads((run_dir / "process.json").read_text())


def test_notebook_7_with_no_run_at_all(page, tmp_path):
    with serve_lab(tmp_path, smoke=False) as url:
        text = _run_all(page, url, "07_results.ipynb")
        assert f"no finished run in {tmp_path / 'runs'}" in text
        for needs in ("your runs' tables: needs", "per case: needs", "3-D view: needs", "slices: needs"):
            assert needs in text, needs
        assert "Table 2 — ablation" in text and text.count("Table 1 — LA") == 2  # mini Table 2, 5 seeds
        assert "labeled: not in" in text  # the authors' networks: where to get them, one line each
        screenshot_output(page, "MINI_DIR = RESULTS", "nb07-no-run")


def test_notebook_7_twice_after_the_authors_evaluation(page, tmp_path):
    evaluation = tmp_path / "runs" / "authors-16L" / "summary.json"
    with serve_lab(tmp_path, standin=True, timeout_s=840) as url:
        first = _run_all(page, url, "07_results.ipynb")
        assert evaluation.is_file() and "2 cases in" in first and "s per case on this machine" in first
        stamp = evaluation.stat().st_mtime_ns
        for _ in range(2):
            again = _run_all_again(page)
            assert "evaluating" not in again and "same evaluation as" not in again
            assert "authors-16L" in again
        assert evaluation.stat().st_mtime_ns == stamp  # read again, not evaluated again
