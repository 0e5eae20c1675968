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
:func:`shrink_under_cost` is the paper's shrinking step with the band kept reachable: the
derived path is protected from the threshold, and a row that protection alone keeps undecided
is settled at once, by the rule where the band stays reachable without the protected candidate,
by the cost where it does not.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from raynas.core.space import Arch

__all__ = ["active_choices", "band_distance", "derive_under_cost", "shrink_under_cost"]


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
    starts: Sequence[Arch] = (),
    max_moves: int = 500,
) -> tuple[Arch, dict[str, Any]]:
    """The most probable architecture whose cost is within ``tolerance`` of ``target``.

    Args:
        weights: Architecture weights (:class:`~raynas.core.ssr.ArchWeights`).
        cost: The exact cost of an architecture (FLOPs, or a latency table's milliseconds).
        target: The cost asked for.
        tolerance: Relative half-width of the band (0.05: within 5%).
        starts: Paths to search from besides the argmax (e.g. the last one derived within
            the band), where their active choices are all still valid: a greedy search from
            the argmax alone can stop short of a band that is reachable.
        max_moves: Single-row changes at most per start, both passes together.

    Returns:
        The architecture (canonical) and what the derivation did: ``argmax_cost``, ``cost``,
        ``moves``, ``within`` (False: no architecture of the valid candidates was reached
        inside the band; the closest found is returned).
    """
    space, logp = weights.space, _log_probs(weights)
    # every row keeps a choice, active or not: a layer a deeper depth brings back takes its own
    argmax = {**weights.derive(), **{k: max(v, key=v.get) for k, v in logp.items()}}
    begins = [argmax] + [
        {**argmax, **{k: a[k] for k in logp if space.is_active(a, k)}}
        for a in starts
        if all(a[k] in logp[k] for k in logp if space.is_active(a, k))
    ]
    found = [_search(b, logp, space, cost, target, tolerance, max_moves) for b in begins]
    score = lambda f: (f[1] == 0, -f[1] if f[1] else _score(f[0], logp, space))  # noqa: E731
    arch, dist, moves = max(found, key=score)
    arch = space.canonical(arch)
    info = dict(argmax_cost=cost(space.canonical(argmax)), cost=cost(arch), moves=moves,
                within=dist == 0, target=target)  # fmt: skip
    return arch, info


def _score(arch: Arch, logp: dict, space: Any) -> float:
    """The log-probability of ``arch``'s active choices."""
    return sum(v[arch[k]] for k, v in logp.items() if space.is_active(arch, k))


def _search(arch: Arch, logp: dict, space: Any, cost: Callable, target: float, tol: float,
            max_moves: int) -> tuple[Arch, float, int]:  # fmt: skip
    """Greedy projection of ``arch`` onto the band, then improvement inside it."""

    def neighbours(current: Arch):
        for label, options in logp.items():
            for choice, lp in options.items():
                if choice != current[label]:
                    new = {**current, label: choice}
                    yield new, lp - logp[label][current[label]], cost(space.canonical(new))

    dist, moves = band_distance(cost(space.canonical(arch)), target, tol), 0
    while dist > 0 and moves < max_moves:  # projection onto the band
        best, key = None, None
        for new, gain_lp, c in neighbours(arch):
            closer = dist - band_distance(c, target, tol)
            if closer > 1e-12:
                rank = (-gain_lp / closer, -closer)
                if key is None or rank < key:
                    best, key = (new, c), rank
        if best is None:
            break
        arch, dist, moves = best[0], band_distance(best[1], target, tol), moves + 1
    while dist == 0 and moves < max_moves:  # the most probable inside the band
        best = max(((new, g) for new, g, c in neighbours(arch)
                    if g > 1e-12 and band_distance(c, target, tol) == 0),
                   key=lambda t: t[1], default=None)  # fmt: skip
        if best is None:
            break
        arch, moves = best[0], moves + 1
    return arch, dist, moves


def active_choices(weights: Any, path: Arch) -> dict[str, Any]:
    """``path``'s choice of each decision row that is active in it (what shrinking and
    wipeout keep so that the path stays reachable)."""
    return {k: path[k] for k in weights.rows if weights.space.is_active(path, k)}


@torch.no_grad()
def shrink_under_cost(
    weights: Any,
    threshold: float,
    derive: Callable[[], tuple[Arch, dict[str, Any]]],
) -> tuple[dict[str, int], list[str]]:
    """The paper's shrinking step, keeping a path within the cost band reachable.

    The derived path's active choices are protected from the threshold; then each row whose
    protected candidate the threshold alone would have pruned is settled: the candidate goes if
    a path within the band is still derived without it (the paper's rule), otherwise the row is
    decided to it (the cost's decision). Rows kept undecided by protection alone cannot stall.

    Args:
        weights: Architecture weights (:class:`~raynas.core.ssr.ArchWeights`).
        threshold: Prune the candidates with ``p_i / max_j p_j <= threshold``.
        derive: The derivation under the target on the current weights (``(path, info)``).

    Returns:
        Candidates removed per row, and the rows decided by the cost rather than the rule.
    """
    path, info = derive()
    space = weights.space
    protect = active_choices(weights, path)
    removed = weights.shrink(threshold, protect)
    by_cost: list[str] = []
    if not info["within"]:
        return removed, by_cost
    for label, choice in protect.items():
        mask, p = weights.mask(label), weights.probs(label)
        k = space.choices[label].index(choice)
        if int(mask.sum()) < 2 or float(p[k] / p.max()) > threshold:
            continue
        before = int(mask.sum())
        mask[k] = False
        if not derive()[1]["within"]:
            weights.decide_(label, k)
            by_cost.append(label)
        removed[label] = removed.get(label, 0) + before - int(mask.sum())
    return removed, by_cost
