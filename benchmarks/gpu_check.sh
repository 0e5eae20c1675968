#!/usr/bin/env bash
# The GPU check on a bare GPU machine: its own Python and torch, no OpenMMLab, no Ray, no
# network. Under 6 minutes on one GPU, unattended:
#   1. a virtualenv over the system's packages (its torch), and the OpenMMLab packages (and any
#      missing small dependency) from the carried wheelhouse (scripts/gpu_wheels.sh, carried
#      as .cache/gpu_wheels); an environment that already imports them is used as it is;
#   2. the `gpu`-marked tests, where pytest is installed;
#   3. benchmarks/gpu_check.py: the Cityscapes config on a full-resolution fixture through
#      mmengine's Runner (supernet, search scoring, retrain), the largest path's step against
#      its static subnet in fp32 and bf16 with peak memory, and a CUDA latency table.
# Figures go to $OUT (the device tool's output folder) or benchmarks/results/.
# DRY=1: the same on CPU at 64 px and a few iterations (tests/test_gpu_check.py runs it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
WH=${WH:-.cache/gpu_wheels}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
ARGS=()
if [ -n "${DRY:-}" ]; then
  ARGS=(--height 64 --images 12 --iters 4 --retrain-iters 2 --candidates 2 --steps 1)
else
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_check_nvidia.txt"
  python3 -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'"
fi
python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
if ! python3 -c "import mmengine, mmcv, mmseg" 2>/dev/null; then
  [ -d "$WH" ] || { echo "no wheelhouse at $WH: run bash scripts/gpu_wheels.sh and carry it"; exit 2; }
  if [ -z "${VIRTUAL_ENV:-}" ]; then  # a virtualenv over the system's torch
    python3 -m venv --system-site-packages /tmp/raynas-gpu-check
    . /tmp/raynas-gpu-check/bin/activate
  fi
  want="onedl-mmengine onedl-mmcv onedl-mmsegmentation"
  for pair in addict:addict yapf:yapf termcolor:termcolor rich:rich prettytable:prettytable \
      ftfy:ftfy regex:regex yaml:pyyaml packaging:packaging platformdirs:platformdirs \
      PIL:pillow wcwidth:wcwidth markdown_it:markdown-it-py mdurl:mdurl pygments:pygments \
      cv2:opencv-python-headless; do
    python3 -c "import ${pair%%:*}" 2>/dev/null || want="$want ${pair##*:}"
  done
  python3 -m pip install -q --no-index --no-deps --find-links "$WH" $want
  missing=$(python3 -c "
import importlib.util as u
print(' '.join(m for m in ('numpy', 'scipy', 'cv2', 'matplotlib') if not u.find_spec(m)))")
  if [ -n "$missing" ]; then
    echo "this machine lacks $missing, which the 64 MiB wheelhouse does not carry" | tee "$OUT/gpu_check_missing.txt"
    exit 3
  fi
  python3 -m raynas.mmseg_alias
fi
python3 -c "import mmengine, mmcv, mmseg; print('mmengine', mmengine.__version__, 'mmcv', mmcv.__version__, 'mmseg', mmseg.__version__)"
if [ -z "${DRY:-}" ] && python3 -c "import pytest" 2>/dev/null; then
  timeout 90 python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tail -5 | tee "$OUT/gpu_tests.txt" || true
fi
timeout 300 python3 -m benchmarks.gpu_check --out "$OUT" "${ARGS[@]}"
