"""Global RNG states in checkpoints, restored where an uninterrupted run would have them.

Augmentations (numpy, python ``random``) and dropout (torch) draw from the global RNGs. The
states travel in ``meta['raynas_rng']``. On resume, mmengine replays the data loader up to the
checkpoint's iteration, which consumes those RNGs; :class:`ExactResumeTrainLoop` therefore
calls ``after_dataloader_skip``, where the saved states are restored, before it loads the next
batch. With another loop the states are restored before the first iteration (the batch
already loaded then draws differently). Validation leaves the states as it found them (a
data-loader iterator alone draws from torch's RNG), so a run validated at a checkpoint and one
resumed from it continue the same.
"""

from __future__ import annotations

from typing import Any

from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmseg_plugins.checkpoint import RNG_KEY, read_meta, rng_state, set_rng_state, write_meta

__all__ = ["RNGStateHook"]


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Saves the global RNG states with every checkpoint and restores them on resume."""

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None
        self._before_val: dict[str, Any] | None = None

    def before_val_epoch(self, runner: Any) -> None:
        self._before_val = rng_state()

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        if self._before_val is not None:
            set_rng_state(self._before_val)
            self._before_val = None

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        write_meta(checkpoint, RNG_KEY, rng_state())

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = read_meta(checkpoint, RNG_KEY)

    def after_dataloader_skip(self, runner: Any) -> None:
        """Called by :class:`~mmseg_plugins.loops.ExactResumeTrainLoop` after the replay."""
        self.before_train_iter(runner, 0)

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self._pending is not None:
            set_rng_state(self._pending)
            self._pending = None
