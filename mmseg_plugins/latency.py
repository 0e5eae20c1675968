"""CPU/GPU latency of a path: measured end to end, or predicted from a per-layer table."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmseg_plugins.models.blocks import FixedLayer
from raynas.seg_space import HEAD, needed_stages, stage_arch, stage_width

__all__ = ["LatencyTable", "measure_latency"]


@torch.no_grad()
def _time(fn: Callable[[], Any], warmup: int, runs: int) -> float:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def measure_latency(
    model: nn.Module, input_size: tuple[int, int], warmup: int = 5, runs: int = 20
) -> float:
    """Median latency in ms of ``model._forward`` (an mmseg segmentor) on one image.

    Args:
        model: A static subnet (or a supernet with its path set).
        input_size: ``(H, W)``.
        warmup: Untimed runs first.
        runs: Timed runs; the median is returned.
    """
    device = next(model.parameters()).device
    x = torch.randn(1, 3, *input_size, device=device)
    was_training = model.training
    model.eval()
    try:
        return _time(lambda: model._forward(x), warmup, runs)
    finally:
        model.train(was_training)


class LatencyTable:
    """Per-layer latency lookup table of the searchable layers (ms, batch 1).

    The latency of a path is predicted as the measured latency of its fixed part (stem,
    downsampling convs and head, measured once for the largest path) plus the sum of the
    table entries of its layers; each entry is measured once, on first use, on a
    :class:`FixedLayer` at the stage's resolution. Save and reuse the table with
    :meth:`save` / :meth:`load`.

    Args:
        settings: The supernet's backbone settings.
        input_size: ``(H, W)`` of the input image.
        runs: Timed runs per entry.
    """

    def __init__(self, settings: Any, input_size: tuple[int, int], runs: int = 20) -> None:
        self.settings, self.input_size, self.runs = settings, tuple(input_size), runs
        self.entries: dict[str, float] = {}

    def _size(self, stage: int) -> tuple[int, int]:
        h, w = self.input_size
        div = 2 ** (stage + 3)
        return -(-h // div), -(-w // div)

    def layer(self, stage: int, width: int, op: str, dilation: int, zoom: int) -> float:
        key = f"{stage}/{width}/{op}/{dilation}/{zoom}"
        if key not in self.entries:
            module = FixedLayer(width, op, dilation, zoom).eval()
            x = torch.randn(1, width, *self._size(stage))
            self.entries[key] = _time(lambda: module(x), 3, self.runs)
        return self.entries[key]

    def layers(self, arch: Mapping[str, Any]) -> float:
        """Summed table latency of the searchable layers of a path."""
        total = 0.0
        for i in range(needed_stages(arch[f"{HEAD}fusion"])):
            _, ratio, layers = stage_arch(arch, i)
            width = stage_width(self.settings.stage_channels[i], ratio)
            total += sum(self.layer(i, width, *spec) for spec in layers)
        return total

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(
            json.dumps({"input_size": self.input_size, "entries": self.entries}, indent=1)
        )

    def load(self, path: str | os.PathLike) -> LatencyTable:
        doc = json.loads(Path(path).read_text())
        if tuple(doc["input_size"]) != self.input_size:
            raise ValueError(f"{path} was measured at {doc['input_size']}, not {self.input_size}")
        self.entries.update(doc["entries"])
        return self
