"""The pure core imports neither ray nor mmengine; mmseg_plugins does not import ray."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "raynas",
    "raynas.space",
    "raynas.seg_space",
    "raynas.complexity",
    "raynas.core",
    "raynas.data",
]


def _loaded(module: str) -> set[str]:
    code = f"import sys, {module}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", PURE)
def test_pure_core_imports_neither_ray_nor_mmengine(module: str) -> None:
    loaded = _loaded(module)
    assert module in loaded
    assert not {m for m in loaded if m.split(".")[0] in {"ray", "mmengine", "mmseg", "mmcv"}}


def test_mmseg_plugins_does_not_import_ray() -> None:
    loaded = _loaded("mmseg_plugins")
    assert "mmseg_plugins.models.backbone" in loaded
    assert not {m for m in loaded if m.split(".")[0] == "ray"}
