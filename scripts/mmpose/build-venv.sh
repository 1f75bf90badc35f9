#!/usr/bin/env bash
# Build (once) the plain venv of the mmpose pose path from envs/mmpose-requirements.txt, plus the test tools
# (snakemake, pytest) constrained by the same pins, and print its directory. The venv is cached under
# ${MGFM_MMPOSE_VENV_CACHE:-~/.cache/mgfm} keyed by the sha256 of the requirements file and of the scripts that
# build it: an unchanged key reuses the venv (seconds), a new key builds a new one and removes the stale ones.
# A venv is used only once its build finished (a `.complete` marker), so an interrupted build is redone; a lock
# file makes concurrent callers wait for one build instead of racing.
# mgfm itself is not installed here (the cache is shared by checkouts): ci.sh installs it, editable, per run.
# Usage: scripts/mmpose/build-venv.sh   (progress on stderr, the venv's path on stdout)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
# test tools: pinned, and installed under the pose pins as constraints, so they cannot move them
TEST_TOOLS=(snakemake==9.27.1 pytest==9.2.0 pytest-timeout==2.4.0)
PYTHON=${MGFM_MMPOSE_PYTHON:-python3.11}
cache=${MGFM_MMPOSE_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mgfm}
key=$( { cat "$root/envs/mmpose-requirements.txt" "$here/install.sh" "$here/build-venv.sh"; \
         "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv="$cache/mmpose-venv-$key"
mkdir -p "$cache"
# one build at a time: concurrent callers (two export jobs of one run) wait here, then find the finished venv
exec 9>"$cache/.build.lock"
flock 9
if [[ -f "$venv/.complete" ]]; then
    echo "mmpose venv: cached at $venv" >&2
    echo "$venv"
    exit 0
fi
start=$SECONDS
echo "mmpose venv: building $venv" >&2
rm -rf "$venv"
{
    "$PYTHON" -m venv "$venv"
    "$here/install.sh" "$venv/bin/python"
    "$venv/bin/python" -m pip install --no-input -c <(sed 's/#.*//' "$root/envs/mmpose-requirements.txt") \
        "${TEST_TOOLS[@]}"
} >&2
touch "$venv/.complete"
# stale venvs of older keys
for old in "$cache"/mmpose-venv-*; do
    [[ "$old" == "$venv" ]] || rm -rf "$old"
done
echo "mmpose venv: built in $((SECONDS - start)) s" >&2
echo "$venv"
