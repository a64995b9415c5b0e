"""The one exception type camlkit raises for bad input.

Every message is a single line that names the file or value at fault and says what was
expected, so the command-line tools can print it as ``camlkit <command>: error: <message>``
and exit with a non-zero status.
"""


class CamlkitError(ValueError):
    """Bad input from the user: a file, a value or a configuration camlkit cannot use.

    In a notebook (IPython) it shows as its one line, not a traceback through camlkit's code;
    the cell still fails, so *Run All* stops there."""

    def _render_traceback_(self):  # IPython's hook for what a failed cell shows
        return [f"{type(self).__name__}: {self}"]


class Stopped(KeyboardInterrupt):
    """Kernel > Interrupt reached a camlkit cell that says, in its message, what stopped and what
    goes on (``stopped watching; the run goes on``). A KeyboardInterrupt, so that Jupyter's *Run
    All* halts at this cell instead of going on to cells that stop, delete or train; in a notebook
    it shows as its one line, without a traceback."""

    def _render_traceback_(self):
        return [str(self)]
