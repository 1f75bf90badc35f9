#!/usr/bin/env bash
# CI part of the mmpose pose path (run by .ci/run after the main test command): build or reuse the cached
# mmpose venv (build-venv.sh), install this checkout's mgfm into it (editable, --no-deps), and run the mmpose tests
# there with MGFM_REQUIRE_MMPOSE=1, so a missing mmpose fails instead of skipping: the equivalence test against
# the ONNX backend and the `pose` rule with pose.backend: mmpose through Snakemake.
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
    tests/test_pose_mmpose.py tests/test_pose_mmpose_rule.py "$@"
echo "mmpose tests took $((SECONDS - test_start)) s (venv $((test_start - start)) s)"
