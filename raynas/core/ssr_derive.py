"""The architecture a differentiable search hands back under a cost target.

The argmax of each row ignores the target: when rows are still undecided, or the decided rows
alone miss the target, the argmax lands wherever the probabilities put it (measured: 16.8 MFLOPs
for a 25 MFLOPs target). :func:`derive_under_cost` instead takes the most probable architecture
(the largest sum of the rows' log-probabilities over the candidates still valid) whose exact cost
lies within ``tolerance`` of the target: a greedy projection of the argmax onto the cost band,
then an improvement pass inside it.

- Projection: while outside the band, apply the single-row change that gives up the least
  log-probability per unit of distance to the band it closes (a knapsack's greedy ratio, with the
  exact cost of every candidate architecture rather than additive costs: depth, width and fusion
  make layer costs nest).
- Improvement: while a single-row change raises the log-probability and stays inside the band,
  apply the best one.

Pruned candidates (probability 0) are never taken: a decided row keeps its candidate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from raynas.core.space import Arch

__all__ = ["band_distance", "derive_under_cost"]


def band_distance(cost: float, target: float, tolerance: float) -> float:
    """How far ``cost`` lies outside ``target``'s band, relative to the target (0 inside)."""
    return max(0.0, abs(cost / target - 1.0) - tolerance)


@torch.no_grad()
def _log_probs(weights: Any) -> dict[str, dict[Any, float]]:
    """Each row's valid choices with their log-probabilities."""
    out = {}
    for label in weights.rows:
        p = weights.probs(label).double().cpu()
        choices = weights.space.choices[label]
        out[label] = {choices[i]: math.log(max(float(p[i]), 1e-300)) for i in weights.valid(label)}
    return out


def derive_under_cost(
    weights: Any,
    cost: Callable[[Arch], float],
    target: float,
    tolerance: float = 0.05,
    max_moves: int = 500,
) -> tuple[Arch, dict[str, Any]]:
    """The most probable architecture whose cost is within ``tolerance`` of ``target``.

    Args:
        weights: Architecture weights (:class:`~raynas.core.ssr.ArchWeights`).
        cost: The exact cost of an architecture (FLOPs, or a latency table's milliseconds).
        target: The cost asked for.
        tolerance: Relative half-width of the band (0.05: within 5%).
        max_moves: Single-row changes at most, both passes together.

    Returns:
        The architecture (canonical) and what the derivation did: ``argmax_cost``, ``cost``,
        ``moves``, ``within`` (False: no architecture of the valid candidates was reached
        inside the band; the closest found is returned).
    """
    space, logp = weights.space, _log_probs(weights)
    # every row keeps a choice, active or not: a layer a deeper depth brings back takes its own
    arch = {**weights.derive(), **{k: max(v, key=v.get) for k, v in logp.items()}}
    start = cost(space.canonical(arch))
    moves = 0

    def neighbours(current: Arch):
        for label, options in logp.items():
            for choice, lp in options.items():
                if choice != current[label]:
                    new = {**current, label: choice}
                    yield new, lp - logp[label][current[label]], cost(space.canonical(new))

    dist = band_distance(start, target, tolerance)
    while dist > 0 and moves < max_moves:  # projection onto the band
        best, key = None, None
        for new, gain_lp, c in neighbours(arch):
            closer = dist - band_distance(c, target, tolerance)
            if closer > 1e-12:
                rank = (-gain_lp / closer, -closer)
                if key is None or rank < key:
                    best, key = (new, c), rank
        if best is None:
            break
        arch, dist, moves = best[0], band_distance(best[1], target, tolerance), moves + 1
    while dist == 0 and moves < max_moves:  # the most probable inside the band
        best = max(((new, g) for new, g, c in neighbours(arch)
                    if g > 1e-12 and band_distance(c, target, tolerance) == 0),
                   key=lambda t: t[1], default=None)  # fmt: skip
        if best is None:
            break
        arch, moves = best[0], moves + 1
    arch = space.canonical(arch)
    info = dict(argmax_cost=start, cost=cost(arch), moves=moves, within=dist == 0, target=target)
    return arch, info
