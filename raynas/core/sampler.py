"""Path samplers: which path of the supernet trains at each iteration."""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import numpy as np

from raynas.core.errors import UnknownKeyError, closest
from raynas.space import Arch, SearchSpace

__all__ = ["PathSampler", "UniformSampler", "build_sampler"]


class PathSampler(abc.ABC):
    """Base class of path samplers.

    Args:
        space: The search space.
        seed: Seed of the sampler's own generator.
    """

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    @abc.abstractmethod
    def sample(self, iteration: int) -> Arch:
        """The path to train at ``iteration``."""

    def update(self, arch: Arch, metrics: Mapping[str, float]) -> None:  # noqa: B027
        """Feedback after training ``arch`` for one iteration (default: ignored)."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class UniformSampler(PathSampler):
    """SPOS baseline: every label drawn uniformly and independently."""

    def sample(self, iteration: int) -> Arch:
        return self.space.sample(self.rng)


def _registry() -> dict[str, type[PathSampler]]:
    from raynas.core.dps import DPSSampler
    from raynas.core.pada import PADASampler

    return {"uniform": UniformSampler, "dps": DPSSampler, "pada": PADASampler}


def build_sampler(cfg: Mapping[str, Any], space: SearchSpace) -> PathSampler:
    """Builds a sampler from ``dict(type=..., **kwargs)``.

    Raises:
        KeyError: Unknown ``type``, naming the known ones.
    """
    cfg = dict(cfg)
    kind = cfg.pop("type", "uniform")
    samplers = _registry()
    if kind not in samplers:
        hint = closest(kind, samplers)
        raise UnknownKeyError(f"unknown sampler type {kind!r}{hint}; known: {sorted(samplers)}")
    return samplers[kind](space, **cfg)
