#!/usr/bin/env bash
# CI part of the mmpose pose path (run by .ci/run after the main test command): build or reuse the cached
# mmpose venv (build-venv.sh), install this checkout's mgfm into it (editable, --no-deps), and run the mmpose tests
# there with MGFM_REQUIRE_MMPOSE=1, so a missing mmpose fails instead of skipping: the mmpose backend against the
# ONNX backend, the `pose` rule with pose.backend: mmpose, the preset's ONNX exports against mmpose's and mmdet's
# own inference, and pose.preset through Snakemake. Then, in the main environment (`python` on PATH: .ci/run's
# .venv), `mgfm pose export-onnx` exporting in that venv, as the export rule does without --use-conda.
# Usage: bash scripts/mmpose/ci.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/../.."
start=$SECONDS
venv=$(bash scripts/mmpose/build-venv.sh)
"$venv/bin/python" -m pip install --no-input --quiet --no-deps --no-build-isolation -e .
echo "mmpose venv ready in $((SECONDS - start)) s: $venv"
test_start=$SECONDS
# -v: each test's name and PASSED in the CI log; the warnings are mmpose's and torch's own deprecations
PATH="$venv/bin:$PATH" MGFM_REQUIRE_MMPOSE=1 "$venv/bin/python" -m pytest -p no:cacheprovider -v --disable-warnings \
    tests/test_pose_mmpose.py tests/test_pose_mmpose_rule.py tests/test_pose_onnx_export.py \
    tests/test_pose_preset_rule.py "$@"
if ! python -c "import mgfm" 2>/dev/null; then
    echo "ci.sh: the main environment's python (with mgfm installed) must be first on PATH" >&2
    exit 1
fi
MGFM_MMPOSE_VENV_TEST=1 python -m pytest -p no:cacheprovider -v --disable-warnings tests/test_pose_export_venv.py
echo "mmpose tests took $((SECONDS - test_start)) s (venv $((test_start - start)) s)"
