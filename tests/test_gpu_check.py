"""benchmarks/gpu_check.sh's CPU dry run (``DRY=1``): the bare-GPU-machine script end to end at
64 px, in a process that cannot import Ray (the bare machine has none)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # ~40 s on 2 cores
def test_gpu_check_dry_run_without_ray(tmp_path: Path) -> None:
    block = tmp_path / "noray"
    (block / "ray").mkdir(parents=True)
    (block / "ray/__init__.py").write_text("raise ImportError('no Ray on the GPU check machine')")
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    env = {**os.environ, "DRY": "1", "OUT": str(tmp_path / "out"), "PYTHONPATH": str(block),
           "PATH": path}  # fmt: skip
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    result = json.loads((tmp_path / "out/gpu_check.json").read_text())
    assert result["device"] == "cpu" and result["height"] == 64
    assert result["supernet"]["iters"] == 4 and result["retrain"]["iters"] == 2
    assert len(result["search"]) == 2 and all(0 <= c["mIoU"] <= 100 for c in result["search"])
    assert {r["path"] for r in result["latency"]["rows"]} == {"largest", "mid", "smallest"}
    assert result["step_ratio"][0]["estimate_mib"] > 0
    assert "| largest path step |" in (tmp_path / "out/gpu_check.md").read_text()
