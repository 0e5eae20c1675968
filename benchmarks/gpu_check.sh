#!/usr/bin/env bash
# The GPU check, for a GPU machine lent for minutes: under 5 minutes on one GPU once installed.
#   1. installs only what is missing (an environment that already imports raynas and mmseg is
#      reused; else scripts/install.sh: the maintained OpenMMLab stack, beside the installed
#      torch), and prints which stack it runs on (raynas doctor),
#   2. runs the `gpu`-marked tests (proxies, DPS round, BN recalibration, path evaluation,
#      PA&DA weights on cuda),
#   3. a 200-iteration supernet trial on CUDA in fp32 and bf16, and the supernet-vs-static-
#      subnet step ratio on CUDA (benchmarks/gpu_check.py).
# Figures go to $OUT (the device tool's output folder) or benchmarks/results/.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu_check_nvidia.txt"
if ! python3 -c "import raynas, mmcv, mmseg, ray" 2>/dev/null; then
  MAX_JOBS=${MAX_JOBS:-$(nproc)} bash scripts/install.sh
fi
python3 -c "import torch; assert torch.cuda.is_available(), 'torch sees no GPU'; print('torch', torch.__version__, 'cuda', torch.version.cuda)"
python3 -m raynas.cli doctor || true
timeout 120 python3 -m pytest -m gpu -q -p no:cacheprovider tests 2>&1 | tee "$OUT/gpu_tests.txt"
timeout 200 python3 -m benchmarks.gpu_check --iters 200 --out "$OUT"
