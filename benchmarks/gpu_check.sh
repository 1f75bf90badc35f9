#!/usr/bin/env bash
# The GPU check: one unattended run over every GPU code path of mgfm, < 8 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh --prepare [--python-version 3.12] [--dest DIR]     # here, with network
#   bash benchmarks/gpu_check.sh OUT_DIR [--wheels DIR] [--size auto|paper|small] [--only env,pose,...] [--no-compile]
#
# --prepare downloads, as wheels for the GPU machine's Python (3.12 by default), the packages the check needs
# and the machine's image lacks (benchmarks/gpu_check_wheels.txt: jsonschema and its helpers, decord) into
# .gpu_check/wheels (git-ignored; about 15 MB): the folder a device run carries. No venv is made anywhere.
#
# A run installs those wheels, when the folder holds any, with `pip install --target` into a folder under
# $TMPDIR and puts it on PYTHONPATH beside the image's own packages, so the image's CUDA torch stays the one used
# (offline: --no-index --no-deps); then runs benchmarks/gpu_check.py, which writes OUT_DIR/gpu_check.json (every
# figure, per section: status ok | skipped | error | timeout with the reason and, on failure, the section's
# output tail) and OUT_DIR/gpu_check.md (the summary). Sections: env, pose, train, rgb, ddp, resume (see
# benchmarks/gpu_check.py); each runs in its own process with its own time limit, and a failing one records its
# error while the others still run.
#
# The machine: no network. Its Python must import torch ($PYTHON if set, else the first of python3 / python that
# does); the project runs from this tree (PYTHONPATH), not from an install. Without CUDA the same code runs at
# small size (what tests/test_gpu_check.py does on CPU, in a venv that holds only the image's packages).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
wheels="$repo/.gpu_check/wheels"
say() { echo "gpu_check: $*" >&2; }

if [[ ${1:-} == --prepare ]]; then
    shift
    pyver=3.12
    while (($#)); do
        case $1 in
            --python-version) pyver=$2; shift 2 ;;
            --dest) wheels=$2; shift 2 ;;
            *) say "unknown option $1 (--prepare takes --python-version X.Y and --dest DIR)"; exit 2 ;;
        esac
    done
    pip_py=${PYTHON:-python3}
    rm -rf "$wheels.part" && mkdir -p "$wheels.part" || exit 1
    platforms=()
    for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
             manylinux2010_x86_64 manylinux1_x86_64; do
        platforms+=(--platform "$p")
    done
    if ! "$pip_py" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$pyver" \
            --implementation cp "${platforms[@]}" -d "$wheels.part" -r "$repo/benchmarks/gpu_check_wheels.txt"; then
        rm -rf "$wheels.part"
        say "downloading the wheels of benchmarks/gpu_check_wheels.txt for Python $pyver failed"
        exit 1
    fi
    rm -rf "$wheels" && mv "$wheels.part" "$wheels"
    size_kb=$(du -sk "$wheels" | cut -f1)
    say "prepared $(ls "$wheels" | wc -l) wheels for Python $pyver in $wheels ($((size_kb / 1024)) MiB):"
    ls "$wheels" >&2
    if ((size_kb > 60 * 1024)); then
        say "that is more than a device run may carry (64 MiB with the tree)"
        exit 1
    fi
    exit 0
fi

out="${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR [options] | --prepare}"
shift
args=()
while (($#)); do
    case $1 in
        --wheels) wheels=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
mkdir -p "$out"
out="$(cd "$out" && pwd)"

py=""
for cand in ${PYTHON:-} python3 python; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c "import torch" >/dev/null 2>&1; then
        py="$(command -v "$cand")"
        break
    fi
done
if [ -z "$py" ]; then
    say "no python that imports torch (set PYTHON=...)"
    printf '{"schema": 2, "error": "no python that imports torch on this machine"}\n' > "$out/gpu_check.json"
    exit 2
fi

if compgen -G "$wheels/*.whl" >/dev/null; then
    site="${TMPDIR:-/tmp}/mgfm-gpu-check-site"
    rm -rf "$site"
    if "$py" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" \
            "$wheels"/*.whl; then
        export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
        MGFM_GPU_CHECK_CARRIED="$(cd "$wheels" && ls -- *.whl | tr '\n' ' ')"
        export MGFM_GPU_CHECK_CARRIED
        say "installed $(ls "$wheels"/*.whl | wc -l) carried wheels into $site (PYTHONPATH)"
    else
        say "installing the wheels of $wheels failed; sections that need them will say which module is missing"
    fi
else
    say "no wheels in $wheels (bash benchmarks/gpu_check.sh --prepare makes them); using the image as it is"
fi

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
cd "$repo"
missing=$("$py" -c 'import importlib.util as u; print(" ".join(m for m in ("jsonschema", "decord", "onnxruntime", "cv2", "transformers") if u.find_spec(m) is None))')
[ -n "$missing" ] && say "not importable here: $missing"
say "$py ($("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'))"
# hard stop over everything: the sections' own limits sum to 440 s on a GPU (1140 s at small size on a CPU)
limit=470
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || limit=1200
exec timeout --kill-after=10 "$limit" "$py" benchmarks/gpu_check.py "$out" "${args[@]}"
