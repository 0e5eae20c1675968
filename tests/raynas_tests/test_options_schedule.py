"""A trial stretches the config's schedule to its iterations; a warm-up keeps its length."""

from __future__ import annotations

from mmengine.config import Config

from raynas.tune.trial import scale_schedule


def test_schedule_is_stretched_and_warm_up_kept() -> None:
    cfg = Config(
        dict(
            train_cfg=dict(max_iters=2000),
            param_scheduler=[
                dict(type="LinearLR", begin=0, end=100),
                dict(type="PolyLR", begin=100, end=2000),
            ],
        )
    )
    scale_schedule(cfg, 500)
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 100), (100, 500)]
    scale_schedule(cfg, 50)  # shorter than the warm-up: everything within the run
    assert [(s.begin, s.end) for s in cfg.param_scheduler] == [(0, 50), (49, 50)]
