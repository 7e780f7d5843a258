#!/usr/bin/env bash
# Create .venv (once) and install the toolkit with its test, onnx, trackers, video, mat and
# poses extras, and MediaPipe for `pipeline extract-poses` (set MMCL_POSES=0 to leave it out).
# CPU machines get the CPU build of PyTorch through constraints-cpu.txt; set
# MMCL_CONSTRAINTS= (empty) to let pip choose your own torch build (e.g. CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
constraints=${MMCL_CONSTRAINTS-constraints-cpu.txt}
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
extras=test,onnx,trackers,video,mat
# MediaPipe 0.10.14 has wheels for CPython 3.8-3.12 only
poses=$(.venv/bin/python -c 'import sys; print(int(sys.version_info < (3, 13)))')
if [ "${MMCL_POSES:-1}" = 0 ]; then
  poses=0
elif [ "$poses" = 0 ]; then
  echo "setup: no MediaPipe 0.10.14 for this Python; pipeline extract-poses is unavailable" >&2
fi
if [ "$poses" = 1 ]; then
  extras=$extras,poses
fi
.venv/bin/python -m pip install -q ${constraints:+-c "$constraints"} -e ".[$extras]"
if [ "$poses" = 1 ]; then
  # --no-deps: see the poses extra in setup.cfg
  .venv/bin/python -m pip install -q --no-deps mediapipe==0.10.14
fi
