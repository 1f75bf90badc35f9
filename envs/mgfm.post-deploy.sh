#!/usr/bin/env bash
# Run by snakemake (--use-conda) inside the new mgfm environment, from the directory snakemake runs in (the
# repository root, or MGFM_SOURCE): install the mgfm package itself, editable and without dependencies (they are
# pinned in mgfm.yaml), so the rules' `mgfm ...` commands run the code of this checkout.
set -euo pipefail
src=${MGFM_SOURCE:-$PWD}
if ! grep -qs '^name = "mgfm"' "$src/pyproject.toml"; then
    echo "mgfm.post-deploy.sh: $src is not the mgfm repository: run snakemake from the repository root or set MGFM_SOURCE" >&2
    exit 1
fi
python -m pip install --no-deps --no-build-isolation -e "$src"
