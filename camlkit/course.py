"""Notebook helpers: the run-size switch (``CAMLKIT_SMOKE``), the one rule that finds the LA
data, and :func:`show`, which puts camlkit's own code under the equation it implements.

Every notebook starts with ``course.smoke()`` (CI runs them at their smallest size) and
``course.find_data_dir()`` (camlkit.data.folder, the rule ``camlkit train`` and ``camlkit
evaluate`` follow when ``--data`` is not given). ``course.share_cpu()`` is a kernel's
CPU-sharing policy (camlkit.runtime.threads; camlkit.lab.runs.train_short applies it before it
trains in the kernel).
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

from camlkit import exercises
from camlkit.data.folder import DATA_ENV, data_candidates, find_data_dir  # noqa: F401 (the notebooks' names)
from camlkit.errors import CamlkitError
from camlkit.runtime import threads

SMOKE_ENV = "CAMLKIT_SMOKE"  # CAMLKIT_SMOKE=1: every notebook runs at its smallest size (CI)


def smoke() -> bool:
    """True when the environment asks for smoke-sized notebook runs (``CAMLKIT_SMOKE=1``)."""
    return os.environ.get(SMOKE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def share_cpu() -> dict:
    """The CPU-sharing policy of a notebook kernel (camlkit.runtime.threads): the processes it
    starts get the short spin, and, as torch is loaded already, one CPU is left free of this
    kernel's threads. A setting the user made is left alone. Returns the settings it made."""
    return threads.share_cpu()


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


# ----------------------------------------------------------------------------- exercises

def check(fn, name: str) -> None:
    """Check a learner's function against camlkit's for exercise ``name``: prints one line per case
    saying what differs (camlkit.exercises), e.g. ``course.check(my_occ_loss, "occ_loss")``."""
    print(exercises.report(fn, name))


def solution(name: str) -> Source:
    """camlkit's own code for exercise ``name``, the reference course.check compares with."""
    return show(exercises.find(name).reference)
