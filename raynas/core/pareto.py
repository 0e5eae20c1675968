"""Non-dominated sorting and crowding distance (NSGA-II's definitions), numpy only.

Every objective is *minimised*; negate an objective to maximise it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["crowding_distance", "non_dominated_fronts", "pareto_mask"]


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask of the non-dominated rows of an ``(n, m)`` array."""
    points = np.asarray(points, dtype=float)
    n = len(points)
    mask = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(points <= points[i], axis=1) & np.any(points < points[i], axis=1)
        mask[i] = not dominated.any()
    return mask


def non_dominated_fronts(points: np.ndarray) -> list[np.ndarray]:
    """Indices of the successive non-dominated fronts (front 0 is the Pareto front)."""
    points = np.asarray(points, dtype=float)
    remaining = np.arange(len(points))
    fronts = []
    while len(remaining):
        mask = pareto_mask(points[remaining])
        fronts.append(remaining[mask])
        remaining = remaining[~mask]
    return fronts


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance of each row within one front (boundary rows: inf)."""
    points = np.asarray(points, dtype=float)
    n, m = points.shape
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for j in range(m):
        order = np.argsort(points[:, j], kind="stable")
        span = points[order[-1], j] - points[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            gaps = (points[order[2:], j] - points[order[:-2], j]) / span
            distance[order[1:-1]] += gaps
    return distance
