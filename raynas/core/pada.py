"""PA&DA (Lu et al., CVPR 2023): importance sampling of paths and data by gradient norms.

Path sampling: every label draws its choice from ``p = mix * normalise(g) + (1 - mix) *
uniform`` where ``g`` is the running (pairwise) mean gradient norm of the weights each choice
trains, refreshed every ``update_interval`` iterations, ``mix = t / total_iters`` rising over
training, and every probability floored at ``floor`` (choices that train few or no weights are
not starved). Data sampling: the same mixture over per-image scores (see
:class:`ImportanceWeights`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from raynas.core.sampler import PathSampler
from raynas.core.space import Arch, SearchSpace

__all__ = ["ImportanceWeights", "PADASampler", "mix_with_uniform"]


def mix_with_uniform(scores: np.ndarray, mix: float, floor: float = 0.0) -> np.ndarray:
    """``mix * scores / sum + (1 - mix) * uniform``, floored, renormalised."""
    scores = np.asarray(scores, float)
    n = len(scores)
    uniform = np.full(n, 1.0 / n)
    norm = scores / scores.sum() if scores.sum() > 0 else uniform
    p = np.maximum(mix * norm + (1 - mix) * uniform, floor)
    return p / p.sum()


class PADASampler(PathSampler):
    """Per-(label, choice) path probabilities from normalised gradient norms.

    Args:
        space: The search space.
        seed: Seed.
        total_iters: Iterations over which ``mix`` rises to 1 (None: the run's length, from
            :meth:`set_run_length`).
        update_interval: Iterations between probability refreshes (an "epoch").
        floor: Minimum probability of any choice.
    """

    name = "pada"
    needs_grad_norms = True

    def __init__(
        self,
        space: SearchSpace,
        seed: int = 0,
        total_iters: int | None = None,
        update_interval: int = 100,
        floor: float = 0.02,
    ) -> None:
        super().__init__(space, seed)
        self.update_interval, self.floor = update_interval, floor
        self.mix_iters = total_iters
        # ImportanceWeights' floor is relative to uniform; ours is an absolute probability
        self.weights = {
            k: ImportanceWeights(len(v), floor * len(v)) for k, v in space.choices.items()
        }
        self.last_log: dict[str, Any] = {}

    @property
    def probs(self) -> dict[str, np.ndarray]:
        """Label -> probability of each of its choices."""
        return {k: w.probs for k, w in self.weights.items()}

    def sample(self, iteration: int) -> Arch:
        return {
            k: opts[self.rng.choice(len(opts), p=self.weights[k].probs)]
            for k, opts in self.space.choices.items()
        }

    def update(self, arch: Arch, metrics: Mapping[str, Any]) -> None:
        """Records ``metrics['grad_norms']`` (label -> norm) for the choices of ``arch``."""
        for label, g in (metrics.get("grad_norms") or {}).items():
            self.weights[label].add([self.space.choices[label].index(arch[label])], [g])

    def due(self, iteration: int) -> bool:
        return iteration > 0 and iteration % self.update_interval == 0

    def on_round(
        self, iteration: int, scores: Mapping[str, np.ndarray], flops: Sequence[float]
    ) -> dict[str, Any]:
        """Recomputes every label's probabilities (every ``update_interval``; no proxies)."""
        mix = min(1.0, iteration / self._mix_iters())
        for w in self.weights.values():
            w.refresh(mix)
        entropy = [
            float(-(p * np.log(p)).sum() / np.log(len(p)))
            for p in self.probs.values()
            if len(p) > 1
        ]
        scalars = dict(mix=mix, prob_entropy=float(np.mean(entropy)))
        self.last_log = dict(iteration=iteration, scalars=scalars)
        return self.last_log

    def _mix_iters(self) -> int:
        total = self.mix_iters or self.total_iters
        if not total:
            raise RuntimeError("PADASampler: set_run_length was not called and total_iters=None")
        return total

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "weights": {k: w.state_dict() for k, w in self.weights.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        for k, w in self.weights.items():
            w.load_state_dict(state["weights"][k])


class ImportanceWeights:
    """Importance of ``size`` items (images, or one label's choices): running pairwise mean of
    scores per index, and sampling probabilities mixed with uniform.

    Args:
        size: Dataset size.
        floor: Minimum probability (as a multiple of uniform: ``floor / size``).
    """

    def __init__(self, size: int, floor: float = 0.1) -> None:
        self.size, self.floor = size, floor
        self.scores = np.zeros(size)
        self.seen = np.zeros(size, bool)
        self.probs = np.full(size, 1.0 / size)

    def add(self, indices: np.ndarray, scores: np.ndarray) -> None:
        for i, s in zip(indices, scores):
            self.scores[i] = 0.5 * (self.scores[i] + s) if self.seen[i] else s
            self.seen[i] = True

    def refresh(self, mix: float) -> np.ndarray:
        """Probabilities from the scores, ``mix`` of the way from uniform."""
        self.probs = mix_with_uniform(self.scores, mix, self.floor / self.size)
        return self.probs

    def state_dict(self) -> dict[str, Any]:
        return {
            "scores": self.scores.tolist(),
            "seen": self.seen.tolist(),
            "probs": self.probs.tolist(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.scores = np.asarray(state["scores"], float)
        self.seen = np.asarray(state["seen"], bool)
        self.probs = np.asarray(state["probs"], float)
