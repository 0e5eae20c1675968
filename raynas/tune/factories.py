"""Ray Tune trial schedulers and searchers from config dicts (Ray's own classes)."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from typing import Any

from raynas.core.errors import UnknownKeyError, closest

__all__ = ["build_loggers", "build_searcher", "build_trial_scheduler"]


def _check_kwargs(where: str, cls: type, kwargs: Mapping[str, Any], fixed: set[str]) -> None:
    """Names a keyword that ``cls`` does not take (and the closest one it does)."""
    valid = set(inspect.signature(cls).parameters) - fixed
    for key in kwargs:
        if key not in valid:
            raise UnknownKeyError(
                f"unknown key {where}.{key}{closest(key, valid)} for {cls.__name__}; "
                f"valid: {sorted(valid)}"
            )


def build_trial_scheduler(
    cfg: Mapping[str, Any] | None,
    metric: str = "mIoU",
    mode: str = "max",
    max_t: int = 1,
    trials: int = 1,
    **extra: Any,
) -> Any:
    """``None`` or ``dict(type='fifo'|'asha'|'pbt'|'successive_halving', **kwargs)`` -> a
    trial scheduler (FIFO: :class:`~raynas.tune.live_fifo.LiveFIFOScheduler`, Tune's FIFO
    choice at a cost that does not grow with the run's trials; successive halving:
    :class:`~raynas.tune.halving.SuccessiveHalving` of ``trials`` trials over ``max_t``
    reports, ``extra`` its ``store``/``only``/``max_running``)."""
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, PopulationBasedTraining

    from raynas.tune.halving import SuccessiveHalving
    from raynas.tune.live_fifo import LiveFIFOScheduler

    if not cfg:
        return LiveFIFOScheduler()
    kwargs = dict(cfg)
    kind = str(kwargs.pop("type", "fifo")).lower()
    kinds = {"fifo": FIFOScheduler, "asha": ASHAScheduler, "pbt": PopulationBasedTraining,
             "successive_halving": SuccessiveHalving}  # fmt: skip
    if kind not in kinds:
        raise UnknownKeyError(
            f"unknown scheduler type {kind!r}{closest(kind, kinds)}; known: {sorted(kinds)}"
        )
    if kind == "fifo":
        return LiveFIFOScheduler()
    if kind == "successive_halving":
        fixed = {"metric", "mode", "max_t", "store", "only", "trials", "max_running"}
        _check_kwargs("scheduler", kinds[kind], kwargs, fixed)
        return SuccessiveHalving(trials, max_t, metric=metric, mode=mode, **kwargs, **extra)
    _check_kwargs("scheduler", kinds[kind], kwargs, {"metric", "mode"})
    kwargs.setdefault("time_attr", "training_iteration")
    return kinds[kind](metric=metric, mode=mode, **kwargs)


def build_searcher(
    cfg: Mapping[str, Any],
    metrics: list[str],
    modes: list[str],
    points: list[dict] | None = None,
    concurrent: int = 1,
) -> Any:
    """``dict(type='nsga2'|'tpe'|'random', seed=..., ...)`` -> Ray's ``OptunaSearch``, which
    suggests ``points`` (flat parameter name -> value) first, behind Tune's
    ``ConcurrencyLimiter`` in batches of ``concurrent`` trials: the searcher hears of a batch
    once all of it has ended, so what it proposes next does not hang on which trial finished
    first, and one seed gives one set of candidates."""
    import optuna
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    from raynas.tune.optuna_samplers import NSGAIISampler

    kwargs = dict(cfg)
    kind = str(kwargs.pop("type", "nsga2")).lower()
    seed = kwargs.pop("seed", 0)
    samplers = {
        "nsga2": NSGAIISampler,
        "tpe": optuna.samplers.TPESampler,
        "random": optuna.samplers.RandomSampler,
    }
    if kind not in samplers:
        raise UnknownKeyError(
            f"unknown searcher type {kind!r}{closest(kind, samplers)}; known: {sorted(samplers)}"
        )
    _check_kwargs("tune_cfg.search.searcher", samplers[kind], kwargs, {"seed"})
    sampler = samplers[kind](seed=seed, **kwargs)
    searcher = OptunaSearch(
        metric=metrics, mode=modes, sampler=sampler, points_to_evaluate=points or None
    )
    return ConcurrencyLimiter(searcher, concurrent, batch=True)


def build_loggers(specs: list[Mapping[str, Any]], experiment: str, phase: str) -> list[Any]:
    """``tune_cfg.<phase>.loggers`` -> Tune's own logger callbacks (MLflow, Weights & Biases).

    Args:
        specs: ``dict(type='mlflow'|'wandb', **the callback's arguments)`` each, checked by
            :mod:`raynas.tune.options`.
        experiment: The experiment's name: MLflow's experiment and W&B's project by default.
        phase: The phase: W&B's group; an MLflow tag.
    """
    callbacks = []
    for spec in specs:
        kwargs = {k: v for k, v in spec.items() if k != "type"}
        if spec["type"] == "mlflow":
            from ray.air.integrations.mlflow import MLflowLoggerCallback as cls

            kwargs.setdefault("experiment_name", experiment)
            kwargs["tags"] = {"raynas.phase": phase, **(kwargs.get("tags") or {})}
        else:
            from ray.air.integrations.wandb import WandbLoggerCallback as cls

            kwargs.setdefault("project", experiment)
            kwargs.setdefault("group", phase)
            if kwargs.get("mode") in ("offline", "disabled"):  # Ray asks for a key otherwise
                os.environ["WANDB_MODE"] = kwargs["mode"]
        where = f"tune_cfg.{phase}.loggers[{spec['type']}]"
        if spec["type"] == "mlflow":
            _check_kwargs(where, cls, kwargs, set())
        callbacks.append(cls(**kwargs))
    return callbacks
