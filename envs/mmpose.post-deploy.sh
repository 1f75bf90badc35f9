#!/usr/bin/env bash
# Run by snakemake (--use-conda) inside the new mmpose environment, from the repository root (or MGFM_SOURCE):
# the pinned packages of envs/mmpose-requirements.txt through scripts/mmpose/install.sh (the same installer CI's
# mmpose venv uses; mmpose, mmdet, mmengine and mmcv-lite go in with --no-deps), then mgfm itself, editable.
set -euo pipefail
src=${MGFM_SOURCE:-$PWD}
if ! grep -qs '^name = "mgfm"' "$src/pyproject.toml"; then
    echo "mmpose.post-deploy.sh: $src is not the mgfm repository: run snakemake from the repository root or set MGFM_SOURCE" >&2
    exit 1
fi
bash "$src/scripts/mmpose/install.sh" python
python -m pip install --no-deps --no-build-isolation -e "$src"
