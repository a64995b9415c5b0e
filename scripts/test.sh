#!/usr/bin/env bash
# The whole camlkit test suite on a fresh machine: installs what it needs into .venv, then runs
# ruff and lint-imports, then the unit tests, the end-to-end tests, every notebook (nbval, smoke
# sizes) and the real-browser test. Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned: an unpinned torch can pull a multi-GB CUDA build
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e ".[test]"

# the browser test drives Debian's Chromium through Playwright (never `playwright install`)
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
fi

export CAMLKIT_SMOKE=1
# one OpenMP thread per process: tests start subprocesses and kernels side by side, and two
# spinning OpenMP pools on 2 cores can make a run tens of times slower
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
export CAMLKIT_DATA=${CAMLKIT_DATA:-$(cd .. && pwd)/shared/LA}
# the linter first (configured in pyproject.toml): a finding stops the run before the long tests
.venv/bin/ruff check camlkit tests bench data_scripts notebooks
# then the layers (pyproject.toml's [tool.importlinter]): no module imports from a room above it
.venv/bin/lint-imports
# two workers (TEST_WORKERS=1 for one); --dist loadfile keeps each file, and so each notebook's
# cells, on one worker in order: 17 min -> 11 min on the project's 2-core machine
exec .venv/bin/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider \
    -n "${TEST_WORKERS:-2}" --dist loadfile "$@"
