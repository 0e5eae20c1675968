"""Every named baseline builds in a found subnet's training config and trains a step."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from raynas.baselines import BASELINES, baseline_config


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_trains_a_step_on_the_subnet_config(name: str, load_cfg: Any) -> None:
    from mmengine.optim import OptimWrapper
    from mmseg.registry import MODELS

    cfg = baseline_config(
        name, load_cfg("supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py")
    )
    assert cfg.model.decode_head.num_classes == 8
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    batch = next(iter(runner.train_dataloader))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01))
    log = model.train_step(batch, optim)
    assert torch.isfinite(log["loss"])
