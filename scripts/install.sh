#!/usr/bin/env bash
# One install entry point for a fresh machine (or a brand-new virtualenv) with Python >= 3.10.
#
#   bash scripts/install.sh              # the maintained OpenMMLab releases (default, ~2 min)
#   bash scripts/install.sh --upstream   # mmsegmentation 1.2.2 + mmcv 2.1.0 built from source
#   bash scripts/install.sh --docs       # also the docs site's tools (mkdocs-material)
#
# Default stack: onedl-mmengine, onedl-mmcv, onedl-mmsegmentation (same import names mmengine,
# mmcv, mmseg; pure-Python wheels, numpy 2), plus the `mmsegmentation` alias distribution that
# mmengine's `mmseg::` config scope looks up (python -m raynas.mmseg_alias).
# Upstream stack: setuptools<81 held through every pip call (scripts/constraints-upstream.txt),
# then mmcv 2.1.0 compiled against the installed torch (~10 min on 2 cores the first time;
# pip caches the wheel).
# Both: torch first (RAYNAS_TORCH, default torch==2.13.0; on a GPU machine set it to the CUDA
# build you want), then this project editable with its test extras, then `raynas doctor`.
# Idempotent: a step whose result is already importable is skipped. The two stacks install the
# same import names, so one environment holds one of them: switching is refused with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
TORCH_SPEC=${RAYNAS_TORCH:-torch==2.13.0}
STACK=onedl
EXTRAS=test
for arg in "$@"; do
  case "$arg" in
    --upstream) STACK=upstream ;;
    --docs) EXTRAS="$EXTRAS,docs" ;;
    -h|--help) sed -n 2,18p "$0"; exit 0 ;;
    *) printf '[raynas install] unknown option %s (use --upstream, --docs or --help)\n' "$arg" >&2
       exit 2 ;;
  esac
done
PIP=("$PY" -m pip install --disable-pip-version-check)
[ "$STACK" = upstream ] && PIP+=(-c "$PWD/scripts/constraints-upstream.txt")

step() { printf '\n[raynas install] %s\n' "$*"; }
fail() { printf '\n[raynas install] FAILED: %s\n' "$*" >&2; exit 1; }
need() { "$PY" -c "$1" 2>/dev/null || fail "$2"; }
installed() { "$PY" -m pip show -q "$1" >/dev/null 2>&1; }

need "import sys; assert sys.version_info >= (3, 10)" \
  "Python >= 3.10 is required ($("$PY" --version 2>&1)); set PYTHON=/path/to/python3.10+"
need "import pip" "pip is missing for $PY: run '$PY -m ensurepip --upgrade'"
if [ "$STACK" = upstream ] && installed onedl-mmcv; then
  fail "the maintained stack is installed here; remove it first: $PY -m pip uninstall -y onedl-mmcv onedl-mmengine onedl-mmsegmentation mmsegmentation mmcv mmengine"
fi
if [ "$STACK" = onedl ] && installed mmcv; then
  fail "the upstream stack is installed here (rerun with --upstream to keep it), or remove it first: $PY -m pip uninstall -y mmcv mmengine mmsegmentation"
fi
step "stack: $STACK"

if "$PY" -c "import torch" 2>/dev/null; then
  step "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
else
  step "installing $TORCH_SPEC"
  "${PIP[@]}" "$TORCH_SPEC" || fail "could not install $TORCH_SPEC (set RAYNAS_TORCH to a torch build for this machine)"
fi
need "import torch" "torch installed but does not import"

if [ "$STACK" = upstream ]; then
  step "build tools: setuptools<81 (mmcv's setup.py and mmengine need pkg_resources), wheel, ninja"
  "${PIP[@]}" -q setuptools wheel ninja || fail "could not install setuptools<81/wheel/ninja"
  need "import pkg_resources" "setuptools installed but pkg_resources does not import"
  if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__.startswith('2.1.')" 2>/dev/null; then
    step "mmcv $("$PY" -c 'import mmcv; print(mmcv.__version__)') with ops already installed"
  else
    command -v "${CXX:-c++}" >/dev/null || fail "no C++ compiler (${CXX:-c++}) to build mmcv's ops: install g++ (Debian: apt-get install g++)"
    need "import sysconfig, os; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" \
      "Python headers (Python.h) missing to build mmcv's ops: install python3-dev"
    step "building mmcv==2.1.0 against torch $("$PY" -c 'import torch; print(torch.__version__)') (about 10 min on 2 cores when not cached)"
    MAX_JOBS=${MAX_JOBS:-$(nproc)} "${PIP[@]}" --no-build-isolation "mmcv==2.1.0" \
      || fail "mmcv 2.1.0 build failed (needs a C++ compiler, torch installed first and setuptools<81)"
    need "import mmcv.ops" "mmcv installed but mmcv.ops does not import"
  fi
fi

step "installing raynas (editable) with the $STACK stack and extras [$EXTRAS]"
"${PIP[@]}" -e ".[$STACK,$EXTRAS]" || fail "pip install -e .[$STACK,$EXTRAS] failed"
need "import raynas, mmseg_plugins, mmseg, ray" "raynas installed but does not import"
if [ "$STACK" = onedl ]; then
  step "the mmseg:: config scope"
  "$PY" -m raynas.mmseg_alias || fail "could not install the mmsegmentation alias distribution"
fi
step "checking the environment (raynas doctor)"
"$PY" -m raynas.cli doctor || fail "raynas doctor found a problem (see above)"
