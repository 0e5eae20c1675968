"""Complexity-aware learning rate (CaLR, DYNAS) as an mmengine hook.

Acts after :class:`~mmseg_plugins.hooks.path_sampling.PathSamplingHook` has set the
iteration's path (lower priority) and combines with any sampler; its state travels in the
checkpoint meta.
"""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmseg_plugins.arch import complexity_table, current_arch, search_space, unwrap
from mmseg_plugins.checkpoint import CALR_KEY, read_meta, write_meta
from raynas.core.calr import calr_factor
from raynas.core.errors import InvalidValueError

__all__ = ["CaLRHook", "optimizer"]


def optimizer(runner: Any) -> Any:
    return runner.optim_wrapper.optimizer


@HOOKS.register_module()
class CaLRHook(Hook):
    """Sets each param group's lr from the sampled path's complexity (params, as DYNAS).

    Replaces the config's ``param_scheduler`` (use none, or a constant one, with it).

    Args:
        gamma_max: Exponent for the smallest path (the largest gets ``1 / gamma_max``).
        eta_min: Floor of the multiplier.
        complexity: ``'params'`` (DYNAS) or ``'flops'``.
    """

    priority = "HIGH"  # after PathSamplingHook (VERY_HIGH)

    def __init__(
        self, gamma_max: float = 4.0, eta_min: float = 0.0, complexity: str = "params"
    ) -> None:
        if complexity not in ("params", "flops"):
            raise InvalidValueError(f"complexity must be 'params' or 'flops', got {complexity!r}")
        self.gamma_max, self.eta_min, self.complexity = gamma_max, eta_min, complexity
        self.base_lrs: list[float] | None = None
        self.last_factor = 1.0

    def before_train(self, runner: Any) -> None:
        if self.base_lrs is None:
            self.base_lrs = [g.get("initial_lr", g["lr"]) for g in optimizer(runner).param_groups]
        model = unwrap(runner.model)
        space = search_space(model)
        size = model.data_preprocessor.size or (512, 512)  # only relative complexity matters
        self._table = complexity_table(model, size)
        self._bounds = self._table.span(space, self.complexity)

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        c = getattr(self._table(current_arch(unwrap(runner.model))), self.complexity)
        self.last_factor = calr_factor(
            runner.iter, runner.max_iters, c, *self._bounds, self.gamma_max, self.eta_min
        )
        for group, base in zip(optimizer(runner).param_groups, self.base_lrs):
            group["lr"] = base * self.last_factor

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        write_meta(checkpoint, CALR_KEY, {"base_lrs": self.base_lrs})

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = read_meta(checkpoint, CALR_KEY)
        if state:
            self.base_lrs = list(state["base_lrs"])
