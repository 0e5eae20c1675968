"""The segmentation search space's settings: dilations measured against the input size."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from raynas.core.seg_space import BackboneSettings

ROOT = Path(__file__).resolve().parents[2]


def test_dilations_past_the_feature_map_are_named() -> None:
    notes = BackboneSettings().degenerate_dilations((128, 128))
    assert notes == [
        "stage0 at 1/16 (8x8 maps, zoomed): dilation(s) [8]",
        "stage1 at 1/32 (4x4 maps, zoomed): dilation(s) [4, 8]",
        "stage1 at 1/16 (8x8 maps): dilation(s) [8]",
        "stage2 at 1/64 (2x2 maps, zoomed): dilation(s) [2, 4, 8]",
        "stage2 at 1/32 (4x4 maps): dilation(s) [4, 8]",
    ]
    assert BackboneSettings().degenerate_dilations((1024, 2048)) == []  # Cityscapes
    assert BackboneSettings(dilations=(1, 2), zooms=(1,)).degenerate_dilations((128, 128)) == []


def test_raynas_space_prints_the_note() -> None:
    out = subprocess.run([sys.executable, "-m", "raynas.cli", "space", "configs/quickstart.py"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert "6.722e+18 distinct architectures" in out
    assert "note: at the 128x128 input" in out and "stage2 at 1/32 (4x4 maps)" in out
