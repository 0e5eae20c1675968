#!/usr/bin/env bash
# The wheelhouse that benchmarks/gpu_check.sh installs from on a bare GPU machine (no network,
# Python 3.12, its own torch; at most 64 MiB carried beside the repository):
#   .cache/gpu_wheels/  the maintained OpenMMLab stack as pure-Python wheels (built here from
#                       its sdists) and their small dependencies, for CPython $PYVER x86_64;
#                       then each heavy binary of HEAVY, in order, while the total stays under
#                       LIMIT_MIB (default: opencv-python-headless 4.10, 47.5 MiB, which
#                       mmcv imports; the total is then 62 MiB). numpy, scipy (mmseg imports
#                       it; 32 MiB) and matplotlib (mmengine's visualizer; 18 MiB with its
#                       dependencies) do not fit beside it: the machine must have them.
# PYVER=3.11 builds one for this machine's Python (the CPU dry run of gpu_check.sh).
# Carry it: the device tool's carry=[".cache/gpu_wheels"].
set -euo pipefail
cd "$(dirname "$0")/.."
WH=${WH:-.cache/gpu_wheels}
LIMIT_MIB=${LIMIT_MIB:-64}
HEAVY=${HEAVY:-"opencv-python-headless<4.11"}
PIP=${PIP:-python3 -m pip}
PYVER=${PYVER:-3.12}
PLATFORM="--python-version $PYVER --only-binary=:all: --platform manylinux_2_28_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any"
rm -rf "$WH" && mkdir -p "$WH"
# the OpenMMLab packages, pure Python (mmcv without its compiled ops, which raynas does not use)
MMCV_WITH_OPS=0 $PIP wheel -q --no-deps -w "$WH" "onedl-mmengine>=0.10.12,<0.11" \
  "onedl-mmcv>=2.3.6,<2.4" "onedl-mmsegmentation>=1.4.2,<1.5"
# their small dependencies (pure Python, or small binaries for CPython 3.12)
$PIP download -q --no-deps -d "$WH" $PLATFORM addict yapf termcolor rich markdown-it-py mdurl \
  pygments prettytable wcwidth ftfy regex pyyaml packaging platformdirs "pillow<13" tomli
size() { du -sm "$WH" | cut -f1; }
IFS=';' read -ra heavy <<<"$HEAVY"
for spec in "${heavy[@]}"; do
  tmp=$(mktemp -d)
  $PIP download -q --no-deps -d "$tmp" $PLATFORM "$spec"
  add=$(du -sm "$tmp" | cut -f1)
  if (( $(size) + add <= LIMIT_MIB )); then mv "$tmp"/*.whl "$WH"/; else
    echo "left out $spec ($add MiB): over the $LIMIT_MIB MiB carry"; fi
  rm -rf "$tmp"
done
ls -1 "$WH"
echo "$WH: $(du -sb "$WH" | cut -f1) bytes ($(size) MiB of $LIMIT_MIB)"
