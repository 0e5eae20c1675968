#!/usr/bin/env bash
# One install entry point for a fresh machine with only Python >= 3.10 on it.
#   1. torch (RAYNAS_TORCH, default torch==2.13.0: a local CPU wheel where one is offered;
#      on a GPU machine set RAYNAS_TORCH to the CUDA build you want),
#   2. mmcv 2.1.0 with its compiled ops, built against that torch (~11 min on 2 cores the
#      first time; pip caches the wheel, so later installs take seconds),
#   3. this project, editable, with the test extras.
# Idempotent: each step is skipped when its result is already importable.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${RAYNAS_TORCH:-torch==2.13.0}
PIP=("$PY" -m pip install --disable-pip-version-check)

step() { printf '\n[raynas install] %s\n' "$*"; }
fail() { printf '\n[raynas install] FAILED: %s\n' "$*" >&2; exit 1; }

step "build tools (setuptools<81: mmcv's setup.py needs pkg_resources)"
"${PIP[@]}" -q "setuptools>=64,<81" wheel ninja || fail "could not install setuptools<81/wheel/ninja"

if "$PY" -c "import torch" 2>/dev/null; then
  step "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
else
  step "installing $TORCH_SPEC"
  "${PIP[@]}" "$TORCH_SPEC" || fail "could not install $TORCH_SPEC (set RAYNAS_TORCH to a torch build for this machine)"
fi

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__.startswith('2.1.')" 2>/dev/null; then
  step "mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') with ops already installed"
else
  step "building mmcv==2.1.0 against the installed torch (about 11 min on 2 cores when not cached)"
  MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" --no-build-isolation "mmcv==2.1.0" \
    || fail "mmcv 2.1.0 build failed (needs a C++ compiler, torch installed first and setuptools<81)"
  "$PY" -c "import mmcv.ops" || fail "mmcv installed but mmcv.ops does not import"
fi

step "installing raynas (editable) with test extras"
"${PIP[@]}" -e ".[test]" || fail "pip install -e .[test] failed"
"$PY" -c "import raynas, mmseg_plugins, mmseg, ray" || fail "raynas installed but does not import"
step "done: $("$PY" -c 'import raynas; print("raynas", raynas.__version__)')"
