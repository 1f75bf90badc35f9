#!/usr/bin/env bash
# Build (once) a venv holding only the target GPU machine's image packages that mgfm's GPU check imports
# (benchmarks/gpu_image_requirements.txt: the CPU build of our torch pin in place of the image's CUDA torch) and
# print its directory. tests/test_gpu_check.py runs the check in it, with the carried wheels added the way the
# GPU run adds them (pip --target + PYTHONPATH), so a package the check needs and the image lacks fails here.
# Cached under ${MGFM_GPU_IMAGE_VENV_CACHE:-~/.cache/mgfm}, keyed by the sha256 of the requirements file, this
# script and the Python version: an unchanged key reuses the venv (seconds), a new key builds a new one and
# removes the stale ones. A venv is used only once its build finished (a `.complete` marker).
# Usage: scripts/gpu_image/build-venv.sh   (progress on stderr, the venv's path on stdout)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
reqs="$root/benchmarks/gpu_image_requirements.txt"
PYTHON=${MGFM_GPU_IMAGE_PYTHON:-python3.11}
cache=${MGFM_GPU_IMAGE_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mgfm}
key=$( { cat "$reqs" "$here/build-venv.sh"; "$PYTHON" -c 'import sys; print(sys.version)'; } | sha256sum | cut -c1-16)
venv="$cache/gpu-image-venv-$key"
if [[ -f "$venv/.complete" ]]; then
    echo "gpu image venv: cached at $venv" >&2
    echo "$venv"
    exit 0
fi
start=$SECONDS
echo "gpu image venv: building $venv" >&2
rm -rf "$venv"
mkdir -p "$cache"
{
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --no-input -r "$reqs"
} >&2
touch "$venv/.complete"
for old in "$cache"/gpu-image-venv-*; do
    [[ "$old" == "$venv" ]] || rm -rf "$old"
done
echo "gpu image venv: built in $((SECONDS - start)) s" >&2
echo "$venv"
