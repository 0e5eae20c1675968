"""Ray Tune trial schedulers and searchers from config dicts (Ray's own classes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["build_searcher", "build_trial_scheduler"]


def build_trial_scheduler(
    cfg: Mapping[str, Any] | None, metric: str = "mIoU", mode: str = "max"
) -> Any:
    """``None`` or ``dict(type='fifo'|'asha'|'pbt', **kwargs)`` -> a Ray trial scheduler."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    if not cfg:
        return FIFOScheduler()
    kwargs = dict(cfg)
    kind = kwargs.pop("type", "fifo").lower()
    kinds = {"fifo": FIFOScheduler, "asha": ASHAScheduler, "pbt": PopulationBasedTraining}
    if kind not in kinds:
        raise KeyError(f"unknown scheduler type {kind!r}; known: {sorted(kinds)}")
    if kind == "fifo":
        return FIFOScheduler()
    kwargs.setdefault("time_attr", "training_iteration")
    return kinds[kind](metric=metric, mode=mode, **kwargs)


def build_searcher(cfg: Mapping[str, Any], metrics: list[str], modes: list[str]) -> Any:
    """``dict(type='nsga2'|'tpe'|'random', seed=..., ...)`` -> Ray's ``OptunaSearch``."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    kwargs = dict(cfg)
    kind = kwargs.pop("type", "nsga2").lower()
    seed = kwargs.pop("seed", 0)
    if kind == "nsga2":
        sampler = optuna.samplers.NSGAIISampler(seed=seed, **kwargs)
    elif kind == "tpe":
        sampler = optuna.samplers.TPESampler(seed=seed, **kwargs)
    elif kind == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        raise KeyError(f"unknown searcher type {kind!r}; known: ['nsga2', 'random', 'tpe']")
    return OptunaSearch(metric=metrics, mode=modes, sampler=sampler)
