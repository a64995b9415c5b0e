"""Notebook 7's evaluation of the authors' networks on a CPU: one network per run of its cell,
then the time the next one would take at the time just measured; running the cell again
evaluates the next network, and a third run evaluates nothing more (each evaluation is kept).
The notebook's own cells run in a real kernel (jupyter_client), smoke size, with two tiny
stand-ins in the authors' layout in a temporary cache."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_results.ipynb"


def cell_with(text):
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "code"]
    found = ["".join(c["source"]) for c in cells if text in "".join(c["source"])]
    assert len(found) == 1, f"{len(found)} code cells of {NOTEBOOK.name} hold {text!r}"
    return found[0]


def run(client, source):
    """Execute ``source``; return its printed text (the cell must succeed)."""
    printed = []

    def keep(message):
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])

    reply = client.execute_interactive(source, timeout=600, output_hook=keep)
    content = reply["content"]
    assert content["status"] == "ok", f"{content.get('ename')}: {content.get('evalue')}"
    return "".join(printed)


@pytest.mark.slow
def test_one_network_per_run_on_a_cpu(tmp_path, monkeypatch, la_dir):
    from jupyter_client.manager import start_new_kernel
    from standins import write_standin

    from camlkit.runtime.weights import default_dest, entry

    for n in (4, 16):
        write_standin(default_dest(tmp_path / "torch") / entry(n).name, seed=n)
    for name, value in (("CAMLKIT_SMOKE", "1"), ("OMP_NUM_THREADS", "1"), ("CAMLKIT_DATA", str(la_dir)),
                        ("CAMLKIT_RUNS", str(tmp_path / "runs")), ("TORCH_HOME", str(tmp_path / "torch")),
                        ("CUDA_VISIBLE_DEVICES", "")):
        monkeypatch.setenv(name, value)
    setup, authors = cell_with("RUN_SIZE = "), cell_with("ONE_AT_A_TIME = ")
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(NOTEBOOK.parent))
    try:
        run(client, setup)
        run(client, "run_dirs = []")  # no run of our own: notebook 7 from zero
        first = run(client, authors)
        assert re.search(r"^ 4 labeled: evaluating caml_la_4labeled", first, re.M), first
        assert re.search(r"^ 8 labeled: not in ", first, re.M), first
        per_case = float(re.search(r"^ 4 labeled: 2 cases in \d+ s, ([0-9.]+) s per case", first, re.M)[1])
        waiting = re.search(r"^16 labeled: not evaluated yet; about (\d+) min at the ([0-9.]+) s per case "
                            r"just measured: run this cell again to evaluate it$", first, re.M)
        assert waiting, first
        assert float(waiting[2]) == pytest.approx(per_case, abs=0.051)
        assert int(waiting[1]) == round(20 * float(waiting[2]) / 60)
        assert not (tmp_path / "runs" / "authors-16L").exists()

        second = run(client, authors)
        assert "4 labeled: evaluating" not in second  # kept, read again
        assert re.search(r"^16 labeled: evaluating caml_la_16labeled", second, re.M), second
        assert (tmp_path / "runs" / "authors-16L" / "summary.json").is_file()

        third = run(client, authors)
        assert "evaluating" not in third and "not evaluated yet" not in third, third
        assert run(client, "print(len(authors_dirs))").strip() == "2"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
