#!/usr/bin/env bash
# Run by snakemake (--use-conda) inside the new mmpose environment, from the repository root (or MGFM_SOURCE):
# mmpose without its declared requirements (mmpose's chumpy does not build in an isolated build and
# is never imported; the real requirements are pinned in mmpose.yaml), then mgfm itself, editable.
set -euo pipefail
src=${MGFM_SOURCE:-$PWD}
if ! grep -qs '^name = "mgfm"' "$src/pyproject.toml"; then
    echo "mmpose.post-deploy.sh: $src is not the mgfm repository: run snakemake from the repository root or set MGFM_SOURCE" >&2
    exit 1
fi
python -m pip install --no-deps "mmpose==1.3.2"
python -m pip install --no-deps --no-build-isolation -e "$src"
