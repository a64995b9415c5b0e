"""Raw 2018 LA challenge NRRD files -> the standard preprocessed HDF5 layout.

    python data_scripts/preprocess_la.py RAW_DIR OUT_DIR [--seed N]

The same as ``camlkit preprocess``: a thin wrapper over camlkit.data.preprocess (see its docstring
for the steps). camlkit must be installed (``pip install -e .``).
"""

import sys

from camlkit.cli import run_script

if __name__ == "__main__":
    sys.exit(run_script("preprocess"))
