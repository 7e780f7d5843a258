#!/usr/bin/env bash
# Create .venv (once) and install the toolkit with its test, onnx and trackers extras.
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
.venv/bin/python -m pip install -q ${constraints:+-c "$constraints"} -e ".[test,onnx,trackers,video]"
