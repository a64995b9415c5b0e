#!/usr/bin/env bash
# camlkit's main job on a fresh machine, in one command: install, fetch the LA data, train CAML
# and evaluate it on the 20 test cases. A GPU runs the paper's configuration; a CPU the quick
# preset (minutes). Usage: bash scripts/quickstart.sh
#   PRESET=paper|quick|mini|smoke   override the choice   LABELED=16  labeled cases   SEED=3407
#   CAMLKIT_DATA=DIR           where LA lives (default data/LA inside the repo)
#   OVERWRITE=1                train again even if runs/<preset>-caml-<L>L-seed<S> holds a run
#                              (a rerun otherwise shows a finished run or resumes a stopped one)
#   TORCH_INDEX_URL=URL        where torch comes from (scripts/torch_index.sh chooses when unset:
#                              PyTorch's CPU wheels on Linux without nvidia-smi, falling back to
#                              the default index if they cannot be reached; else the default
#                              index). Empty: the default index. Or e.g. .../whl/cu126
set -euo pipefail
cd "$(dirname "$0")/.."
# each stage's elapsed seconds, measured here (bash's SECONDS) and printed at the end
STAGE_START=$SECONDS
declare -a STAGES=()
stage_done() { STAGES+=("$1 $((SECONDS - STAGE_START))"); STAGE_START=$SECONDS; }

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch first, pinned (scripts/torch.txt), from the index that fits this machine (later installs keep it)
TORCH=${TORCH:-$(grep -m1 '^torch==' scripts/torch.txt)}
TORCH_INDEX_URL=$(bash scripts/torch_index.sh)
if [ -z "$TORCH_INDEX_URL" ]; then
    .venv/bin/python -m pip install -q "$TORCH"
elif ! .venv/bin/python -m pip install -q --retries 1 --timeout 30 "$TORCH" \
        --index-url "$TORCH_INDEX_URL"; then
    # some machines reach only PyPI (or a mirror of it): take torch from there instead
    echo "quickstart: no $TORCH from $TORCH_INDEX_URL; installing it from the default index" >&2
    .venv/bin/python -m pip install -q "$TORCH"
fi
.venv/bin/python -m pip install -q -e ".[notebooks]"
stage_done install

DATA=${CAMLKIT_DATA:-data/LA}
if [ -d ../shared/LA ]; then  # this project's machines keep a verified copy beside the repo
    .venv/bin/python data_scripts/download_la.py --dest "$DATA" --source ../shared/LA
else
    .venv/bin/python data_scripts/download_la.py --dest "$DATA"
fi
stage_done data

PRESET=${PRESET:-$(.venv/bin/python -c "import torch; print('paper' if torch.cuda.is_available() else 'quick')")}
LABELED=${LABELED:-16}
SEED=${SEED:-3407}
RUN=runs/$PRESET-caml-${LABELED}L-seed$SEED
# Run again, this picks up where the last try stopped: a finished run is shown, not redone; a
# stopped one resumes from its checkpoint; one stopped before its first checkpoint starts again.
# OVERWRITE=1 replaces whatever $RUN holds with a fresh run.
TRAIN=(.venv/bin/camlkit train --preset "$PRESET" --method caml --labeled "$LABELED" --seed "$SEED"
       --data "$DATA" --out "$RUN")
if [ "${OVERWRITE:-0}" = 1 ]; then
    "${TRAIN[@]}" --overwrite
elif [ -f "$RUN/summary.md" ]; then
    echo "quickstart: $RUN holds a finished run (OVERWRITE=1 to train it again):"
    cat "$RUN/summary.md"
elif [ -f "$RUN/checkpoints/last.pth" ]; then
    echo "quickstart: resuming the run in $RUN from $RUN/checkpoints/last.pth"
    "${TRAIN[@]}" --resume
elif [ -f "$RUN/model_final.pth" ]; then
    echo "quickstart: $RUN holds a trained model but no checkpoint to resume; keeping it" >&2
    echo "  evaluate it: .venv/bin/camlkit evaluate $RUN/model_final.pth --data $DATA --out $RUN/eval" >&2
    echo "  or train again: OVERWRITE=1 bash scripts/quickstart.sh" >&2
    exit 1
elif [ -e "$RUN/config.json" ] || [ -e "$RUN/log.csv" ]; then
    echo "quickstart: $RUN was stopped before its first checkpoint; starting it again"
    "${TRAIN[@]}" --overwrite
else
    "${TRAIN[@]}"
fi
# `camlkit train` trains, then evaluates: the training loop's seconds are the last row of this
# run's log.csv (column "seconds"); the rest of the command is the evaluation (with the setup
# before the loop and curves.png after it). A finished run that was only shown took neither.
RUN_SECONDS=$((SECONDS - STAGE_START))
LOOP_SECONDS=0
if [ "$RUN_SECONDS" -gt 0 ] && [ -f "$RUN/log.csv" ]; then
    LOOP_SECONDS=$(tail -n 1 "$RUN/log.csv" | .venv/bin/python -c "import csv, sys
header = next(csv.reader(open(sys.argv[1])))
row = next(csv.reader(sys.stdin))
print(min(int(float(row[header.index('seconds')])), int(sys.argv[2])))" "$RUN/log.csv" "$RUN_SECONDS" \
        || echo 0)
fi
STAGES+=("training $LOOP_SECONDS" "evaluation $((RUN_SECONDS - LOOP_SECONDS))")
echo "quickstart: elapsed seconds per stage (measured by this script):"
for stage in "${STAGES[@]}"; do
    printf '  %-11s %6d s\n' "${stage% *}" "${stage##* }"
done
printf '  %-11s %6d s\n' total "$SECONDS"
echo "Results: $RUN/summary.md, per case: $RUN/cases.csv, curves: $RUN/curves.png"
