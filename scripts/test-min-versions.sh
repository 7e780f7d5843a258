#!/usr/bin/env bash
# Prove the dependency floors of setup.cfg: install exactly the lowest versions it allows
# (every `name>=version` becomes `name==version`, see scripts/min_requirements.py) into
# separate virtualenvs and run the tests with them.
#
#   1. install_requires + [test,mat,trackers,video] -> the fast tests      .venv-min
#      (pytest -m "not slow")
#   2. the same + [onnx], whose torch floor is higher -> the ONNX tests      .venv-min-onnx
#
# [poses] is left out: MediaPipe installs outside pip's resolver (scripts/setup.sh) and its
# tests skip without it.
#
# Old torch releases exist on PyPI only as CUDA builds: step 1 downloads about 3.5 GB
# (they run fine on a CPU). MIN_PYTHON picks the interpreter of step 1 (default: a
# working python3.10, the lowest Python setup.cfg allows, else python3); MIN_ONNX_PYTHON
# the one of step 2 (default python3). Extra arguments go to both pytest runs.
set -euo pipefail
cd "$(dirname "$0")/.."

runs() { "$1" -c 'import sys' >/dev/null 2>&1; }
if [ -z "${MIN_PYTHON:-}" ]; then
  MIN_PYTHON=python3
  if runs python3.10; then MIN_PYTHON=python3.10; fi
fi
MIN_ONNX_PYTHON=${MIN_ONNX_PYTHON:-python3}

# $1: virtualenv, $2: interpreter, $3...: extras
install_floors() {
  local venv=$1 python=$2
  shift 2
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  local pins
  pins=$("$venv/bin/python" scripts/min_requirements.py "$@")
  echo "$venv ($("$venv/bin/python" -V)):" $pins
  # one resolution with every floor pinned, so no package is lifted past its floor
  # shellcheck disable=SC2086
  "$venv/bin/python" -m pip install -q $pins
  "$venv/bin/python" -m pip install -q --no-deps -e .
}

start=$SECONDS
install_floors .venv-min "$MIN_PYTHON" test mat trackers video
.venv-min/bin/python -m pytest -q -p no:cacheprovider -m "not slow" "$@"
echo "lowest versions, fast tests: $((SECONDS - start)) s"

start=$SECONDS
install_floors .venv-min-onnx "$MIN_ONNX_PYTHON" test mat trackers video onnx
.venv-min-onnx/bin/python -m pytest -q -p no:cacheprovider -m onnx "$@"
echo "lowest versions, ONNX tests: $((SECONDS - start)) s"
