"""The metrics of one path of a supernet: set it, recalibrate BN, evaluate, restore BN."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from mmseg_plugins.arch import set_arch
from mmseg_plugins.bn_calib import bn_buffers_preserved, recalibrate_bn

__all__ = ["evaluate_path"]


@torch.no_grad()
def evaluate_path(
    model: nn.Module,
    arch: Mapping[str, Any],
    calib: Iterable[dict],
    calib_batches: int,
    loader: Iterable[dict],
    evaluator: Any,
    size: int,
) -> dict[str, float]:
    """Metrics of one path: set it, recalibrate BN, evaluate; BN buffers restored after.

    Args:
        model: The supernet segmentor.
        arch: The path.
        calib: Training batches for recalibration (:func:`calibration_loader`).
        calib_batches: How many of them.
        loader: Evaluation batches.
        evaluator: An mmengine ``Evaluator`` with its ``dataset_meta`` set.
        size: Number of evaluated samples (``Evaluator.evaluate``'s argument).
    """
    set_arch(model, arch)
    with bn_buffers_preserved(model):
        recalibrate_bn(model, calib, calib_batches)
        model.eval()
        for batch in loader:
            evaluator.process(model.val_step(batch), batch)
        return evaluator.evaluate(size)
