"""The ``tune_cfg`` of a pipeline config: defaults, and validation that names bad keys."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["DEFAULTS", "resolve_tune_cfg"]

DEFAULTS: dict[str, dict[str, Any]] = {
    "supernet": dict(
        iters=2000,  # training iterations of each supernet trial
        report_interval=500,  # validate (largest/smallest paths), report and checkpoint
        num_samples=1,  # trials; param_space may grid/sample cfg_options
        param_space={},  # e.g. {'cfg_options': {'optim_wrapper.optimizer.lr': ...}}
        scheduler=None,  # dict(type='asha'|'pbt'|'fifo', ...) on metric mIoU
        resources=dict(cpu=2, gpu=0),
        max_concurrent=1,
    ),
    "search": dict(
        num_candidates=32,
        searcher=dict(type="nsga2", population_size=8, seed=0),
        constraints={},  # e.g. dict(flops=(None, 60e6), params=(None, 1e6))
        calib_batches=4,  # BN recalibration batches per candidate
        eval_images=100,  # validation images per candidate (None: all)
        latency=False,  # also measure each feasible candidate's latency
        resources=dict(cpu=1, gpu=0),
        max_concurrent=2,
    ),
    "retrain": dict(
        top_k=2,  # Pareto architectures to retrain
        iters=1000,
        report_interval=500,
        init="inherit",  # 'inherit' supernet weights, or 'scratch'
        scheduler=None,
        resources=dict(cpu=1, gpu=0),
        max_concurrent=2,
    ),
    "ray": dict(
        num_cpus=None,
        num_gpus=None,
        # environment of every Ray worker, merged over this default (None drops a variable;
        # one set in the driver's environment wins): libgomp's default spin-wait slows
        # 2-thread torch training ~60x when another process takes a core
        # (benchmarks/results/openmp.md)
        env_vars=dict(GOMP_SPINCOUNT="1000"),
    ),
}
_FREE_FORM = {"param_space", "scheduler", "searcher", "constraints", "resources"}
_MERGED = {"env_vars"}


def resolve_tune_cfg(user: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Merges a config's ``tune_cfg`` over :data:`DEFAULTS`.

    Raises:
        KeyError: An unknown phase or option, naming the valid ones.
        ValueError: A bad value (e.g. ``retrain.init``).
    """
    out = copy.deepcopy(DEFAULTS)
    for phase, opts in dict(user or {}).items():
        if phase not in out:
            raise KeyError(f"unknown tune_cfg key {phase!r}; valid: {sorted(out)}")
        for key, value in dict(opts or {}).items():
            if key not in out[phase]:
                raise KeyError(
                    f"unknown tune_cfg key '{phase}.{key}'; valid keys of "
                    f"tune_cfg.{phase}: {sorted(out[phase])}"
                )
            if key in _MERGED:
                merged = {**out[phase][key], **dict(value or {})}
                value = {k: v for k, v in merged.items() if v is not None}
            elif key in _FREE_FORM and value:
                value = dict(value)
            out[phase][key] = value
    if out["retrain"]["init"] not in ("inherit", "scratch"):
        raise ValueError(
            f"tune_cfg.retrain.init must be 'inherit' or 'scratch', got {out['retrain']['init']!r}"
        )
    for key, bounds in out["search"]["constraints"].items():
        if key not in ("flops", "params") or len(bounds) != 2:
            raise ValueError(
                f"tune_cfg.search.constraints.{key}: use flops=(low, high) or "
                "params=(low, high) with None for an open end"
            )
    for phase in ("supernet", "retrain"):
        if out[phase]["report_interval"] > out[phase]["iters"]:
            raise ValueError(f"tune_cfg.{phase}.report_interval exceeds tune_cfg.{phase}.iters")
    return out
