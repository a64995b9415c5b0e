#!/usr/bin/env bash
# The OCC regime study (results/occ_regime/PLAN.md): candidates A-D of OCC's similarity x log form
# on the `mini` preset, chosen on validation cases, then compared on the test set over 5 seeds.
# Usage (after scripts/quickstart.sh has installed camlkit):
#   STAGE=val  bash scripts/occ_regime.sh              the 8 validation runs (4 candidates x 2 seeds)
#   STAGE=test CHOSEN=B bash scripts/occ_regime.sh     the chosen CAML, MC-Net, V-Net x 5 seeds
#   JOBS=2 (default) runs side by side, one thread each, as PLAN.md fixes; RUNS=runs/occ_regime
#   CAMLKIT_DATA=DIR; RESULTS=results/occ_regime (each finished run's small files, no weights)
#   ONLY="A-3407 B-1"  run just these (val) or "caml-3 mcnet-4" (test)
# A finished run (summary.json) is kept; a stopped one resumes from its checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."

CAMLKIT=${CAMLKIT:-.venv/bin/camlkit}
PY=${PY:-.venv/bin/python}
STAGE=${STAGE:?STAGE=val or STAGE=test}
JOBS=${JOBS:-2}
RUNS=${RUNS:-runs/occ_regime}
RESULTS=${RESULTS:-results/occ_regime}
DATA=${CAMLKIT_DATA:-data/LA}
[ -d "$DATA" ] || DATA=../shared/LA

variant() {  # candidate id -> its step flags
    case "$1" in
        A) echo "--step.similarity dot --step.occ_log eps" ;;
        B) echo "--step.similarity dot --step.occ_log log_softmax" ;;
        C) echo "--step.similarity cosine --step.occ_log eps" ;;
        D) echo "--step.similarity cosine --step.occ_log log_softmax" ;;
        *) echo "occ_regime: unknown candidate '$1' (A, B, C or D)" >&2; return 2 ;;
    esac
}

one_run() {  # stage name seed method [candidate]
    local stage=$1 name=$2 seed=$3 method=$4 id=${5:-}
    local run="$RUNS/$stage/$name" keep="$RESULTS/$stage/$name"
    local args=(train --preset mini --method "$method" --seed "$seed" --data "$DATA" --out "$run" --quiet)
    [ -n "$id" ] && read -r -a flags <<< "$(variant "$id")" && args+=("${flags[@]}")
    [ "$stage" = val ] && args+=(--val-cases 8 --eval-split val)
    if [ -f "$run/summary.json" ]; then
        echo "occ_regime: $run is finished"
    elif [ -f "$run/FAILED.txt" ]; then
        echo "occ_regime: $run failed before (PLAN.md: not re-run): $(tail -n 1 "$run/FAILED.txt")"
    else
        if [ -f "$run/checkpoints/last.pth" ]; then args+=(--resume)
        elif [ -e "$run" ]; then args+=(--overwrite); fi
        local start=$SECONDS
        mkdir -p "$(dirname "$run")"
        if OMP_NUM_THREADS=1 "$CAMLKIT" "${args[@]}" 2> "$run.err"; then
            echo "occ_regime: $run finished in $((SECONDS - start)) s"
            echo "$((SECONDS - start))" > "$run/wall_seconds.txt"
        elif grep -q "non-finite" "$run.err"; then  # PLAN.md's amendment: diverged, not re-run
            cp "$run.err" "$run/FAILED.txt"
            echo "occ_regime: $run diverged: $(tail -n 1 "$run.err")"
        else
            cat "$run.err" >&2; echo "occ_regime: $run stopped; run the script again to resume" >&2
            return 0
        fi
    fi
    mkdir -p "$keep"
    for f in config.json log.csv summary.json summary.md cases.csv wall_seconds.txt FAILED.txt; do
        [ -f "$run/$f" ] && cp "$run/$f" "$keep/"
    done
    # a CAML run's curves.png holds its OCC health panels (PLAN.md: the health figures of every run)
    [ "$method" = caml ] && [ -f "$run/curves.png" ] && cp "$run/curves.png" "$keep/"
    echo "OMP_NUM_THREADS=1 camlkit ${args[*]}" > "$keep/command.txt"
    echo "commit $(git rev-parse --short HEAD); $(nproc) cores, $(uname -m); torch $("$PY" -c 'import torch; print(torch.__version__)')" >> "$keep/command.txt"
}
export -f one_run variant
export CAMLKIT PY RUNS RESULTS DATA

jobs_list() {
    if [ "$STAGE" = val ]; then
        for seed in 3407 1; do for id in A B C D; do echo "val $id-$seed $seed caml $id"; done; done
    else
        local chosen=${CHOSEN:?CHOSEN=A, B, C or D}
        for seed in 3407 1 2 3 4; do
            for method in caml mcnet supervised; do
                [ "$method" = caml ] && [ "$chosen" != A ] && { echo "test caml$chosen-$seed $seed caml $chosen"; continue; }
                # PLAN.md: the committed mini Table 2 runs (seeds 3407, 1, 2) are reused as they are
                [ -f "results/mini_table2/mini-$method-4L-seed$seed/summary.json" ] && continue
                if [ "$method" = caml ]; then echo "test camlA-$seed $seed caml A"
                else echo "test $method-$seed $seed $method"; fi
            done
        done
        echo "test mcnet-3407-rerun 3407 mcnet"  # PLAN.md: how far the reused runs may drift
    fi
}

jobs_list | while read -r stage name rest; do
    if [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $name "* ]]; then echo "$stage $name $rest"; fi
done | xargs -P "$JOBS" -L 1 bash -c 'one_run "$@"' _

mkdir -p "$RESULTS/$STAGE"
"$CAMLKIT" report "$RESULTS/$STAGE"/*/ > "$RESULTS/$STAGE/table.md" || true
