"""An exported subnet (mmseg config + weights) as an ONNX model that runs without raynas.

The graph maps an image batch, normalized as the config's data preprocessor normalizes it,
to per-class logits at the input's resolution (the decode head's output upsampled
bilinearly, as mmseg's ``inference_model`` does before its argmax). Exported with torch's
TorchScript-based exporter at opset 17, batch, height and width dynamic unless asked static;
checked with ``onnx.checker`` and against PyTorch on random images at the export size and, for
a dynamic export, at two other sizes (rtol 1e-3, atol 1e-4).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from raynas.core.errors import InvalidValueError, MissingInputError

__all__ = [
    "OPSET",
    "ExportMismatchError",
    "export_files",
    "export_onnx",
    "onnx_file",
    "onnx_latency_ms",
    "onnx_parity",
]

OPSET = 17
_TOLERANCE = dict(rtol=1e-3, atol=1e-4)


class ExportMismatchError(RuntimeError):
    """The ONNX model's logits differ from PyTorch's beyond the tolerance."""


class _Logits(nn.Module):
    """An mmseg segmentor as ``image -> logits at the image's size``."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.segmentor = segmentor

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        logits = self.segmentor._forward(image)
        return F.interpolate(logits, size=image.shape[2:], mode="bilinear", align_corners=False)


def onnx_file(model: Path) -> Path:
    """The ONNX file of ``model``: the file itself, or an export folder's ``model.onnx``."""
    path = model if model.suffix == ".onnx" else model / "model.onnx"
    if not path.is_file():
        raise MissingInputError(
            f"{path} not found: export it with `raynas export ... --format onnx`"
        )
    return path


def export_files(model: Path) -> tuple[Path, Path]:
    """``subnet.py`` and ``subnet.pth`` of an export folder (``best/`` of a run)."""
    if not (model / "subnet.py").is_file():
        raise MissingInputError(f"{model} holds no subnet.py: pass an export folder (best/)")
    return model / "subnet.py", model / "subnet.pth"


