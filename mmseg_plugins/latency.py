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

from mmseg_plugins.arch import current_arch, set_arch, set_relaxed
from mmseg_plugins.models.blocks import FixedLayer
from raynas.core.seg_space import (
    BACKBONE,
    HEAD,
    has_detail,
    needed_stages,
    stage_arch,
    stage_width,
)

__all__ = ["LatencyCost", "LatencyTable", "device_key", "measure_latency", "table_file"]


def device_key(
    device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, batch: int = 1
) -> str:
    """What a latency was measured on: the GPU's name (or the CPU model and torch's threads),
    the dtype and the batch size."""
    import platform

    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = f"{platform.processor() or platform.machine()}-{torch.get_num_threads()}threads"
    kind = str(dtype).removeprefix("torch.")
    return f"{device.type}-{name}-{kind}-b{batch}".replace(" ", "_").replace("/", "_")


@torch.no_grad()
def table_file(device: torch.device | str, input_size: tuple[int, int]) -> str:
    """The file name of the latency table of one device and input size."""
    return f"{device_key(device)}-{input_size[0]}x{input_size[1]}.json"


def _time(
    fn: Callable[[], Any], warmup: int, runs: int, device: torch.device | None = None
) -> float:
    """Median ms of ``fn()`` after ``warmup`` untimed calls; on CUDA timed with CUDA events
    (the GPU's own clock, the host synchronized after each run)."""
    for _ in range(warmup):
        fn()
    cuda = device is not None and device.type == "cuda"
    samples = []
    for _ in range(runs):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            samples.append(start.elapsed_time(end) / 1e3)
            continue
        begin = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - begin)
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
    ref = next(model.parameters())
    x = torch.randn(1, 3, *input_size, device=ref.device, dtype=ref.dtype)
    was_training = model.training
    model.eval()
    try:
        return _time(lambda: model._forward(x), warmup, runs, ref.device)
    finally:
        model.train(was_training)


