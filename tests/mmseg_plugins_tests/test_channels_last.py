"""Training in channels-last memory format (ChannelsLastHook) with the base schedule's fused
AdamW: the model learns, its checkpoint loads into a plain mmseg model unchanged, and the hook
can be turned off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from raynas.export import subnet_config

SUPERNET = "supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


def _convs(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, nn.Conv2d)]


def _train(cfg: Any, work: Path, iters: int, hook: dict | None) -> Any:
    from mmengine.runner import Runner

    cfg.train_cfg.update(max_iters=iters, val_interval=1000)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iters)
    if hook is not None:
        cfg.default_hooks.memory_format = hook
    cfg.work_dir = str(work)
    runner = Runner.from_cfg(cfg)
    runner.train()
    return runner


@pytest.mark.parametrize("devices", [("cpu",), ()])
def test_channels_last_trains_and_its_checkpoint_loads_into_plain_mmseg(
    devices: tuple[str, ...], load_cfg: Any, tmp_path: Path
) -> None:
    from mmseg.apis import init_model

    from raynas.config import space_and_table

    cfg = load_cfg(SUPERNET)
    space, _ = space_and_table(cfg)
    sub = subnet_config(cfg, space.sample(np.random.default_rng(0)))
    assert sub.optim_wrapper.optimizer.fused and sub.optim_wrapper.clip_grad.foreach
    init = {k: v.clone() for k, v in _train(sub.copy(), tmp_path / "init", 1, None)
            .model.state_dict().items()}  # fmt: skip
    runner = _train(sub.copy(), tmp_path / "run", 4, dict(type="ChannelsLastHook",
                                                           devices=devices))  # fmt: skip
    converted = [w.is_contiguous(memory_format=torch.channels_last) for w in _convs(runner.model)]
    # 1x1 and depthwise kernels are contiguous in both formats
    dense = [w for w in _convs(runner.model) if w.shape[1] > 1 and w.shape[-1] > 1]
    if devices:
        assert all(converted)
    else:
        assert dense and not any(w.is_contiguous(memory_format=torch.channels_last) for w in dense)
    trained = runner.model.state_dict()
    assert any(not torch.equal(trained[k], init[k]) for k in init)  # the fused AdamW stepped

    ckpt = next((tmp_path / "run").glob("iter_4.pth"))
    plain = init_model(sub, str(ckpt), device="cpu").eval()
    assert all(w.is_contiguous() for w in _convs(plain))
    runner.model.eval()
    x = torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(plain._forward(x), runner.model._forward(x))
