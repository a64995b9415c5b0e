"""Download the preprocessed LA release (yulequan/UA-MT, data/) into data/LA and verify it.

    python data_scripts/download_la.py [--dest DIR] [--base-url URL] [--source DIR] [--retries N]

A thin wrapper over camlkit.download (see its docstring); exit status 0 when every file verified.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from camlkit.download import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
