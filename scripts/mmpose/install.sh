#!/usr/bin/env bash
# Install envs/mmpose-requirements.txt into the Python environment of PYTHON (a venv's or a conda env's python):
# every line without a `--no-deps` mark in one resolving pip call, then the marked lines with --no-deps (their
# declared requirements cannot hold together: see the comments in that file). Used by build-venv.sh and by
# envs/mmpose.post-deploy.sh, so the CI venv and the conda environment install the same packages.
# Usage: scripts/mmpose/install.sh PYTHON
set -euo pipefail
py=${1:?usage: install.sh PYTHON}
req="$(cd "$(dirname "$0")/../.." && pwd)/envs/mmpose-requirements.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# requirement part of each line (comments and blank lines dropped), split by the mark
grep -v -- '# --no-deps' "$req" | sed -e 's/#.*//' -e 's/[[:space:]]*$//' | grep -v '^$' > "$tmp/resolve.txt" || true
grep -- '# --no-deps' "$req" | sed -e 's/#.*//' -e 's/[[:space:]]*$//' | grep -v '^$' > "$tmp/nodeps.txt" || true
if [[ ! -s "$tmp/resolve.txt" || ! -s "$tmp/nodeps.txt" ]]; then
    echo "install.sh: $req has no packages to install (or no --no-deps lines)" >&2
    exit 1
fi
"$py" -m pip install --no-input -r "$tmp/resolve.txt"
"$py" -m pip install --no-input --no-deps -r "$tmp/nodeps.txt"
