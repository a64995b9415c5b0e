"""Checks on the committed notebooks that need no kernel (the notebooks themselves run under nbval:
``pytest --nbval-lax --nbval-current-env notebooks``, smoke-sized through notebooks/conftest.py).

* committed without outputs or execution counts (small diffs, no stale results), except the
  ``# NBVAL_CHECK_OUTPUT`` cells: they keep their (small, text, run-size independent) smoke-run
  output as the reference nbval compares against — nbval checks only cells stored as run;
* the d2l rule: notebooks import camlkit and define no functions or classes of their own;
* one clearly marked run-size knob that ``CAMLKIT_SMOKE=1`` overrides through ``course.smoke()``;
* every notebook has at least one ``# NBVAL_CHECK_OUTPUT`` cell and one plain ``assert``;
* the method notebooks (3-6) show camlkit's own code where they explain its equations
  (``course.show(...)`` cells, each after a markdown cell saying what to look for).

``python tests/test_notebooks.py [NOTEBOOK ...]`` runs the notebooks at smoke size and stores them
stripped, keeping the checked cells' outputs (run it before committing a notebook).
"""

import ast
import importlib
import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def code_cells(path):
    return [("".join(c["source"]), c) for c in json.loads(path.read_text())["cells"]
            if c["cell_type"] == "code"]


CHECK = "# NBVAL_CHECK_OUTPUT"


def is_checked(source):
    return source.startswith(CHECK)


