"""Loops: validation of named paths of a supernet (e.g. the largest and the smallest), and an
iteration-based training loop whose resume continues exactly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.logging import print_log
from mmengine.runner import IterBasedTrainLoop, ValLoop
from mmengine.runner.base_loop import BaseLoop
from mmseg.registry import LOOPS

from mmseg_plugins.arch import current_arch, search_space, set_arch, unwrap
from mmseg_plugins.bn_calib import bn_buffers_preserved, calibration_loader, recalibrate_bn
from raynas.core.space import Arch

__all__ = ["ExactResumeTrainLoop", "PathValLoop"]


@LOOPS.register_module()
class PathValLoop(ValLoop):
    """Evaluates several paths; metrics are reported as ``'{path}/{metric}'``.

    The metrics of ``main`` are also reported under their plain names (``mIoU``...), so
    checkpoint selection and schedulers see one number. BN statistics are recalibrated per path
    on ``calib_batches`` training batches and restored afterwards, so validation leaves the
    training state untouched.

    Args:
        runner: The runner.
        dataloader: Validation dataloader (or its config).
        evaluator: Evaluator (or its config).
        paths: ``'largest'``, ``'smallest'`` or a mapping name -> arch.
        calib_batches: Training batches for BN recalibration (0: none).
        main: Which path's metrics are also reported under plain names.
        fp16: Autocast.
    """

    def __init__(
        self,
        runner: Any,
        dataloader: Any,
        evaluator: Any,
        paths: Sequence[str] | Mapping[str, Arch] = ("largest", "smallest"),
        calib_batches: int = 4,
        main: str | None = None,
        fp16: bool = False,
    ) -> None:
        super().__init__(runner, dataloader, evaluator, fp16)
        self.paths = paths
        self.calib_batches = calib_batches
        self.main = main
        self._calib = None

    def _named_paths(self) -> dict[str, Arch]:
        if isinstance(self.paths, Mapping):
            return {k: dict(v) for k, v in self.paths.items()}
        space = search_space(unwrap(self.runner.model))
        return {name: space.extreme(name == "largest") for name in self.paths}

    def _calib_loader(self):
        if self._calib is None:
            loop = getattr(self.runner, "_train_loop", None)
            if isinstance(loop, BaseLoop):
                train = loop.dataloader
            else:
                train = self.runner.build_dataloader(self.runner._train_dataloader)
            self._calib = calibration_loader(train.dataset, train.batch_size)
        return self._calib

    def run(self) -> dict:
        self.runner.call_hook("before_val")
        self.runner.call_hook("before_val_epoch")
        model = unwrap(self.runner.model)
        previous = current_arch(model)
        paths = self._named_paths()
        main = self.main or next(iter(paths))
        metrics: dict[str, Any] = {}
        with bn_buffers_preserved(model):
            for name, arch in paths.items():
                set_arch(model, arch)
                if self.calib_batches:
                    recalibrate_bn(model, self._calib_loader(), self.calib_batches)
                self.runner.model.eval()
                for idx, batch in enumerate(self.dataloader):
                    self.run_iter(idx, batch)
                result = self.evaluator.evaluate(len(self.dataloader.dataset))
                metrics.update({f"{name}/{k}": v for k, v in result.items()})
                if name == main:
                    metrics.update(result)
        set_arch(model, previous)
        self.runner.call_hook("after_val_epoch", metrics=metrics)
        self.runner.call_hook("after_val")
        return metrics

    @torch.no_grad()
    def run_iter(self, idx: int, data_batch: Sequence[dict]) -> None:
        super().run_iter(idx, data_batch)


@LOOPS.register_module()
class ExactResumeTrainLoop(IterBasedTrainLoop):
    """mmengine's ``IterBasedTrainLoop`` with one more hook point, ``after_dataloader_skip``,
    between the data-loader replay of a resume and the first new batch (where
    :class:`~mmseg_plugins.hooks.rng_state.RNGStateHook` restores the global RNGs, so the next
    batch's augmentations draw as in an uninterrupted run)."""

    def run(self) -> Any:
        self.runner.call_hook("before_train")
        self.runner.call_hook("before_train_epoch")
        if self._iter > 0:
            print_log(f"Advance dataloader {self._iter} steps to skip data that has already "
                      "been trained", logger="current")  # fmt: skip
            for _ in range(self._iter):
                next(self.dataloader_iterator)
            self.runner.call_hook("after_dataloader_skip")
        while self._iter < self._max_iters and not self.stop_training:
            self.runner.model.train()
            data_batch = next(self.dataloader_iterator)
            self.run_iter(data_batch)
            self._decide_current_val_interval()
            if (
                self.runner.val_loop is not None
                and self._iter >= self.val_begin
                and (self._iter % self.val_interval == 0 or self._iter == self._max_iters)
            ):
                self.runner.val_loop.run()
        self.runner.call_hook("after_train_epoch")
        self.runner.call_hook("after_train")
        return self.runner.model