class LatencyTable:
    """Latency lookup table of a supernet's paths (ms, batch 1).

    A path's latency is predicted as the sum of two kinds of entries, each measured once, on
    first use:

    - one per searchable layer (stage, width, op, dilation, zoom): a :class:`FixedLayer` at the
      stage's resolution;
    - one per *fixed part* (the needed stages' widths, the head's fusion, channels and
      detail branch): stem,
      downsampling convs and head, measured as the end-to-end latency of the supernet on a
      reference path with one layer per stage minus that layer's entries.

    Save and reuse the table with :meth:`save` / :meth:`load`; a loaded table predicts the
    paths it covers without a model.

    A table belongs to one device and input size (:func:`device_key`): :meth:`load` refuses
    a table of another.

    Args:
        settings: The supernet's backbone settings.
        input_size: ``(H, W)`` of the input image.
        runs: Timed runs per entry.
        device: Where layers are measured (the supernet given to :meth:`fixed` must be there).
        dtype: The dtype layers are measured in (the key says which).
    """

    def __init__(
        self,
        settings: Any,
        input_size: tuple[int, int],
        runs: int = 20,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.settings, self.input_size, self.runs = settings, tuple(input_size), runs
        self.device, self.dtype = torch.device(device), dtype
        self.device_key = device_key(self.device, dtype)
        self.entries: dict[str, float] = {}

    def _size(self, stage: int) -> tuple[int, int]:
        h, w = self.input_size
        div = 2 ** (stage + 3)
        return -(-h // div), -(-w // div)

    def layer(self, stage: int, width: int, op: str, dilation: int, zoom: int) -> float:
        key = f"{stage}/{width}/{op}/{dilation}/{zoom}"
        if key not in self.entries:
            module = FixedLayer(width, op, dilation, zoom).to(self.device, self.dtype).eval()
            x = torch.randn(1, width, *self._size(stage), device=self.device, dtype=self.dtype)
            self.entries[key] = _time(lambda: module(x), 3, self.runs, self.device)
        return self.entries[key]

    def layers(self, arch: Mapping[str, Any]) -> float:
        """Summed table latency of the searchable layers of a path."""
        total = 0.0
        for i in range(needed_stages(arch[f"{HEAD}fusion"])):
            _, ratio, layers = stage_arch(arch, i)
            width = stage_width(self.settings.stage_channels[i], ratio)
            total += sum(self.layer(i, width, *spec) for spec in layers)
        return total

    @staticmethod
    def fixed_key(arch: Mapping[str, Any]) -> str:
        """The table key of a path's fixed part."""
        fusion = arch[f"{HEAD}fusion"]
        ratios = [stage_arch(arch, i)[1] for i in range(needed_stages(fusion))]
        detail = "/detail" if has_detail(arch) else ""
        return f"fixed/{'/'.join(map(str, ratios))}/{fusion}/{arch[f'{HEAD}channels']}{detail}"

    def fixed(self, arch: Mapping[str, Any], model: nn.Module | None = None) -> float:
        """Latency of a path's stem, downsampling convs and head.

        Args:
            arch: The path.
            model: The supernet segmentor, needed only when the entry is not in the table;
                its active path is restored afterwards.

        Raises:
            KeyError: The entry is missing and no model was given.
        """
        key = self.fixed_key(arch)
        if key not in self.entries:
            if model is None:
                raise KeyError(f"latency table has no entry {key!r}; pass the supernet to measure")
            ref = dict(arch)
            for i in range(needed_stages(arch[f"{HEAD}fusion"])):
                ref[f"{BACKBONE}stage{i}.depth"] = 1
            before = current_arch(model)
            try:
                ref = set_arch(model, ref)
                total = measure_latency(model, self.input_size, warmup=3, runs=self.runs)
            finally:
                set_arch(model, before)
            # the layers, timed alone, can sum above the whole on a busy machine (measured
            # -0.84 ms beside a benchmark): a part never takes less than no time
            self.entries[key] = max(total - self.layers(ref), 0.0)
        return self.entries[key]

    def predict(self, arch: Mapping[str, Any], model: nn.Module | None = None) -> float:
        """Predicted end-to-end latency of a path: its fixed part plus its layers."""
        return self.fixed(arch, model) + self.layers(arch)

    def to_json(self) -> str:
        """The table as JSON (input size, device and entries)."""
        doc = {"input_size": self.input_size, "device": self.device_key, "entries": self.entries}
        return json.dumps(doc, indent=1)

    def add_json(self, text: str, where: str = "table") -> LatencyTable:
        """Adds the entries of :meth:`to_json` text of the same input size and device.

        Raises:
            ValueError: The table was measured at another input size or on another device.
        """
        doc = json.loads(text)
        if tuple(doc["input_size"]) != self.input_size:
            raise ValueError(f"{where} was measured at {doc['input_size']}, not {self.input_size}")
        if doc.get("device", self.device_key) != self.device_key:
            raise ValueError(f"{where} was measured on {doc['device']}, not {self.device_key}")
        self.entries.update(doc["entries"])
        return self

    def save(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json())

    def load(self, path: str | os.PathLike) -> LatencyTable:
        """Adds the entries of a saved table (see :meth:`add_json`)."""
        return self.add_json(Path(path).read_text(), str(path))


class LatencyCost:
    """SSR's expected-latency cost: the supernet's latency table on its own device, every
    entry the relaxed path can reach measured once (and kept in ``path``, when given).

    Args:
        path: A JSON file of the table's entries: read if present, written after measuring.
        runs: Timed runs per entry.
    """

    def __init__(self, path: str | os.PathLike | None = None, runs: int = 20) -> None:
        self.path, self.runs = (Path(path) if path else None), runs
        self.table: LatencyTable | None = None
        self._model: nn.Module | None = None
        self._base: dict[str, Any] = {}

    def measure(self, model: nn.Module, weights: Any, logger: Any = None) -> None:
        """Fills the table for every candidate of ``weights`` (``ArchWeights``) on the
        model's device, without touching the RNGs or the model's relaxed/active path."""
        device = next(model.parameters()).device
        if self.table is None:
            size = tuple(model.data_preprocessor.size)
            self.table = LatencyTable(model.backbone.settings, size, self.runs, device)
            if self.path is not None and self.path.is_file():
                self.table.add_json(self.path.read_text(), str(self.path))
        self._model, self._base = model, weights.space.extreme(True)
        known, start = len(self.table.entries), time.perf_counter()
        relaxed = getattr(model.backbone, "relaxed", None)
        set_relaxed(model, None)
        try:
            cuda = [device] if device.type == "cuda" else []
            with torch.random.fork_rng(devices=cuda), torch.no_grad():
                self.expected(weights)
        finally:
            set_relaxed(model, relaxed)
        if len(self.table.entries) > known:
            if logger is not None:
                new, took = len(self.table.entries) - known, time.perf_counter() - start
                logger.info(f"latency table: {new} entries measured on "
                            f"{self.table.device_key} in {took:.0f} s")  # fmt: skip
            if self.path is not None:
                self.path.write_text(self.table.to_json())

    def expected(self, weights: Any) -> torch.Tensor:
        """Expected latency (ms) of the relaxed path under ``weights``."""
        from raynas.core.ssr_cost import expected_latency

        settings = self.table.settings
        return expected_latency(weights.p, weights.space.choices, settings.stage_channels,
                                self.table.layer, self._fixed)  # fmt: skip

    def predict(self, arch: Mapping[str, Any]) -> float:
        """The table's latency of one path (ms)."""
        return self.table.predict(arch, self._model)

    def _fixed(self, ratios: tuple, fusion: str, channels: int, detail: int) -> float:
        arch = dict(self._base, **{f"{HEAD}fusion": fusion, f"{HEAD}channels": channels})
        if f"{HEAD}detail" in arch:
            arch[f"{HEAD}detail"] = detail
        arch.update({f"{BACKBONE}stage{i}.width": r for i, r in enumerate(ratios)})
        return self.table.fixed(arch, self._model)
