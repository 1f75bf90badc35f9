#!/usr/bin/env bash
# Run by snakemake (--use-conda) inside the new pose-gpu environment, from the repository root (or MGFM_SOURCE):
# install mgfm itself, editable and without dependencies (they are pinned in pose-gpu.yaml).
set -euo pipefail
src=${MGFM_SOURCE:-$PWD}
if ! grep -qs '^name = "mgfm"' "$src/pyproject.toml"; then
    echo "pose-gpu.post-deploy.sh: $src is not the mgfm repository: run snakemake from the repository root or set MGFM_SOURCE" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation -e "$src"
