"""A found subnet's config trains as plain mmseg, whatever strategy trained its supernet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from raynas.core.errors import InvalidValueError
from raynas.export import SUPERNET_HOOKS, drop_supernet_training, subnet_config


def _subnet_cfg(cfg: Any) -> Any:
    from raynas.config import space_and_table

    space, _ = space_and_table(cfg)
    return subnet_config(cfg, space.sample(np.random.default_rng(0)))


@pytest.mark.parametrize("strategy", ["uniform", "pada", "uniform-calr-ms", "dps-calr-ms"])
def test_subnet_of_every_strategy_trains_on_the_base_schedule(
    strategy: str, load_cfg: Any, tmp_path: Path
) -> None:
    from mmengine.runner import Runner

    cfg = load_cfg(f"supernet/segsupernet_{strategy}_1xb8-2k_synthseg-128x128.py")
    sub = _subnet_cfg(cfg)
    assert not {h["type"] for h in sub.custom_hooks} & set(SUPERNET_HOOKS)
    assert sub.train_dataloader.sampler.type == "InfiniteSampler"
    assert [s["type"] for s in sub.param_scheduler] == ["LinearLR", "PolyLR"]
    assert "subnet_param_scheduler" not in sub
    sub.train_cfg.update(max_iters=3, val_interval=100)
    sub.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=100)
    sub.work_dir = str(tmp_path / strategy)
    runner = Runner.from_cfg(sub)
    runner.train()
    base_lr = sub.optim_wrapper.optimizer.lr
    lr = runner.optim_wrapper.get_lr()["lr"][0]
    assert runner.iter == 3 and lr == pytest.approx(
        base_lr * (0.01 + 0.99 * 3 / 99)
    )  # warm-up, not CaLR


def test_calr_supernet_without_a_subnet_schedule_names_the_key(load_cfg: Any) -> None:
    cfg = load_cfg("supernet/segsupernet_uniform-calr-ms_1xb8-2k_synthseg-128x128.py")
    cfg.pop("subnet_param_scheduler")
    with pytest.raises(InvalidValueError, match="subnet_param_scheduler"):
        _subnet_cfg(cfg)


def test_dropping_the_supernet_machinery_gives_calr_its_subnet_schedule(load_cfg: Any) -> None:
    """What the SSR phase applies to its trials' config before stretching the schedule, so an
    SSR search from a CaLR config does not run at a constant learning rate."""
    cfg = load_cfg("supernet/segsupernet_uniform-calr-ms_1xb8-2k_synthseg-128x128.py")
    assert cfg.param_scheduler == [] and "CaLRHook" in {h["type"] for h in cfg.custom_hooks}
    drop_supernet_training(cfg)
    assert [s["type"] for s in cfg.param_scheduler] == ["LinearLR", "PolyLR"]
    assert not {h["type"] for h in cfg.custom_hooks} & set(SUPERNET_HOOKS)
    assert "subnet_param_scheduler" not in cfg
