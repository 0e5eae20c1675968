"""Every path sampler by its config ``type``, and :func:`build_sampler`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from raynas.core.dps import DPSSampler
from raynas.core.errors import UnknownKeyError, closest
from raynas.core.pada import PADASampler
from raynas.core.sampler import PathSampler, UniformSampler
from raynas.core.space import SearchSpace

__all__ = ["SAMPLERS", "build_sampler"]

SAMPLERS: dict[str, type[PathSampler]] = {
    cls.name: cls for cls in (UniformSampler, DPSSampler, PADASampler)
}


def build_sampler(cfg: Mapping[str, Any], space: SearchSpace) -> PathSampler:
    """Builds a sampler from ``dict(type=..., **kwargs)``.

    Raises:
        UnknownKeyError: Unknown ``type``, naming the closest and the known ones.
    """
    cfg = dict(cfg)
    kind = cfg.pop("type", "uniform")
    if kind not in SAMPLERS:
        hint = closest(kind, SAMPLERS)
        raise UnknownKeyError(f"unknown sampler type {kind!r}{hint}; known: {sorted(SAMPLERS)}")
    return SAMPLERS[kind](space, **cfg)
