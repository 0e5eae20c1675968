"""mmengine hooks connecting the pure path samplers to the Runner."""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS
from torch import nn

from mmseg_plugins.arch import search_space, set_arch
from raynas.core.sampler import PathSampler, build_sampler
from raynas.space import Arch

__all__ = ["PathSamplingHook", "unwrap"]

META_KEY = "raynas_sampler"


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class PathSamplingHook(Hook):
    """Samples one path per training iteration and sets it on the supernet.

    The sampler's state travels in the checkpoint's ``meta['raynas_sampler']``, so a resumed
    run draws the same next paths as an uninterrupted one.

    Args:
        sampler: ``dict(type=..., **kwargs)`` for :func:`raynas.core.build_sampler`.
    """

    priority = "VERY_HIGH"

    def __init__(self, sampler: dict[str, Any] | None = None) -> None:
        self.sampler_cfg = dict(sampler or dict(type="uniform", seed=0))
        self._sampler: PathSampler | None = None
        self._pending: dict[str, Any] | None = None
        self.current: Arch | None = None

    def sampler(self, runner: Any) -> PathSampler:
        if self._sampler is None:
            self._sampler = build_sampler(self.sampler_cfg, search_space(unwrap(runner.model)))
        if self._pending is not None:
            self._sampler.load_state_dict(self._pending)
            self._pending = None
        return self._sampler

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        self.current = self.sampler(runner).sample(runner.iter)
        set_arch(unwrap(runner.model), self.current)

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: dict | None = None
    ) -> None:
        loss = (outputs or {}).get("loss")
        if self.current is not None and loss is not None:
            self.sampler(runner).update(self.current, {"loss": float(loss)})

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint.setdefault("meta", {})[META_KEY] = self.sampler(runner).state_dict()

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = checkpoint.get("meta", {}).get(META_KEY)
        if state is not None:
            self._pending = state
