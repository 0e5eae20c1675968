"""The GPU-memory check before launch: its extrapolation against a direct measurement, and
``raynas check`` refusing a config whose step cannot fit the trial's GPU, with the number."""

from __future__ import annotations

from pathlib import Path

import pytest

from raynas.cli import main
from raynas.config import load_config
from raynas.data.layouts import write_layout
from raynas.memory import _step, gpu_memory_mib, saved_bytes, step_memory

ROOT = Path(__file__).resolve().parents[2]
CITYSCAPES = ROOT / "configs/cityscapes/realtime.py"


def test_extrapolated_activations_match_a_direct_measurement() -> None:
    cfg = load_config(CITYSCAPES, {"model.data_preprocessor.size": (128, 256)})
    est = step_memory(cfg, batch=2)
    from mmseg_plugins.arch import search_space, set_arch
    from raynas.export import build_supernet

    model = build_supernet(cfg).train()
    set_arch(model, search_space(model).extreme(True))
    direct = saved_bytes(lambda: _step(model, (128, 256), 1, None, batch=2)) / 2**20
    assert est.activations_mib == pytest.approx(direct, rel=0.05)
    assert est.total_mib > est.activations_mib + est.states_mib


def test_relaxed_and_mixed_precision_steps_scale_as_measured() -> None:
    cfg = load_config(CITYSCAPES, {"model.data_preprocessor.size": (256, 512)})
    full = step_memory(cfg, batch=1)
    assert 2.5 < step_memory(cfg, batch=1, relaxed=True).activations_mib / full.activations_mib < 8
    assert 0.4 < step_memory(cfg, batch=1, amp="bf16").activations_mib / full.activations_mib < 0.8


def test_gpu_share() -> None:
    assert gpu_memory_mib({"gpu": 0, "gpu_memory": 80}) is None
    assert gpu_memory_mib({"gpu": 0.5, "gpu_memory": 80}) == 40 * 1024
    assert gpu_memory_mib({"workers": 2, "gpu_per_worker": 1, "gpu_memory": 24}) == 24 * 1024


def test_check_refuses_a_step_that_cannot_fit(tmp_path: Path, capsys) -> None:
    root = write_layout("cityscapes", tmp_path / "cs")
    data = [f"{s}_dataloader.dataset.data_root={root}" for s in ("train", "val", "test")]
    assert main(["check", str(CITYSCAPES), "--cfg-options", *data,
                 "tune_cfg.supernet.resources.gpu_memory=6"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "tune_cfg.supernet: the largest path's step at 512x1024, batch 8: ~7." in err
    assert "exceeds the 6.0 GiB of the trial's GPU" in err and "batch_size" in err
    # the same batch in bf16 fits
    assert (
        main(
            [
                "check",
                str(CITYSCAPES),
                "--cfg-options",
                *data,
                "tune_cfg.supernet.resources.gpu_memory=6",
                "tune_cfg.supernet.amp=bf16",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "memory: supernet: the largest path's step in bf16 at 512x1024, batch 8" in out
    assert "of 6.0 GiB" in out