def strip(path):
    """Remove outputs, execution counts and run metadata from a notebook file, in place; checked
    cells keep their stream outputs, numbered 1, 2, ... so that nbval compares them."""
    nb = json.loads(path.read_text())
    count = 0
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            if is_checked("".join(cell["source"])) and cell["outputs"]:
                count += 1
                cell["outputs"] = [o for o in cell["outputs"] if o["output_type"] == "stream"]
                cell["execution_count"] = count
            else:
                cell["outputs"], cell["execution_count"] = [], None
        cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items()
                            if k in ("tags", "jupyter")}
    nb["metadata"].pop("widgets", None)
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def test_there_are_seven_notebooks_in_order():
    assert [p.name[:3] for p in NOTEBOOKS] == [f"{i:02d}_" for i in range(1, 8)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_stripped_but_checked_cells_keep_their_reference(path):
    for source, cell in code_cells(path):
        if is_checked(source):
            assert cell["outputs"] and cell["execution_count"] is not None, (
                f"{path.name}: a checked cell has no stored reference output (nbval would skip "
                "it); run `python tests/test_notebooks.py`")
            assert all(o["output_type"] == "stream" for o in cell["outputs"])
        else:
            assert cell["outputs"] == [] and cell["execution_count"] is None, (
                f"{path.name}: a cell has outputs; run `python tests/test_notebooks.py`")
    assert path.stat().st_size < 50_000  # 05_occ: 47.1 kB with its code cells (course.show) and exercises


def is_exercise(cell):
    """A cell of the exercise section at a notebook's end (cell tag "exercise" or "exercise-solution")."""
    return bool({"exercise", "exercise-solution"} & set(cell.get("metadata", {}).get("tags", ())))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_imports_camlkit_and_defines_nothing(path):
    """The d2l rule; its one exception: an exercise cell defines the learner's my_<exercise>, a stub."""
    from camlkit.exercises import EXERCISES

    sources = [s for s, _ in code_cells(path)]
    assert any("import camlkit" in s or "from camlkit" in s for s in sources)
    for source, cell in code_cells(path):
        tree = ast.parse("\n".join(line for line in source.splitlines()
                                    if not line.lstrip().startswith(("%", "!"))))
        defined = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
        if is_exercise(cell) and len(defined) == 1:
            name = defined[0].name.removeprefix("my_")
            assert name in EXERCISES and EXERCISES[name].notebook == path.stem, (path.name, defined[0].name)
            assert [type(s) for s in defined[0].body] == [ast.Expr, ast.Expr], (
                f"{path.name}: exercise {defined[0].name} is committed with a body; keep the docstring and `...`")
            assert defined[0].body[1].value.value is Ellipsis
            continue
        names = [n.name for n in defined]
        assert not names, f"{path.name} defines {names}: put it in camlkit and import it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_one_marked_run_size_knob_that_smoke_overrides(path):
    sources = [s for s, _ in code_cells(path)]
    knob_cells = [s for s in sources if "the one knob of this notebook" in s]
    assert len(knob_cells) == 1, f"{path.name}: expected exactly one marked knob cell"
    assert "course.smoke()" in knob_cells[0]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_has_checked_cells_and_asserts(path):
    sources = [s for s, _ in code_cells(path)]
    assert any("assert " in s for s in sources), f"{path.name}: no assert anywhere"
    if path.name not in ("06_caml_training.ipynb", "07_results.ipynb"):  # run-size dependent
        assert any(s.startswith("# NBVAL_CHECK_OUTPUT") for s in sources)


# method notebook -> the camlkit code it must show (course.show), by the names the notebook uses
SHOWN = {
    "02_vnet.ipynb": {"losses.dice_loss"},
    "03_mutual_learning.ipynb": {"cps.sharpen", "cps.cps_loss"},
    "04_cma.ipynb": {"CMA.forward"},
    "05_occ.ipynb": {"occ.omni_correlation", "occ.correlation_logits", "occ.occ_loss",
                     "occ.MemoryBank.update", "step.occ_part", "occ.MemoryBank.sample", "occ.sample_unlabeled"},
    "06_caml_training.ipynb": {"step.caml_step", "ramps.sigmoid_rampup", "ramps.loss_weight"},
}


def imported_names(sources):
    """{name: module or object} bound by the import statements of the notebook's code cells."""
    names = {}
    python = [line for source in sources for line in source.splitlines()
              if not line.lstrip().startswith(("%", "!"))]  # IPython magics and shell lines
    for node in ast.walk(ast.parse("\n".join(python))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                names[alias.asname or top] = importlib.import_module(alias.name if alias.asname else top)
        elif isinstance(node, ast.ImportFrom) and node.module:
            module = importlib.import_module(node.module)
            for alias in node.names:
                value = getattr(module, alias.name, None)
                names[alias.asname or alias.name] = (value if value is not None else
                                                     importlib.import_module(f"{node.module}.{alias.name}"))
    return names


@pytest.mark.parametrize("name", sorted(SHOWN))
def test_method_notebooks_show_the_code_of_their_equations(name):
    from camlkit import course

    cells = json.loads((NOTEBOOK_DIR / name).read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells]
    shown = {}
    for k, cell in enumerate(cells):
        calls = re.findall(r"course\.show\(([\w.]+)\)", sources[k]) if cell["cell_type"] == "code" else []
        for dotted in calls:
            assert cells[k - 1]["cell_type"] == "markdown", (
                f"{name}: course.show({dotted}) needs a markdown cell before it saying what to look for")
            shown[dotted] = k
    missing = SHOWN[name] - set(shown)
    assert not missing, f"{name} no longer shows the code of {sorted(missing)} (course.show)"
    names = imported_names([s for s, c in zip(sources, cells) if c["cell_type"] == "code"])
    for dotted in shown:
        head, *rest = dotted.split(".")
        assert head in names, f"{name}: course.show({dotted}) but the notebook imports no {head!r}"
        obj = names[head]
        for attr in rest:
            obj = getattr(obj, attr)
        source = course.show(obj)  # a CamlkitError if it has no source
        assert source.shown_path.startswith("camlkit/"), (dotted, source.header)


AUTHORS_PATH = ("04_cma.ipynb", "05_occ.ipynb", "07_results.ipynb")  # as notebooks/conftest.py


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_runs_twice_in_a_row(path, tmp_path, monkeypatch, la_dir):
    """A learner runs a cell again: each code cell, in order, is executed twice before the next
    one (smoke size, runs in a temporary CAMLKIT_RUNS, the authors'-network stand-in in a
    temporary cache for the notebooks on that path). A cell that overwrites a name an earlier
    cell needs, or deletes what it deletes twice, fails here.

    The cells go to a kernel through jupyter_client, not nbclient: nbclient waits its whole
    timeout after a cell that draws into an ipywidgets Output run a second time (it never sees
    the cell's idle message), which JupyterLab does not; here a cell is done when its reply
    comes."""
    import nbformat
    from jupyter_client.manager import start_new_kernel
    from standins import write_standin

    from camlkit.runtime.weights import default_dest, entry

    if path.name in AUTHORS_PATH:
        write_standin(default_dest(tmp_path / "torch") / entry(16).name, bright_is_atrium=True)
    for name, value in (("CAMLKIT_SMOKE", "1"), ("OMP_NUM_THREADS", "1"), ("CAMLKIT_DATA", str(la_dir)),
                        ("CAMLKIT_RUNS", str(tmp_path / "runs")), ("TORCH_HOME", str(tmp_path / "torch"))):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CAMLKIT_CHECKPOINT", raising=False)
    cells = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(path.parent))
    try:
        for number, source in enumerate(cells, 1):
            for time in ("first", "second"):
                reply = client.execute_interactive(source, timeout=600, output_hook=lambda _m: None)
                content = reply["content"]
                assert content["status"] == "ok", (
                    f"{path.name}, code cell {number}, run a {time} time: "
                    f"{content.get('ename')}: {content.get('evalue')}\n{source[:300]}")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def refresh(path, timeout_s=600):
    """Execute a notebook at smoke size (cwd notebooks/), store it, then strip it."""
    import os

    import nbformat
    from nbclient import NotebookClient

    os.environ["CAMLKIT_SMOKE"], os.environ["OMP_NUM_THREADS"] = "1", "1"
    nb = nbformat.read(path, as_version=4)
    # iopub_timeout: after a cell that drew into an ipywidgets Output, nbclient never sees the
    # idle message and would wait the whole timeout; 5 s is plenty for the text outputs kept
    NotebookClient(nb, timeout=timeout_s, iopub_timeout=5, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    strip(path)


if __name__ == "__main__":
    for nb_path in [Path(a).resolve() for a in sys.argv[1:]] or NOTEBOOKS:
        refresh(nb_path)
        print("refreshed", nb_path)
