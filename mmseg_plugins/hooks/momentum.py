"""Momentum separation (DYNAS) as an mmengine hook: one optimizer state per group of paths.

Acts after :class:`~mmseg_plugins.hooks.path_sampling.PathSamplingHook` has set the
iteration's path and combines with any sampler; its state travels in the checkpoint meta.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmseg_plugins.arch import current_arch, search_space, unwrap
from mmseg_plugins.checkpoint import MOMENTUM_KEY, read_meta, write_meta
from mmseg_plugins.hooks.calr import optimizer
from raynas.core.errors import UnknownKeyError, closest

__all__ = ["MomentumSeparationHook"]


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
                f"MomentumSeparationHook: unknown split_label {self.split_label!r}"
                f"{closest(self.split_label, space.choices)}; "
                f"valid labels: {list(space.choices)}"
            )
        self.groups = space.choices[self.split_label]

    def _params(self, runner: Any) -> list:
        return [p for g in optimizer(runner).param_groups for p in g["params"]]

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        opt = optimizer(runner)
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
            self.states[self.current] = optimizer(runner).state
        index = {id(p): i for i, p in enumerate(self._params(runner))}
        write_meta(
            checkpoint,
            MOMENTUM_KEY,
            {
                "current": self.current,
                "states": [
                    [g, {index[id(p)]: s for p, s in st.items()}] for g, st in self.states.items()
                ],
            },
        )

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = read_meta(checkpoint, MOMENTUM_KEY)
