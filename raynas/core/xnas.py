"""XNAS (Nayman et al., NeurIPS 2019) as the architecture optimizer of the relaxed supernet:
exponentiated-gradient steps on the experts' weights, and wipeout of the experts that can no
longer win.

Each decision row is a forecaster, each candidate an expert with weight ``v_i`` (kept as
``alpha_i = log v_i`` in :class:`~raynas.core.ssr.ArchWeights` with ``link='exp'``, so
``p = v / sum(v)`` over the valid candidates). One step, with ``R_i = -dl/dp_i`` the reward of
expert ``i`` (the loss gradient projected on its output, which is what the gradient with respect
to its mixing weight is):

    R_i   <- clip(R_i, -bound, bound)
    v_i   <- v_i exp(lr R_i)                          (alpha_i += lr R_i)
    theta <- max_j v_j exp(-2 lr bound (T - t))
    wipe out every i with v_i < theta                  (never the row's best)

An expert wiped out at step ``t`` trails the best by more than ``2 lr bound`` per remaining
step, the most the rewards can close; at ``t = T`` only the best is left, so every row is decided
within the budget. The learning rate the paper's regret bound prescribes (the minimiser of
``ln N / lr + lr T bound^2 / 2``) is ``sqrt(2 ln N / T) / bound``, ``N`` the row's candidates.
The bound is what clips the rewards; left unset it is the largest reward of the first step,
so the rewards' own scale sets it (a bound far above them makes every gap too small to wipe
anything out before the last step: measured, a bound of 1 wiped out nothing before step 48 of
48).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from raynas.core.ssr import ArchWeights

__all__ = ["LeafWeights", "XNASOptimizer", "xnas_lr"]


def xnas_lr(bound: float, candidates: int, steps: int) -> float:
    """The learning rate of XNAS's regret bound: ``sqrt(2 ln N / T) / bound``."""
    return math.sqrt(2 * math.log(max(candidates, 2)) / max(steps, 1)) / bound


class LeafWeights:
    """The probabilities of :class:`ArchWeights` as leaf tensors: a relaxed forward over them
    leaves ``dl/dp`` (the experts' negative rewards) in ``grad_of``. Reads as the relaxed forward
    reads (``space``, ``p``, ``valid``).

    Args:
        weights: The architecture weights.
    """

    def __init__(self, weights: ArchWeights):
        self.space, self.weights = weights.space, weights
        with torch.no_grad():
            self.leaves = {k: weights.probs(k).detach().requires_grad_(True) for k in weights.rows}

    def p(self, label: str) -> torch.Tensor:
        return self.leaves[label] if label in self.leaves else self.weights.p(label)

    def valid(self, label: str) -> list[int]:
        return self.weights.valid(label)

    def tensors(self) -> list[torch.Tensor]:
        return list(self.leaves.values())


class XNASOptimizer:
    """Exponentiated-gradient steps with wipeout on :class:`ArchWeights` (``link='exp'``).

    Args:
        weights: The architecture weights (``alpha = log v``).
        steps: ``T``, the architecture steps of the search.
        bound: The reward bound (rewards are clipped to it); None: the largest reward of the
            first step.
        lr: The step size; None: the regret bound's ``sqrt(2 ln N / T) / bound``, ``N`` the
            largest row's candidates.
    """

    def __init__(
        self,
        weights: ArchWeights,
        steps: int,
        bound: float | None = None,
        lr: float | None = None,
    ):
        if weights.link != "exp":
            raise ValueError("XNAS steps log-weights: build ArchWeights with link='exp'")
        self.widest = max(len(weights.space.choices[k]) for k in weights.rows)
        self.weights, self.steps, self.fixed_lr = weights, int(steps), lr
        self.bound = float(bound) if bound else None
        self.lr = self._lr() if self.bound else None
        self.t = 0

    def _lr(self) -> float:
        return float(self.fixed_lr) if self.fixed_lr else xnas_lr(self.bound, self.widest,
                                                                  self.steps)  # fmt: skip

    @torch.no_grad()
    def step(
        self, grads: Mapping[str, torch.Tensor | None], protect: Mapping[str, Any] | None = None
    ) -> dict[str, int]:
        """One EG step from ``dl/dp`` per row, then wipeout; returns the experts wiped out per
        row.

        Args:
            grads: ``dl/dp`` of each row's valid candidates.
            protect: A choice per label never wiped out (a path that meets a cost target).
        """
        protect = protect or {}
        w = self.weights
        if self.bound is None:  # the rewards' own scale, from the first step
            largest = max((float(g.abs().max()) for g in grads.values() if g is not None),
                          default=0.0)  # fmt: skip
            self.bound = largest or 1.0
            self.lr = self._lr()
        self.t += 1
        wiped: dict[str, int] = {}
        for label in w.rows:
            mask = w.mask(label)
            if int(mask.sum()) < 2:
                continue
            grad = grads.get(label)
            alpha = w.weight(label)
            if grad is not None:
                reward = (-grad).clamp(-self.bound, self.bound).to(alpha.dtype)
                alpha.add_(self.lr * reward * mask)
            # wipeout: the experts that trail the best by more than the rest of the run closes
            reach = 2 * self.lr * self.bound * max(self.steps - self.t, 0)
            best = alpha.masked_fill(~mask, float("-inf")).max()
            if n := w.restrict_(label, alpha >= best - reach, protect.get(label)):
                wiped[label] = n
        return wiped

    def state_dict(self) -> dict[str, Any]:
        return dict(t=self.t, lr=self.lr, steps=self.steps, bound=self.bound)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.t, self.lr = int(state["t"]), float(state["lr"])
        self.steps, self.bound = int(state["steps"]), float(state["bound"])
