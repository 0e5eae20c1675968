"""Subnet-aware training hooks (DYNAS): CaLR and momentum separation.

Both act after :class:`PathSamplingHook` has set the iteration's path (lower priority), and
combine with any sampler (uniform, DPS, PA&DA). Their state travels in the checkpoint meta.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmseg_plugins.arch import complexity_table, current_arch, search_space
from mmseg_plugins.hooks import unwrap
from raynas.core.calr import calr_factor
from raynas.core.errors import UnknownKeyError

__all__ = ["CaLRHook", "MomentumSeparationHook"]


def _optimizer(runner: Any) -> Any:
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
            raise ValueError(f"complexity must be 'params' or 'flops', got {complexity!r}")
        self.gamma_max, self.eta_min, self.complexity = gamma_max, eta_min, complexity
        self.base_lrs: list[float] | None = None
        self.last_factor = 1.0

    def before_train(self, runner: Any) -> None:
        if self.base_lrs is None:
            self.base_lrs = [g.get("initial_lr", g["lr"]) for g in _optimizer(runner).param_groups]
        model = unwrap(runner.model)
        space = search_space(model)
        size = model.data_preprocessor.size or (512, 512)  # only relative complexity matters
        self._table = complexity_table(model, size)
        self._bounds = [
            getattr(self._table(space.extreme(b)), self.complexity) for b in (False, True)
        ]

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        c = getattr(self._table(current_arch(unwrap(runner.model))), self.complexity)
        self.last_factor = calr_factor(
            runner.iter, runner.max_iters, c, *self._bounds, self.gamma_max, self.eta_min
        )
        for group, base in zip(_optimizer(runner).param_groups, self.base_lrs):
            group["lr"] = base * self.last_factor

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        checkpoint.setdefault("meta", {})["raynas_calr"] = {"base_lrs": self.base_lrs}

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = checkpoint.get("meta", {}).get("raynas_calr")
        if state:
            self.base_lrs = list(state["base_lrs"])


@HOOKS.register_module()
class MomentumSeparationHook(Hook):
    """One optimizer state (momentum buffers) per group of paths.

    Paths are grouped by their choice at ``split_label``; before each step the optimizer's
    state is swapped for the group's own, so paths of different groups never share momentum.

    Args:
        split_label: The label whose choice names the group.
    """

    priority = "HIGH"

    def __init__(self, split_label: str = "backbone.stage1.layer0.op") -> None:
        self.split_label = split_label
        self.states: dict[Any, Any] = {}
        self.current: Any = None
        self._pending: dict[str, Any] | None = None

    def before_train(self, runner: Any) -> None:
        space = search_space(unwrap(runner.model))
        if self.split_label not in space.choices:
            raise UnknownKeyError(
                f"MomentumSeparationHook: unknown split_label {self.split_label!r}; "
                f"valid labels: {list(space.choices)}"
            )
        self.groups = space.choices[self.split_label]

    def _params(self, runner: Any) -> list:
        return [p for g in _optimizer(runner).param_groups for p in g["params"]]

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        opt = _optimizer(runner)
        if self._pending is not None:
            params = self._params(runner)
            self.states = {
                g: defaultdict(dict, {params[i]: s for i, s in st.items()})
                for g, st in self._pending["states"]
            }
            self.current = self._pending["current"]
            opt.state = self.states.setdefault(self.current, defaultdict(dict))
            self._pending = None
        group = current_arch(unwrap(runner.model))[self.split_label]
        if group != self.current:
            if self.current is not None:
                self.states[self.current] = opt.state
            opt.state = self.states.setdefault(group, defaultdict(dict))
            self.current = group

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if self.current is not None:
            self.states[self.current] = _optimizer(runner).state
        index = {id(p): i for i, p in enumerate(self._params(runner))}
        checkpoint.setdefault("meta", {})["raynas_momentum"] = {
            "current": self.current,
            "states": [
                [g, {index[id(p)]: s for p, s in st.items()}] for g, st in self.states.items()
            ],
        }

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = checkpoint.get("meta", {}).get("raynas_momentum")
