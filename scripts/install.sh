#!/usr/bin/env bash
# One install entry point for a fresh machine (or a brand-new virtualenv) with Python >= 3.10:
#   1. build tools, under scripts/constraints.txt (setuptools<81: pkg_resources),
#   2. torch (RAYNAS_TORCH, default torch==2.13.0: a local CPU wheel where one is offered;
#      on a GPU machine set RAYNAS_TORCH to the CUDA build you want),
#   3. mmcv 2.1.0 with its compiled ops, built against that torch (~11 min on 2 cores the
#      first time; pip caches the wheel, so later installs take seconds),
#   4. this project, editable, with the test extras, then `raynas doctor`.
# Every pip call takes the same constraints file, so no step can undo an earlier pin; each
# step checks what the next one needs before running it. Idempotent: a step whose result is
# already importable is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${RAYNAS_TORCH:-torch==2.13.0}
CONSTRAINTS="$PWD/scripts/constraints.txt"
PIP=("$PY" -m pip install --disable-pip-version-check -c "$CONSTRAINTS")

step() { printf '\n[raynas install] %s\n' "$*"; }
fail() { printf '\n[raynas install] FAILED: %s\n' "$*" >&2; exit 1; }
need() { "$PY" -c "$1" 2>/dev/null || fail "$2"; }

need "import sys; assert sys.version_info >= (3, 10)" \
  "Python >= 3.10 is required ($("$PY" --version 2>&1)); set PYTHON=/path/to/python3.10+"
need "import pip" "pip is missing for $PY: run '$PY -m ensurepip --upgrade'"

step "build tools: setuptools<81 (mmcv's setup.py and mmengine need pkg_resources), wheel, ninja"
"${PIP[@]}" -q "setuptools" wheel ninja || fail "could not install setuptools<81/wheel/ninja"
need "import pkg_resources" "setuptools installed but pkg_resources does not import"

if "$PY" -c "import torch" 2>/dev/null; then
  step "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
else
  step "installing $TORCH_SPEC"
  "${PIP[@]}" "$TORCH_SPEC" || fail "could not install $TORCH_SPEC (set RAYNAS_TORCH to a torch build for this machine)"
fi
need "import torch" "torch installed but does not import"
need "import pkg_resources" "installing torch removed pkg_resources (setuptools>=81); run: $PY -m pip install 'setuptools<81'"

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__.startswith('2.1.')" 2>/dev/null; then
  step "mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') with ops already installed"
else
  command -v "${CXX:-c++}" >/dev/null || fail "no C++ compiler (${CXX:-c++}) to build mmcv's ops: install g++ (Debian: apt-get install g++)"
  need "import sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" \
    "Python headers (Python.h) missing to build mmcv's ops: install python3-dev"
  step "building mmcv==2.1.0 against torch $("$PY" -c 'import torch; print(torch.__version__)') (about 11 min on 2 cores when not cached)"
  MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" --no-build-isolation "mmcv==2.1.0" \
    || fail "mmcv 2.1.0 build failed (needs a C++ compiler, torch installed first and setuptools<81)"
  need "import mmcv.ops" "mmcv installed but mmcv.ops does not import"
fi

step "installing raynas (editable) with test extras"
"${PIP[@]}" -e ".[test]" || fail "pip install -e .[test] failed"
need "import raynas, mmseg_plugins, mmseg, ray, pkg_resources" "raynas installed but does not import"
step "checking the environment (raynas doctor)"
"$PY" -m raynas.cli doctor || fail "raynas doctor found a problem (see above)"
