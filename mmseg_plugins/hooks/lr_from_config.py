"""The config's learning rate in force after a resume (PBT's exploit and mutate).

A resumed Runner loads the optimizer's param groups and the LR schedulers' ``base_values``
from the checkpoint, so a learning rate changed in the config (as Population Based Training
changes it when a trial continues from a better trial's checkpoint) would have no effect. Before
training, this hook rescales every param group's ``initial_lr`` and current ``lr`` and every LR
scheduler's ``base_values`` by ``config lr / checkpoint base lr``: the schedule's base becomes
the config's value and its next step gives that value times the schedule's factor. An ordinary
resume (same lr) changes nothing.
"""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

__all__ = ["LRFromConfigHook", "lr_state"]


def _schedulers(runner: Any) -> list[Any]:
    scheds = runner.param_schedulers or []
    if isinstance(scheds, dict):
        scheds = [s for group in scheds.values() for s in group]
    return [s for s in scheds if getattr(s, "param_name", "lr") == "lr"]


def lr_state(runner: Any) -> dict[str, float]:
    """The first param group's current ``lr`` and the schedule's base (``initial_lr``)."""
    group = runner.optim_wrapper.optimizer.param_groups[0]
    return {"lr": float(group["lr"]), "lr_base": float(group.get("initial_lr", group["lr"]))}


@HOOKS.register_module()
class LRFromConfigHook(Hook):
    """After a resume, the config's ``optim_wrapper.optimizer.lr`` as the schedule's base (the
    first param group's base is the reference; others keep their ratio to it)."""

    priority = "LOW"

    def before_train(self, runner: Any) -> None:
        if not runner._has_loaded:  # a fresh run already trains with the config's lr
            return
        want = runner.cfg.optim_wrapper.optimizer.get("lr")
        groups = runner.optim_wrapper.optimizer.param_groups
        have = groups[0].get("initial_lr", groups[0]["lr"])
        if not want or not have or abs(want - have) <= 1e-12 * abs(want):
            return
        ratio = want / have
        for group in groups:
            group["initial_lr"] = group.get("initial_lr", group["lr"]) * ratio
            group["lr"] *= ratio
        for sched in _schedulers(runner):
            sched.base_values = [b * ratio for b in sched.base_values]
            if getattr(sched, "_last_value", None):
                sched._last_value = [v * ratio for v in sched._last_value]
        runner.logger.info(f"lr from the config: base {have:.4g} -> {want:.4g} (x{ratio:.4g})")
