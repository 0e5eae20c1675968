"""The path-sampler contract: which path of the supernet trains at each iteration.

Every sampler draws a path per iteration (:meth:`PathSampler.sample`) and may get feedback
after it (:meth:`PathSampler.update`). A sampler with *rounds* (DPS, PA&DA) says when one is
due (:meth:`PathSampler.due`), which paths to measure and which proxies it needs
(:attr:`PathSampler.candidates`, :meth:`PathSampler.needs`), and takes the measurements in
:meth:`PathSampler.on_round`. The training hook (``mmseg_plugins.hooks.path_sampling``)
calls only this interface.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from raynas.core.space import Arch, SearchSpace

__all__ = ["PathSampler", "UniformSampler"]


class PathSampler(abc.ABC):
    """Base class of path samplers.

    Args:
        space: The search space.
        seed: Seed of the sampler's own generator.

    Attributes:
        name: The sampler's config ``type``.
        needs_grad_norms: ``update`` wants per-label gradient norms (``metrics['grad_norms']``).
        needs_init_weights: Proxies need the supernet's initial weights (angle).
    """

    name = "base"
    needs_grad_norms = False
    needs_init_weights = False

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        self.space = space
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.total_iters: int | None = None
        self.cost: Callable[[Arch], float] | None = None

    def set_cost(self, cost: Callable[[Arch], float]) -> None:
        """A path's cost (the hook passes its FLOPs), for samplers that weigh cost."""
        self.cost = cost

    def set_run_length(self, total_iters: int) -> None:
        """The training run's iterations (the hook passes the runner's ``max_iters``), which
        schedules inside the sampler refer to."""
        self.total_iters = int(total_iters)

    @abc.abstractmethod
    def sample(self, iteration: int) -> Arch:
        """The path to train at ``iteration``."""

    def update(self, arch: Arch, metrics: Mapping[str, Any]) -> None:  # noqa: B027
        """Feedback after training ``arch`` for one iteration (default: ignored)."""

    def due(self, iteration: int) -> bool:
        """Whether a round is due after ``iteration`` iterations (default: never)."""
        return False

    @property
    def candidates(self) -> Sequence[Arch]:
        """Paths whose proxies a round needs (default: none)."""
        return []

    def needs(self) -> set[str]:
        """Proxies to measure for :attr:`candidates` this round (default: none)."""
        return set()

    def on_round(
        self, iteration: int, scores: Mapping[str, np.ndarray], flops: Sequence[float]
    ) -> dict[str, Any]:
        """Runs one round on the candidates' proxy ``scores`` and FLOPs; returns its log.

        The log's ``scalars`` (name -> float) are logged by the hook as ``strategy/NAME``.
        """
        return {"iteration": iteration, "scalars": {}}

    def summary(self, log: Mapping[str, Any]) -> str:
        """One line describing a round's log, for the training log."""
        return json.dumps(log.get("scalars", {}), default=float)

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "seed": self.seed}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class UniformSampler(PathSampler):
    """SPOS baseline: every label drawn uniformly and independently."""

    name = "uniform"

    def sample(self, iteration: int) -> Arch:
        return self.space.sample(self.rng)
