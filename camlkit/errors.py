"""The one exception type camlkit raises for bad input.

Every message is a single line that names the file or value at fault and says what was
expected, so the command-line tools can print it as ``camlkit <command>: error: <message>``
and exit with a non-zero status.
"""


class CamlkitError(ValueError):
    """Bad input from the user: a file, a value or a configuration camlkit cannot use."""
