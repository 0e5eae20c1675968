"""Validation of named paths of a supernet (e.g. the largest and the smallest)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from mmengine.runner import ValLoop
from mmengine.runner.base_loop import BaseLoop
from mmseg.registry import LOOPS

from mmseg_plugins.arch import current_arch, search_space, set_arch, unwrap
from mmseg_plugins.bn_calib import bn_buffers_preserved, calibration_loader, recalibrate_bn
from raynas.core.space import Arch

__all__ = ["PathValLoop"]


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
