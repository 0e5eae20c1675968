"""Deployment latency of an exported model: PyTorch eager or ONNX Runtime, on CPU or CUDA.

A model is an export folder (``best/`` of a run, or ``raynas export --out DIR``: ``subnet.py``,
``subnet.pth`` and, for ONNX Runtime, ``model.onnx``) or an ``.onnx`` file. One image of the
given size, after ``warmup`` untimed runs; the median and the 90th percentile of ``runs``.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from raynas.core.errors import InvalidValueError

__all__ = ["BACKENDS", "MIN_RUNS", "bench"]

BACKENDS = ("torch", "onnxruntime")
MIN_RUNS = 50


def _torch_runner(model: Path, size: tuple[int, int], device: str) -> Callable[[], Any]:
    import torch
    from mmseg.apis import init_model

    from raynas.onnx_export import export_files

    config, checkpoint = export_files(model)
    seg = init_model(str(config), str(checkpoint), device=device).eval()
    x = torch.randn(1, 3, *size, device=device)

    def run() -> Any:
        with torch.no_grad():
            out = seg._forward(x)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return run


def _onnx_runner(model: Path, size: tuple[int, int], device: str, threads: int) -> Callable:
    import onnxruntime as ort

    from raynas.onnx_export import onnx_file

    path = onnx_file(model)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), opts, providers=providers)
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    return lambda: session.run(None, {"image": x})


def bench(
    model: str | os.PathLike,
    backend: str = "torch",
    threads: int = 1,
    size: tuple[int, int] = (512, 1024),
    device: str = "cpu",
    runs: int = MIN_RUNS,
    warmup: int = 10,
) -> dict[str, Any]:
    """Latency of one image through ``model`` on ``backend``.

    Returns:
        ``median_ms``, ``p90_ms`` and the settings measured.

    Raises:
        InvalidValueError: An unknown backend or device, fewer than 50 runs, a bad size.
        MissingInputError: The model's files are not there.
    """
    import torch

    if backend not in BACKENDS:
        raise InvalidValueError(f"--backend must be one of {list(BACKENDS)}, got {backend!r}")
    if device not in ("cpu", "cuda") or (device == "cuda" and not torch.cuda.is_available()):
        raise InvalidValueError(f"--device {device!r}: use cpu, or cuda on a machine with a GPU")
    if runs < MIN_RUNS or any(s % 32 or s <= 0 for s in size):
        raise InvalidValueError(
            f"--runs must be >= {MIN_RUNS} (got {runs}) and --size multiples of 32 (got {size})"
        )
    torch.set_num_threads(threads)
    model = Path(model)
    run = (_torch_runner(model, size, device) if backend == "torch"
           else _onnx_runner(model, size, device, threads))  # fmt: skip
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e3)
    return dict(model=str(model), backend=backend, device=device, threads=threads,
                size=list(size), runs=runs, median_ms=statistics.median(samples),
                p90_ms=float(np.quantile(samples, 0.9)))  # fmt: skip