def _other_sizes(size: tuple[int, int]) -> list[tuple[int, int]]:
    """Two more sizes, multiples of 32 like every size a 1/32-stride network takes exactly."""
    h, w = size
    return [(max(32, h // 2 // 32 * 32), max(32, w // 32 * 32 + 32)), (h + 64, max(32, w - 32))]


def onnx_parity(
    model: nn.Module, path: str | os.PathLike, sizes: list[tuple[int, int]], seed: int = 0
) -> float:
    """The largest absolute difference of the ONNX model's logits from ``model``'s, on random
    images of each size.

    Raises:
        ExportMismatchError: A size where they differ beyond rtol 1e-3, atol 1e-4.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    wrapped, worst = _Logits(model).eval(), 0.0
    gen = torch.Generator().manual_seed(seed)
    for size in sizes:
        image = torch.randn(1, 3, *size, generator=gen)
        with torch.no_grad():
            want = wrapped(image).numpy()
        got = session.run(None, {"image": image.numpy()})[0]
        if got.shape != want.shape or not np.allclose(got, want, **_TOLERANCE):
            diff = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
            raise ExportMismatchError(
                f"{path}: ONNX logits at {size[0]}x{size[1]} differ from PyTorch's (max abs "
                f"difference {diff:.3g}, shapes {got.shape} vs {want.shape})"
            )
        worst = max(worst, float(np.abs(got - want).max()))
    return worst


def _describe(path: str, model: nn.Module) -> None:
    """Stores what a user needs to feed the model in its metadata: the normalization and the
    dataset's classes and palette (JSON strings)."""
    import json

    import onnx

    pre, meta = model.cfg.model.data_preprocessor, getattr(model, "dataset_meta", None) or {}
    facts = dict(mean=list(pre.get("mean", [0, 0, 0])), std=list(pre.get("std", [1, 1, 1])),
                 bgr_to_rgb=bool(pre.get("bgr_to_rgb", False)),
                 classes=list(meta.get("classes") or []),
                 palette=[list(c) for c in meta.get("palette") or []])  # fmt: skip
    proto = onnx.load(path)
    for key, value in facts.items():
        proto.metadata_props.add(key=key, value=json.dumps(value))
    proto.producer_name = "raynas"
    onnx.save(proto, path)


def export_onnx(
    config: str | os.PathLike,
    checkpoint: str | os.PathLike,
    out: str | os.PathLike,
    input_size: tuple[int, int] | None = None,
    dynamic: bool = True,
) -> dict[str, Any]:
    """Writes the subnet of ``config`` + ``checkpoint`` as ONNX to ``out`` and checks it.

    Args:
        config: An exported subnet's mmseg config (``subnet.py``).
        checkpoint: Its weights (``subnet.pth``).
        out: The ``.onnx`` file to write (replaced atomically).
        input_size: ``(H, W)`` to export at (default: the config's data preprocessor size).
        dynamic: Batch, height and width dynamic (else fixed at ``input_size``, batch 1).

    Returns:
        What was written: path, input size, dynamic, opset, the largest difference from
        PyTorch and the normalization the model expects (``mean``, ``std``, ``bgr_to_rgb``).

    Raises:
        InvalidValueError: An input size that is not a multiple of 32.
        ExportMismatchError: The exported model does not reproduce PyTorch's logits.
    """
    import onnx
    from mmseg.apis import init_model

    model = init_model(str(config), str(checkpoint), device="cpu").eval()
    pre = model.cfg.model.data_preprocessor
    size = tuple(input_size or pre.get("size") or (512, 512))
    if any(s % 32 for s in size):
        raise InvalidValueError(f"ONNX input size {size} must be multiples of 32 (the 1/32 stage)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    axes = {"image": {0: "batch", 2: "height", 3: "width"},
            "logits": {0: "batch", 2: "height", 3: "width"}}  # fmt: skip
    with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".onnx", delete=False) as tmp:
        pass
    try:
        torch.onnx.export(_Logits(model).eval(), (torch.randn(1, 3, *size),), tmp.name,
                          opset_version=OPSET, input_names=["image"], output_names=["logits"],
                          dynamic_axes=axes if dynamic else None, dynamo=False)  # fmt: skip
        onnx.checker.check_model(tmp.name, full_check=True)
        sizes = [size, *(_other_sizes(size) if dynamic else [])]
        worst = onnx_parity(model, tmp.name, sizes)
        _describe(tmp.name, model)
        os.replace(tmp.name, out)
    finally:
        Path(tmp.name).unlink(missing_ok=True)
    return dict(path=str(out), input_size=list(size), dynamic=dynamic, opset=OPSET,
                max_abs_diff=worst, checked_sizes=[list(s) for s in sizes],
                mean=list(pre.get("mean", [0, 0, 0])), std=list(pre.get("std", [1, 1, 1])),
                bgr_to_rgb=bool(pre.get("bgr_to_rgb", False)))  # fmt: skip


def _onnx_bytes(model: nn.Module, size: tuple[int, int]) -> bytes:
    """``image -> logits`` of an mmseg segmentor as ONNX at a static size: torch's TorchScript
    exporter, else its dynamo exporter (which translates what the former refuses, such as
    FastSCNN's adaptive pooling to a size that does not divide the input)."""
    wrapped, args = _Logits(model).eval(), (torch.randn(1, 3, *size),)
    buf = io.BytesIO()
    try:
        torch.onnx.export(wrapped, args, buf, opset_version=OPSET, input_names=["image"],
                          output_names=["logits"], dynamo=False)  # fmt: skip
        return buf.getvalue()
    except torch.onnx.errors.OnnxExporterError:
        program = torch.onnx.export(wrapped, args, dynamo=True, opset_version=18,
                                    input_names=["image"], output_names=["logits"],
                                    verbose=False)  # fmt: skip
        return program.model_proto.SerializeToString()


def onnx_latency_ms(
    model: nn.Module, size: tuple[int, int], threads: int = 1, runs: int = 20, warmup: int = 5
) -> float:
    """Median ms of one image through ``model`` (an mmseg segmentor on CPU) exported to ONNX
    in memory (static size) and run by ONNX Runtime's CPU provider on ``threads`` threads:
    what a deployment on this CPU sees (the search's ``latency_backend='onnxruntime'``)."""
    import onnxruntime as ort

    from mmseg_plugins.latency import _time

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(_onnx_bytes(model, size), opts,
                                   providers=["CPUExecutionProvider"])  # fmt: skip
    name = session.get_inputs()[0].name
    feed = {name: np.random.default_rng(0).standard_normal((1, 3, *size), np.float32)}
    return _time(lambda: session.run(None, feed), warmup, runs)
