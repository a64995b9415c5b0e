#!/usr/bin/env bash
# Prints the package index that torch should come from on this machine; an empty line means the
# default index. Used by quickstart.sh; tests/test_packaging.py runs it.
#   TORCH_INDEX_URL set (even empty)    that, chosen by hand
#   Linux without an NVIDIA GPU         PyPI's torch for Linux carries GBs of CUDA libraries:
#   (no nvidia-smi)                     PyTorch's CPU wheels instead
#   otherwise                           the default index (a GPU: its CUDA build; macOS and
#                                       Windows: its wheels have no CUDA)
set -euo pipefail
if [ -n "${TORCH_INDEX_URL+set}" ]; then
    echo "$TORCH_INDEX_URL"
elif [ "$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "https://download.pytorch.org/whl/cpu"
else
    echo ""
fi
