"""Complexity-aware learning rate (CaLR, DYNAS, CVPR 2025), pure Python.

``lr_t = lr0 * (((T - t) / T) ** gamma(C) * (1 - eta_min) + eta_min)``, with ``gamma`` linear
in ``log C`` from ``gamma_max`` at the smallest complexity to ``1 / gamma_max`` at the largest:
small paths decay fast, large paths keep a high learning rate for longer.
"""

from __future__ import annotations

import math

from raynas.core.errors import InvalidValueError

__all__ = ["calr_factor", "calr_gamma"]


def calr_gamma(complexity: float, c_min: float, c_max: float, gamma_max: float = 4.0) -> float:
    """Decay exponent of a path of ``complexity`` (clamped to ``[c_min, c_max]``)."""
    if not 0 < c_min < c_max:
        raise InvalidValueError(f"need 0 < c_min ({c_min}) < c_max ({c_max})")
    gamma_min = 1.0 / gamma_max
    c = min(max(complexity, c_min), c_max)
    slope = -(gamma_max - gamma_min) / (math.log(c_max) - math.log(c_min))
    intercept = gamma_min - slope * math.log(c_max)
    return slope * math.log(c) + intercept


def calr_factor(
    t: int,
    total: int,
    complexity: float,
    c_min: float,
    c_max: float,
    gamma_max: float = 4.0,
    eta_min: float = 0.0,
) -> float:
    """Multiplier of the base learning rate at iteration ``t`` of ``total``."""
    gamma = calr_gamma(complexity, c_min, c_max, gamma_max)
    progress = max(0.0, (total - t) / total)
    return progress**gamma * (1 - eta_min) + eta_min
