"""camlkit's imports, read as a maintainer reads them: through grimp, import-linter's engine, which
counts the imports inside functions too. No cycle among camlkit's modules; an import inside a
function is rare and says why it is there; the layers of pyproject.toml's import-linter contract
hold (scripts/test.sh runs ``lint-imports`` too). (``import camlkit`` changes nothing:
tests/test_threads.py.)"""

import ast
import subprocess
import sys
from functools import cache
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
MOST_INNER_IMPORTS = 10  # camlkit imports inside functions, in the whole package


@cache
def graph():
    return grimp.build_graph("camlkit", cache_dir=None)


def cycles(g) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each a cycle or more."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in sorted(g.find_modules_directly_imported_by(module)):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while not component or component[-1] != module:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(g.modules):
        if module not in index:
            visit(module)
    return found


def module_path(module: str, root=ROOT) -> Path:
    path = root / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def function_lines(path: Path) -> set[int]:
    """The line numbers inside a function or method of a file."""
    lines = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines.update(range(node.body[0].lineno, node.end_lineno + 1))
    return lines


def inner_imports(g, root=ROOT) -> list[tuple[str, int, str]]:
    """(file, line, imported module) of every import of the package written inside a function."""
    found = set()
    for importer in sorted(g.modules):
        path = module_path(importer, root)
        inside = function_lines(path)
        for imported in g.find_modules_directly_imported_by(importer):
            for detail in g.get_import_details(importer=importer, imported=imported):
                if detail["line_number"] in inside:
                    found.add((str(path.relative_to(root)), detail["line_number"], imported))
    return sorted(found)


def test_no_import_cycle_among_camlkit_modules():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    g = grimp.ImportGraph()
    for module in ("a", "a.b", "a.c", "a.d"):
        g.add_module(module)
    g.add_import(importer="a.b", imported="a.c")
    g.add_import(importer="a.c", imported="a.b")
    g.add_import(importer="a.d", imported="a.b")
    assert cycles(g) == [["a.b", "a.c"]]


def test_imports_inside_functions_are_few_and_say_why():
    """An import inside a function hides an arrow of the graph: allowed for a cost measured and
    stated in a comment on the lines just above it (camlkit's optional dependencies are not
    camlkit modules and are not counted)."""
    found = inner_imports(graph())
    assert len(found) <= MOST_INNER_IMPORTS, found
    for file, line, imported in found:
        above = (ROOT / file).read_text().splitlines()[max(0, line - 4):line]
        assert any(text.strip().startswith("#") or "  # " in text for text in above), \
            f"{file}:{line} imports {imported} inside a function without a comment saying why"


def test_inner_imports_and_cycles_are_found(tmp_path, monkeypatch):
    """The counter sees an import inside a function, and the cycle it hides."""
    package = tmp_path / "stairs"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    x = 1\n    from stairs.high import g\n    return g, x\n")
    (package / "high.py").write_text("from stairs.low import f\n\n\ndef g():\n    return f\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    g = grimp.build_graph("stairs", cache_dir=None)
    assert inner_imports(g, tmp_path) == [("stairs/low.py", 3, "stairs.high")]
    assert cycles(g) == [["stairs.high", "stairs.low"]]


def test_the_import_contracts_hold():
    """pyproject.toml's [tool.importlinter] contracts: the layers, the method kept apart."""
    shown = subprocess.run([str(Path(sys.executable).with_name("lint-imports"))], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert shown.returncode == 0, shown.stdout[-2000:] + shown.stderr[-2000:]
    assert "0 broken" in shown.stdout
