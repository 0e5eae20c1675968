"""Hooks shared by the tests that train a real mmengine Runner."""

from __future__ import annotations

from mmengine.hooks import Hook


class StopAt(Hook):
    """Ends training after ``iters`` iterations, as a crash would (same schedule as a full run)."""

    priority = "LOWEST"

    def __init__(self, iters: int) -> None:
        self.iters = iters

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        if runner.iter + 1 >= self.iters:
            runner.train_loop.stop_training = True
