"""What raynas writes into checkpoints: the file name inside a Tune checkpoint, every key of
``checkpoint['meta']``, the global RNG states, and the checkpoint of an exported subnet."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = [
    "CALR_KEY",
    "CKPT_NAME",
    "DATASET_META_KEY",
    "DATA_SAMPLER_KEY",
    "DISTILL_KEY",
    "INIT_WEIGHTS_KEY",
    "MOMENTUM_KEY",
    "RNG_KEY",
    "SAMPLER_KEY",
    "SSR_KEY",
    "SUBNET_KEY",
    "read_meta",
    "rng_state",
    "set_rng_state",
    "subnet_checkpoint",
    "write_meta",
]

CKPT_NAME = "checkpoint.pth"  # the mmengine checkpoint inside a training trial's Tune checkpoint
SAMPLER_KEY = "raynas_sampler"  # PathSamplingHook: the path sampler's state
DISTILL_KEY = "raynas_distill"  # PathSamplingHook: the distiller's state (Cream's board)
RNG_KEY = "raynas_rng"  # PathSamplingHook: python/numpy/torch global RNG states
INIT_WEIGHTS_KEY = "raynas_init_weights"  # PathSamplingHook: initial weights (angle proxy)
CALR_KEY = "raynas_calr"  # CaLRHook: base learning rates
MOMENTUM_KEY = "raynas_momentum"  # MomentumSeparationHook: optimizer state per path group
DATA_SAMPLER_KEY = "raynas_data_sampler"  # DataImportanceHook: image importances, position
SSR_KEY = "raynas_ssr"  # SSRHook: alpha, candidate masks, alpha optimizer, shrink history
SUBNET_KEY = "raynas"  # an exported subnet's provenance (arch, supernet, mIoU...)
DATASET_META_KEY = "dataset_meta"  # classes and palette, where mmseg's init_model reads them


def write_meta(checkpoint: dict, key: str, value: Any) -> None:
    """Stores ``value`` under ``checkpoint['meta'][key]``."""
    checkpoint.setdefault("meta", {})[key] = value


def read_meta(checkpoint: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """``checkpoint['meta'][key]``, or ``default``."""
    return (checkpoint.get("meta") or {}).get(key, default)


def subnet_checkpoint(
    state_dict: Mapping[str, torch.Tensor],
    provenance: Mapping[str, Any],
    dataset_meta: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A plain-mmseg checkpoint of a subnet (weights on the CPU), with its provenance."""
    return {
        "meta": {SUBNET_KEY: dict(provenance), DATASET_META_KEY: dataset_meta},
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
    }


def rng_state() -> dict[str, Any]:
    """Global RNG states (python, numpy, torch) in checkpoint-safe types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restores what :func:`rng_state` returned."""
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
