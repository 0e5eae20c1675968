"""mmseg's BiSeNetV2 trains on synthseg, checkpoints, and resumes (torch >= 2.6 safe loading)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

pytestmark = pytest.mark.slow  # trains BiSeNetV2 with the Runner and resumes it: ~12 s

CONFIG = "baselines/bisenetv2_fcn_1xb8-1k_synthseg-128x128.py"


class _Capture(Hook):
    """Records the iteration and optimizer momentum when training (re)starts."""

    def before_train(self, runner) -> None:
        self.iter = runner.iter
        state = runner.optim_wrapper.optimizer.state
        self.momentum = {id(p): s["momentum_buffer"].clone() for p, s in state.items()}
        self.params = list(runner.model.parameters())


def _cfg(load_cfg, max_iters: int):
    return load_cfg(
        CONFIG,
        **{
            "train_cfg.max_iters": max_iters,
            "train_cfg.val_interval": 1000,
            "default_hooks.checkpoint.interval": 50,
            "param_scheduler.0.end": 60,
        },
    )


def test_bisenetv2_trains_checkpoints_and_resumes(load_cfg) -> None:
    cfg = _cfg(load_cfg, 50)
    runner = Runner.from_cfg(cfg)
    runner.train()
    ckpt = Path(cfg.work_dir) / "iter_50.pth"
    assert runner.iter == 50 and ckpt.is_file()
    saved = torch.load(ckpt, weights_only=True)  # mmseg_plugins allow-lists mmengine's types
    saved_momentum = [s["momentum_buffer"] for s in saved["optimizer"]["state"].values()]

    cfg2 = _cfg(load_cfg, 60)
    cfg2.work_dir = cfg.work_dir
    cfg2.resume = True
    runner2 = Runner.from_cfg(cfg2)
    capture = _Capture()
    runner2.register_hook(capture)
    runner2.train()

    assert capture.iter == 50  # the iteration counter was restored, not restarted at 0
    assert runner2.iter == 60
    restored = [capture.momentum[id(p)] for p in capture.params if id(p) in capture.momentum]
    assert len(restored) == len(saved_momentum) > 0
    for a, b in zip(restored, saved_momentum):
        torch.testing.assert_close(a, b)
    assert (Path(cfg.work_dir) / "iter_60.pth").is_file()
