"""Notebook 6 in a real browser: its training run survives a kernel restart.

JupyterLab + headless Chromium (the server, browser and helpers of tests/test_browser.py): open
notebook 6, run all cells at smoke size (the run is launched as a process, watched, stopped,
resumed and evaluated), restart the kernel, run the two setup cells and the "re-attach" cell, and
check that it reports the finished run. Run alone with
``pytest -m browser tests/test_browser_training.py``.
"""

import json
import os
import re
import time
from pathlib import Path

import pytest
from test_browser import (  # noqa: F401 (browser and jupyter_lab are fixtures)
    ACTIVE,
    _run_all_cells,
    _wait_for_kernel,
    _wait_until_executed,
    browser,
    jupyter_lab,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]

NOTEBOOK = "06_caml_training.ipynb"


def _cell(page, text):
    """The code cell of the open notebook whose source contains ``text``."""
    cells = page.locator(f"{ACTIVE} .jp-CodeCell", has=page.locator(".jp-InputArea", has_text=text))
    assert cells.count() == 1, f"{cells.count()} code cells contain {text!r}"
    return cells.first


def _run_cell(page, cell):
    """Click into the cell's editor and run it with Ctrl+Enter (stays on the cell)."""
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")


def _prompt(cell):
    return cell.locator(".jp-InputPrompt").inner_text().strip()


def _wait_for_prompt(cell, number, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while _prompt(cell) != f"[{number}]:":
        assert time.monotonic() < deadline, f"cell prompt {_prompt(cell)!r}, expected [{number}]:"
        time.sleep(0.3)


def _restart_kernel(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Kernel").first.click()
    item = page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Restart Kernel…?$")).first
    item.wait_for(state="visible", timeout=10_000)
    item.click()
    dialog = page.locator(".jp-Dialog")
    dialog.first.wait_for(timeout=10_000)
    dialog.first.locator(".jp-Dialog-button.jp-mod-accept").click()


def test_the_run_survives_a_kernel_restart(browser, jupyter_lab):  # noqa: F811 (fixtures)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{jupyter_lab}lab/workspaces/training/tree/{NOTEBOOK}?reset",
                  wait_until="domcontentloaded")
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        _wait_for_kernel(page, 90)
        _run_all_cells(page)
        _wait_until_executed(page, 150)
        outputs = " ".join(page.locator(".jp-OutputArea-output").all_inner_texts())
        assert "Traceback" not in outputs, outputs[-3000:]
        assert page.locator(f"{ACTIVE} .widget-hprogress").count() >= 1, "no live progress bar"
        assert "stopped, iteration" in outputs  # the stop cell stopped the run mid-way
        launched = _cell(page, "run = launch.start(config, run_dir)")
        pid = int(re.search(r"pid=(\d+)", launched.locator(".jp-OutputArea").inner_text())[1])

        _restart_kernel(page)
        time.sleep(1.0)
        _wait_for_kernel(page, 60)
        for number, text in enumerate(("the one knob of this notebook", "WATCH_UNTIL = None",
                                       "run = launch.attach(run_dir)"), start=1):
            cell = _cell(page, text)
            _run_cell(page, cell)
            _wait_for_prompt(cell, number)  # numbering restarts at 1: a fresh kernel
        reply = cell.locator(".jp-OutputArea").inner_text()
        assert "Traceback" not in reply, reply
        assert re.search(r"smoke-caml-4L-seed3407: finished, iteration 40 / 40", reply), reply

        # the run folder is the one launched before the restart (resumed once: a second pid)
        run_dir = re.search(r"run folder: (\S+)", outputs)[1]
        record = json.loads((Path(run_dir) / "process.json").read_text())
        assert record["pid"] != pid and "--resume" in record["command"]
    except Exception:
        page.screenshot(path=str(Path(os.environ.get("TMPDIR", "/tmp")) / "browser-training.png"))
        raise
    finally:
        page.close()
