"""``python -m camlkit.cli``: the ``camlkit`` command (the form launched runs record)."""

import sys

from camlkit.cli import main

sys.exit(main())
