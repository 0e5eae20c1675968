"""``param_space`` of a phase: Ray Tune's own search-space syntax, plus a declarative
shorthand for config files (``dict(grid=[...])``, ``dict(choice=[...])``,
``dict(uniform=(lo, hi))``, ``dict(loguniform=(lo, hi))``)."""

from __future__ import annotations

from typing import Any

__all__ = ["grid_size", "tune_spec"]


def tune_spec(spec: Any) -> Any:
    """Declarative param_space entries -> Tune domains: dict(grid=[...]), dict(choice=[...]),
    dict(uniform=(lo, hi)), dict(loguniform=(lo, hi)); anything else is a constant."""
    from ray import tune

    if isinstance(spec, dict) and len(spec) == 1:
        ((kind, value),) = spec.items()
        makers = {
            "grid": tune.grid_search,
            "choice": tune.choice,
            "uniform": lambda v: tune.uniform(*v),
            "loguniform": lambda v: tune.loguniform(*v),
        }
        if kind in makers:
            return makers[kind](list(value))
    if isinstance(spec, dict):
        return {k: tune_spec(v) for k, v in spec.items()}
    return spec


def grid_size(space: dict) -> int:
    size = 1
    for value in space.values():
        if isinstance(value, dict) and "grid_search" in value:
            size *= len(value["grid_search"])
        elif isinstance(value, dict):
            size *= grid_size(value)
    return size
