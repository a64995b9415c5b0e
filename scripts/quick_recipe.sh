#!/usr/bin/env bash
# The 2x-faster quick recipe (issue 30; results/quick_recipe/PLAN.md): candidate recipes and the
# old quick preset chosen between on validation cases, then the chosen one on the test set.
# Usage (after scripts/quickstart.sh has installed camlkit):
#   STAGE=val  bash scripts/quick_recipe.sh            old + candidates x seeds 3407 1 2, 12 validation cases
#   STAGE=test CHOSEN=A bash scripts/quick_recipe.sh   the chosen recipe and old x seeds 3407 1 2, test set
#   STAGE=timed CHOSEN=A bash scripts/quick_recipe.sh  one run of the chosen recipe alone, both cores, timed
#   JOBS=2 (default) runs side by side, one thread each, as PLAN.md fixes; RUNS=runs/quick_recipe
#   CAMLKIT_DATA=DIR; RESULTS=results/quick_recipe (each finished run's small files, no weights)
#   ONLY="A-3407 old-1"  run just these
# Each recipe's flags come from bench/bench_quick.py's RECIPES (the recipes the bench timed).
# A finished run (summary.json) is kept; a stopped one resumes from its checkpoint; a run whose
# loss became non-finite is kept as diverged (FAILED.txt) and not run again (PLAN.md).
set -euo pipefail
cd "$(dirname "$0")/.."

CAMLKIT=${CAMLKIT:-.venv/bin/camlkit}
PY=${PY:-.venv/bin/python}
STAGE=${STAGE:?STAGE=val, test or timed}
JOBS=${JOBS:-2}
RUNS=${RUNS:-runs/quick_recipe}
RESULTS=${RESULTS:-results/quick_recipe}
DATA=${CAMLKIT_DATA:-data/LA}
[ -d "$DATA" ] || DATA=../shared/LA
CANDIDATES=${CANDIDATES:-"old A B C D"}  # PLAN.md's trained candidates
SEEDS="3407 1 2"

one_run() {  # stage name recipe seed
    local stage=$1 name=$2 recipe=$3 seed=$4
    local run="$RUNS/$stage/$name" keep="$RESULTS/$stage/$name"
    local text flags
    text=$("$PY" -m bench.bench_quick --flags "$recipe") || { echo "quick_recipe: no recipe $recipe" >&2; return 1; }
    read -r -a flags <<< "$text"
    local args=(train "${flags[@]}" --method caml --labeled 16 --seed "$seed" --data "$DATA" --out "$run" --quiet)
    [ "$stage" = val ] && args+=(--val-cases 12 --eval-split val)
    local threads=(env OMP_NUM_THREADS=1)
    [ "$stage" = timed ] && threads=(flock /tmp/camlkit-bench.lock env -u OMP_NUM_THREADS)  # alone, camlkit's CPU policy
    if [ -f "$run/summary.json" ]; then
        echo "quick_recipe: $run is finished"
    elif [ -f "$run/FAILED.txt" ]; then
        echo "quick_recipe: $run diverged before (PLAN.md: not re-run): $(tail -n 1 "$run/FAILED.txt")"
    else
        if [ -f "$run/checkpoints/last.pth" ] && [ "$stage" != timed ]; then args+=(--resume)
        elif [ -e "$run" ]; then args+=(--overwrite); fi
        mkdir -p "$(dirname "$run")"
        local start=$SECONDS
        if "${threads[@]}" "$CAMLKIT" "${args[@]}" 2> "$run.err"; then
            echo "quick_recipe: $run finished in $((SECONDS - start)) s"
            echo "$((SECONDS - start))" > "$run/wall_seconds.txt"
        elif grep -q "non-finite" "$run.err"; then
            cp "$run.err" "$run/FAILED.txt"
            echo "quick_recipe: $run diverged: $(tail -n 1 "$run.err")"
        else
            cat "$run.err" >&2; echo "quick_recipe: $run stopped; run the script again to resume" >&2
            return 0
        fi
    fi
    mkdir -p "$keep"
    for f in config.json log.csv summary.json summary.md cases.csv curves.png wall_seconds.txt FAILED.txt; do
        [ -f "$run/$f" ] && cp "$run/$f" "$keep/"
    done
    echo "${threads[*]} camlkit ${args[*]}" > "$keep/command.txt"
    echo "commit $(git rev-parse --short HEAD); $(nproc) cores, $(uname -m); torch $("$PY" -c 'import torch; print(torch.__version__)')" >> "$keep/command.txt"
}
export -f one_run
export CAMLKIT PY RUNS RESULTS DATA

jobs_list() {
    case "$STAGE" in
        val) for seed in $SEEDS; do for id in $CANDIDATES; do echo "val $id-$seed $id $seed"; done; done ;;
        test) local chosen=${CHOSEN:?CHOSEN=the recipe chosen by PLAN.md}
              for seed in $SEEDS; do echo "test $chosen-$seed $chosen $seed"; echo "test old-$seed old $seed"; done ;;
        timed) echo "timed ${CHOSEN:?CHOSEN=the chosen recipe}-3407 $CHOSEN 3407" ;;
        *) echo "quick_recipe: STAGE=$STAGE: expected val, test or timed" >&2; exit 2 ;;
    esac
}

[ "$STAGE" = timed ] && JOBS=1
jobs_list | while read -r stage name rest; do
    if [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]]; then echo "$stage $name $rest"; fi
done | xargs -P "$JOBS" -L 1 bash -c 'one_run "$@"' _

mkdir -p "$RESULTS/$STAGE"
"$CAMLKIT" report "$RESULTS/$STAGE"/*/ > "$RESULTS/$STAGE/table.md" || true
