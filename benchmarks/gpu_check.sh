#!/usr/bin/env bash
# The GPU check: one unattended run over every GPU code path of mgfm, < 8 minutes on one H100/H200.
#
#   bash benchmarks/gpu_check.sh OUT_DIR [--size auto|paper|small] [--only env,pose,train,rgb,ddp,resume] [--no-compile]
#
# Writes OUT_DIR/gpu_check.json (every figure, per section: status ok | skipped | error | timeout, with the
# reason) and OUT_DIR/gpu_check.md (the summary). Sections: env, pose (onnx backend on CUDA at batch 1/8/32/64
# against decode-only), train (MG-FM-Skele paper size, eager/compiled x bf16/fp32, TFLOP/s against the bf16
# peak), rgb (the RGB student when there is one), ddp (one-process NCCL group + DDP step), resume (SIGKILL
# after a checkpoint, resume, same weights). Each runs in its own process with its own time limit
# (benchmarks/gpu_check.py: LIMITS); a failing section records its error and the others still run.
#
# Assumption about the GPU machine: it has NO network, so nothing is installed from outside. Its Python must
# already import torch with CUDA; the project itself runs from this tree (PYTHONPATH), not from an install.
# The project's pure-Python dependencies (numpy, pandas, pyarrow, pyyaml, safetensors, opencv, ...) must be
# present; optional pieces that are missing (onnxruntime-gpu, decord, ffmpeg) turn their section into
# "skipped: <reason>" in the JSON instead of failing the run. If wheels travel with the tree in
# shared/wheels/ or wheels/, they are installed first, offline (pip --no-index), into a venv under $TMPDIR
# that sees the system packages (so the machine's CUDA torch stays the one used).
# The interpreter: $PYTHON if set, else the first of python3 / python that imports torch.
# Without CUDA the same code runs at small size (what tests/test_gpu_check.py does on CPU).
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: bash benchmarks/gpu_check.sh OUT_DIR [options]}"
shift
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
    echo "gpu_check: no python that imports torch (set PYTHON=...)" >&2
    printf '{"schema": 1, "error": "no python that imports torch on this machine"}\n' > "$out/gpu_check.json"
    exit 2
fi

for wheels in "$repo/shared/wheels" "$repo/wheels"; do
    if compgen -G "$wheels/*.whl" >/dev/null; then
        venv="${TMPDIR:-/tmp}/mgfm-gpu-check-venv"
        "$py" -m venv --system-site-packages "$venv" \
            && "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheels" "$wheels"/*.whl \
            && py="$venv/bin/python" \
            || echo "gpu_check: offline install from $wheels failed; going on with $py" >&2
        break
    fi
done

export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
echo "gpu_check: $py ($("$py" -c 'import sys, torch; print(sys.version.split()[0], "torch", torch.__version__, "cuda", torch.cuda.is_available())'))"
cd "$repo"
# hard stop over everything: the sections' own limits sum to 440 s on a GPU (910 s at small size on a CPU)
limit=470
"$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || limit=940
exec timeout --kill-after=10 "$limit" "$py" benchmarks/gpu_check.py "$out" "$@"
