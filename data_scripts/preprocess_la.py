"""Raw 2018 LA challenge NRRD files -> the standard preprocessed HDF5 layout.

    python data_scripts/preprocess_la.py RAW_DIR OUT_DIR [--seed N]

A thin wrapper over camlkit.preprocess (see its docstring for the steps).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from camlkit.preprocess import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
