"""Download the preprocessed LA release (yulequan/UA-MT, data/) into data/LA and verify it.

    python data_scripts/download_la.py [--dest DIR] [--base-url URL] [--source DIR] [--retries N]

The same as ``camlkit download``: a thin wrapper over camlkit.data.download (see its docstring);
exit status 0 when every file verified. camlkit must be installed (``pip install -e .``).
"""

import sys

from camlkit.cli import run_script

if __name__ == "__main__":
    sys.exit(run_script("download"))
