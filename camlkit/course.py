"""Notebook helpers: the run-size switch (``CAMLKIT_SMOKE``), the one rule that finds the LA
data, and :func:`show`, which puts camlkit's own code under the equation it implements.

Every notebook starts with ``course.smoke()`` (CI runs them at their smallest size) and
``course.find_data_dir()``; the training command's ``--data`` default follows the same rule.
The method notebooks call ``course.show(occ.occ_loss)`` where an equation is explained: the
learner reads the library's code, not a copy of it (the d2l habit).
"""

from __future__ import annotations

import html
import inspect
import os
import reprlib
import textwrap
from pathlib import Path

from camlkit.errors import CamlkitError

SMOKE_ENV = "CAMLKIT_SMOKE"  # CAMLKIT_SMOKE=1: every notebook runs at its smallest size (CI)
DATA_ENV = "CAMLKIT_DATA"  # where the preprocessed LA folder is, if not in a default place
DATA_PLACES = ("data/LA", "../shared/LA")  # tried in this order, see find_data_dir


def smoke() -> bool:
    """True when the environment asks for smoke-sized notebook runs (``CAMLKIT_SMOKE=1``)."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def data_candidates(path=None) -> list[Path]:
    """The folders :func:`find_data_dir` tries, in order.

    ``path`` if given, else ``$CAMLKIT_DATA`` if set (nothing else then: a wrong setting is an
    error, not a silent fallback), else ``data/LA`` and then ``../shared/LA``, each relative to
    the working folder, its parent (a notebook runs in ``notebooks/``) and the repository root.
    """
    if path is not None or os.environ.get(DATA_ENV):
        return [Path(path if path is not None else os.environ[DATA_ENV]).expanduser()]
    repo = Path(__file__).resolve().parents[1]
    bases = dict.fromkeys([Path.cwd(), Path.cwd().parent, repo])
    return [Path(os.path.normpath(base / place)) for place in DATA_PLACES for base in bases]


def find_data_dir(path=None) -> Path:
    """The preprocessed LA folder (the one holding ``train.list``): see :func:`data_candidates`.

    Raises a CamlkitError listing every place it looked.
    """
    candidates = data_candidates(path)
    for candidate in candidates:
        if (candidate / "train.list").is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise CamlkitError(f"no LA data folder (with train.list) found; looked in: {looked}. "
                       f"Set {DATA_ENV}=/path/to/LA or put the preprocessed release in data/LA.")


# ----------------------------------------------------------------------------- showing the code

class Source:
    """The source of one function, method or class, displayable in a notebook.

    ``header`` says where it lives ("camlkit/occ.py · occ_loss (lines 206-218)"), ``code`` is the
    dedented source, ``first``/``last`` its line numbers in ``path``. A notebook renders it
    syntax-highlighted (``_repr_html_``, numbered as in the file); a terminal, nbval and any
    front end without HTML get the plain text (``repr``).
    """

    def __init__(self, name: str, path: Path, shown_path: str, first: int, code: str):
        self.name, self.path, self.shown_path, self.first, self.code = name, path, shown_path, first, code
        self.last = first + len(code.splitlines()) - 1

    @property
    def header(self) -> str:
        return f"{self.shown_path} · {self.name} (lines {self.first}-{self.last})"

    def __repr__(self) -> str:
        return f"# {self.header}\n{self.code.rstrip()}"

    def _repr_html_(self):
        try:  # pygments comes with IPython; without it the front end shows the plain text
            from pygments import highlight
            from pygments.formatters import HtmlFormatter
            from pygments.lexers import PythonLexer
        except ImportError:
            return None
        # inline styles (noclasses): no stylesheet needed in JupyterLab, VS Code or classic Jupyter;
        # dark text on a light box whatever the notebook's theme, line numbers as in the file
        body = highlight(self.code, PythonLexer(), HtmlFormatter(
            noclasses=True, style="friendly", linenos="inline", linenostart=self.first))
        # long lines scroll sideways instead of wrapping mid-word ("torch.Ten / sor")
        body = body.replace('<pre style="', '<pre style="white-space: pre; word-break: normal; '
                            'overflow-x: auto; ', 1)
        head = f'<div style="font-family: monospace; color: #555">{html.escape(self.header)}</div>'
        return (f'<div class="camlkit-source" style="color: #222; background: #f0f0f0; '
                f'padding: 4px 8px">{head}{body}</div>')


def show(obj) -> Source:
    """The source of ``obj`` (a function, method or class defined in a file), for display.

    The last line of a notebook cell, ``course.show(cps.sharpen)``, renders it highlighted with
    a header naming the file and lines. Anything without source (a builtin, a number, something
    typed at a prompt) is a CamlkitError naming it.
    """
    target = inspect.unwrap(getattr(obj, "__func__", obj))  # a bound method shows its function
    try:
        lines, first = inspect.getsourcelines(target)
        path = Path(inspect.getsourcefile(target)).resolve()
    except (TypeError, OSError):
        what = " ".join(reprlib.repr(obj).split())  # one line, however long repr(obj) is
        raise CamlkitError(f"course.show: no source code for {type(obj).__name__} {what}; pass a "
                           "function, method or class defined in a file, e.g. course.show(occ.occ_loss)") from None
    repo = Path(__file__).resolve().parents[1]  # camlkit/... shows relative to the checkout
    shown_path = path.relative_to(repo).as_posix() if path.is_relative_to(repo) else str(path)
    name = getattr(target, "__qualname__", getattr(target, "__name__", type(obj).__name__))
    return Source(name, path, shown_path, first, textwrap.dedent("".join(lines)))
