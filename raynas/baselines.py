"""Hand-designed baselines: mmseg's real-time models trained like the found subnets.

A baseline is a name of :data:`BASELINES` (mmseg's own config of that model) or any mmseg
config (``mmseg::...`` or a path). :func:`baseline_config` puts its model into a found
subnet's training config, changing only the number of classes, the data preprocessor (input
size, normalisation), BN (SyncBN -> BN) and pretrained weights (none), so that both train on
the same data with the same schedule. :func:`model_cost` measures params, FLOPs and CPU
latency (batch 1) of any model config, in the calling process; :func:`deploy_latency` its
latency in PyTorch eager and ONNX Runtime at several thread counts.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from raynas.core.errors import UnknownKeyError, closest

__all__ = [
    "BASELINES",
    "baseline_config",
    "baseline_source",
    "check_baselines",
    "deploy_latency",
    "model_cost",
]

BASELINES = {
    "fastscnn": "mmseg::fastscnn/fast_scnn_8xb4-160k_cityscapes-512x1024.py",
    "cgnet": "mmseg::cgnet/cgnet_fcn_4xb8-60k_cityscapes-512x1024.py",
    "bisenetv2": "mmseg::bisenetv2/bisenetv2_fcn_4xb4-160k_cityscapes-1024x1024.py",
    "erfnet": "mmseg::erfnet/erfnet_fcn_4xb4-160k_cityscapes-512x1024.py",
    "stdc1": "mmseg::stdc/stdc1_4xb12-80k_cityscapes-512x1024.py",
}


def baseline_source(name: str) -> Path:
    """The config file of baseline ``name`` (a :data:`BASELINES` key or a config).

    Raises:
        UnknownKeyError: Neither a known name nor an existing config, naming the closest.
    """
    spec = BASELINES.get(name, name)
    if spec.startswith("mmseg::"):
        import mmseg

        path = Path(mmseg.__file__).parent / ".mim/configs" / spec.removeprefix("mmseg::")
    else:
        path = Path(spec)
    if not path.is_file():
        raise UnknownKeyError(
            f"tune_cfg.report.baselines: {name!r} is neither a known baseline"
            f"{closest(name, BASELINES)} ({sorted(BASELINES)}) nor an existing mmseg config"
        )
    return path


def check_baselines(names: Any) -> list[str]:
    """Validates ``tune_cfg.report.baselines``; returns the names."""
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise UnknownKeyError(f"tune_cfg.report.baselines must be a list of names, got {names!r}")
    for name in names:
        baseline_source(name)
    return list(names)


def _adapt(node: Any, num_classes: int) -> Any:
    """SyncBN -> BN, ``num_classes`` everywhere, no per-class loss weights (they are the
    source dataset's), no pretrained weights."""
    if isinstance(node, dict):
        out = {k: _adapt(v, num_classes) for k, v in node.items()}
        if out.get("type") == "SyncBN":
            out["type"] = "BN"
        if "num_classes" in out:
            out["num_classes"] = num_classes
        if out.get("class_weight") is not None:
            out["class_weight"] = None
        if isinstance(out.get("init_cfg"), dict) and out["init_cfg"].get("type") == "Pretrained":
            out["init_cfg"] = None
        if "pretrained" in out:
            out["pretrained"] = None
        return out
    if isinstance(node, list | tuple):
        return type(node)(_adapt(v, num_classes) for v in node)
    return node


def baseline_config(name: str, subnet_cfg: Any) -> Any:
    """``subnet_cfg`` (a found subnet's training config) with baseline ``name``'s model."""
    from mmengine.config import Config

    model = Config.fromfile(str(baseline_source(name))).model.to_dict()
    cfg = copy.deepcopy(subnet_cfg)
    model = _adapt(model, cfg.model.decode_head.num_classes)
    model["data_preprocessor"] = cfg.model.data_preprocessor.to_dict()
    cfg.model = model
    cfg.pop("load_from", None)
    return cfg


def _build(model_cfg: Any, checkpoint: str | None) -> Any:
    """The model of a config in eval mode (mmseg's scope), with ``checkpoint``'s weights."""
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    with DefaultScope.overwrite_default_scope("mmseg"):  # bare type names are mmseg's
        model = MODELS.build(copy.deepcopy(model_cfg)).eval()
    if checkpoint:
        from mmengine.runner import load_checkpoint

        load_checkpoint(model, checkpoint, map_location="cpu", logger="silent")
    return model


def model_cost(model_cfg: Any, size: tuple[int, int], checkpoint: str | None = None,
               runs: int = 50) -> dict[str, float]:  # fmt: skip
    """Params, FLOPs and CPU latency in ms (batch 1, median of ``runs``) of a model config."""
    import torch
    from mmengine.analysis import FlopAnalyzer, parameter_count

    from mmseg_plugins.latency import measure_latency

    model = _build(model_cfg, checkpoint)
    x = torch.randn(1, 3, *size)
    flops = FlopAnalyzer(model, (x,)).unsupported_ops_warnings(False)
    flops = flops.uncalled_modules_warnings(False).total()
    return dict(params=float(parameter_count(model)[""]), flops=float(flops),
                latency_ms=measure_latency(model, size, warmup=10, runs=runs))  # fmt: skip


def deploy_latency(
    model_cfg: Any,
    size: tuple[int, int],
    checkpoint: str | None = None,
    threads: tuple[int, ...] = (1, 2),
    runs: int = 50,
) -> dict[str, float]:
    """CPU latency in ms (batch 1, median of ``runs``) of a model config in PyTorch eager and
    in ONNX Runtime (the model exported at ``size``), at each thread count, in this process:
    keys ``torch_{t}t`` and ``onnxruntime_{t}t``."""
    import torch

    from mmseg_plugins.latency import measure_latency
    from raynas.onnx_export import onnx_latency_ms

    model = _build(model_cfg, checkpoint)
    was, out = torch.get_num_threads(), {}
    try:
        for t in threads:
            torch.set_num_threads(t)
            out[f"torch_{t}t"] = measure_latency(model, size, warmup=10, runs=runs)
            out[f"onnxruntime_{t}t"] = onnx_latency_ms(model, size, t, runs=runs, warmup=10)
    finally:
        torch.set_num_threads(was)
    return out
