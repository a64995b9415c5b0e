#!/usr/bin/env bash
# The CPU mini Table 2 (results/mini_table2/): the `mini` preset, 4 labeled cases, three methods
# (labeled-only V-Net, MC-Net, CAML) x three seeds, then one table of mean ± std over the seeds.
# Usage: bash scripts/mini_table2.sh        (after scripts/quickstart.sh has installed camlkit)
#   JOBS=2       runs side by side (one thread each); default 1 (all cores to one run)
#   SEEDS="3407 1 2"   METHODS="caml mcnet supervised"   RUNS=runs   CAMLKIT_DATA=DIR
#   RESULTS=DIR  where the table and each run's small files are copied (default: none)
# A finished run (summary.json present) is kept; a stopped one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

CAMLKIT=${CAMLKIT:-.venv/bin/camlkit}
JOBS=${JOBS:-1}
SEEDS=${SEEDS:-3407 1 2}
METHODS=${METHODS:-caml mcnet supervised}
RUNS=${RUNS:-runs}
DATA=${CAMLKIT_DATA:-data/LA}
[ -d "$DATA" ] || DATA=../shared/LA

one_run() {  # method seed
    local run="$RUNS/mini-$1-4L-seed$2"
    local args=(train --preset mini --method "$1" --seed "$2" --data "$DATA" --out "$run" --quiet)
    if [ -f "$run/summary.json" ]; then
        echo "mini_table2: $run is finished"; return 0
    elif [ -f "$run/checkpoints/last.pth" ]; then
        args+=(--resume)
    elif [ -e "$run" ]; then
        args+=(--overwrite)
    fi
    local start=$SECONDS
    if [ "$JOBS" -gt 1 ]; then
        OMP_NUM_THREADS=1 "$CAMLKIT" "${args[@]}"
    else
        "$CAMLKIT" "${args[@]}"
    fi
    echo "mini_table2: $run finished in $((SECONDS - start)) s"
}
export -f one_run
export CAMLKIT JOBS RUNS DATA

# the slowest runs first, so that two lanes end together
for seed in $SEEDS; do for method in $METHODS; do echo "$method $seed"; done; done |
    xargs -P "$JOBS" -L 1 bash -c 'one_run "$0" "$1"'

RUN_DIRS=()
for method in $METHODS; do for seed in $SEEDS; do RUN_DIRS+=("$RUNS/mini-$method-4L-seed$seed"); done; done
"$CAMLKIT" report "${RUN_DIRS[@]}"
if [ -n "${RESULTS:-}" ]; then  # the small files of each run: no weights
    for run in "${RUN_DIRS[@]}"; do
        mkdir -p "$RESULTS/$(basename "$run")"
        cp "$run"/{config.json,log.csv,summary.json,summary.md,cases.csv} "$RESULTS/$(basename "$run")/"
    done
    "$CAMLKIT" report "${RUN_DIRS[@]}" > "$RESULTS/table.md"
fi
