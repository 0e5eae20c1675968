"""Convolutions in channels-last memory format, measured faster for these networks on CPU.

oneDNN's convolutions take NHWC tensors without reordering them at every call. Measured on
a 2-core CPU machine with the real Runner (``experiments/step_speed/run.py``), a training step of
the quickstart's supernet on random paths took 0.82x the time, one of a mid-size subnet 0.88x.
Only the model's parameters and buffers are converted: a convolution with channels-last
weights returns channels-last activations, so the input batches stay as the data
preprocessor builds them. Checkpoints load into the converted tensors unchanged (values are
copied, not replaced), and an exported subnet's weights load into plain mmseg the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

__all__ = ["ChannelsLastHook"]


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Converts the model to ``torch.channels_last`` before training, validation or testing.

    A model wrapped for data-parallel training is left as it is: DDP lays out its gradient
    buckets by the parameters' strides when it wraps the model, before any hook runs.

    Args:
        devices: Device types (``'cpu'``, ``'cuda'``) on which to convert; the measurement
            behind the default was made on CPU only.
    """

    priority = "VERY_HIGH"

    def __init__(self, devices: Sequence[str] = ("cpu",)) -> None:
        self.devices = tuple(devices)

    def before_run(self, runner: Any) -> None:
        model = runner.model
        param = next(model.parameters(), None)
        if is_model_wrapper(model) or param is None or param.device.type not in self.devices:
            return
        model.to(memory_format=torch.channels_last)
