#!/usr/bin/env bash
# The whole camlkit test suite on a fresh machine: installs what it needs into .venv, finds (or
# fetches) the LA data, then runs ruff and lint-imports, then the unit tests, the end-to-end tests,
# every notebook (nbval, smoke sizes) and the real-browser test. Usage: bash scripts/test.sh [extra pytest arguments]
#   CAMLKIT_DATA=DIR   the preprocessed LA folder to test on; unset: data/LA in the repository,
#                      fetched there first by camlkit's own downloader (files already present
#                      are verified against their SHA-256 and kept, missing or damaged ones fetched)
#   TEST_WORKERS=N     pytest workers (default 2; 1 for one)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned (scripts/torch.txt): an unpinned torch can pull a multi-GB CUDA build
.venv/bin/python -m pip install -q -r scripts/torch.txt
.venv/bin/python -m pip install -q -e ".[test]"

# the browser test drives Debian's Chromium through Playwright (never `playwright install`)
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi

# the LA data: $CAMLKIT_DATA when set; else data/LA, verified (and completed) by `camlkit download`
if [ -z "${CAMLKIT_DATA:-}" ]; then
    echo "test.sh: CAMLKIT_DATA is not set: the LA release in data/LA (233 MB on the first run)"
    .venv/bin/camlkit download --dest data/LA
    CAMLKIT_DATA=$PWD/data/LA
fi
export CAMLKIT_DATA
export CAMLKIT_SMOKE=1
# one OpenMP thread per process: tests start subprocesses and kernels side by side, and two
# spinning OpenMP pools on 2 cores can make a run tens of times slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# the linter first (configured in pyproject.toml): a finding stops the run before the long tests
.venv/bin/ruff check conftest.py camlkit tests bench data_scripts notebooks
# then the layers (pyproject.toml's [tool.importlinter]): no module imports from a room above it
.venv/bin/lint-imports
# two workers (TEST_WORKERS=1 for one); --dist loadfile keeps each file, and so each notebook's
# cells, on one worker in order, but for the three longest files (the notebooks run twice, the
# browser tests), whose tests go to whichever worker is free (conftest.py)
exec .venv/bin/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider \
    -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
