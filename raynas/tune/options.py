"""The ``tune_cfg`` of a pipeline config: defaults, and validation that names bad keys."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from raynas.core.errors import InvalidValueError, UnknownKeyError, closest

__all__ = [
    "CHOICES",
    "COUNTS",
    "DATA_PARALLEL",
    "DEFAULTS",
    "LOGGERS",
    "RESOURCES",
    "SSR",
    "TSE",
    "ray_init_kwargs",
    "resolve_tune_cfg",
    "trial_resources",
]

DEFAULTS: dict[str, dict[str, Any]] = {
    "supernet": dict(
        iters=2000,
        report_interval=500,
        num_samples=1,
        param_space={},
        scheduler=None,
        resources=dict(cpu=2, gpu=0),
        max_concurrent=1,
        loggers=[],
        amp=None,
    ),
    "search": dict(
        type="sampling",
        num_candidates=32,
        searcher=dict(type="nsga2", population_size=8, seed=0),
        constraints={},
        cost="flops",
        calib_batches=4,
        eval_images=100,
        latency=False,
        latency_backend="torch",
        start_with=[],
        tse=None,
        ssr=None,
        param_space={},
        resources=dict(cpu=1, gpu=0),
        max_concurrent=2,
        loggers=[],
    ),
    "retrain": dict(
        top_k=2,
        iters=1000,
        report_interval=500,
        init="inherit",
        scheduler=None,
        resources=dict(cpu=1, gpu=0),
        max_concurrent=2,
        loggers=[],
        amp=None,
    ),
    "report": dict(baselines=[]),
    "ray": dict(
        num_cpus=None,
        num_gpus=None,
        dashboard=True,
        env_vars=dict(GOMP_SPINCOUNT="1000"),
    ),
}
# the options with a fixed set of values, by their reference name
CHOICES: dict[str, tuple[str, ...]] = {
    "search.cost": ("flops", "latency_ms"),
    "search.latency_backend": ("torch", "onnxruntime"),
    "retrain.init": ("inherit", "scratch"),
    "tse.schedule": ("constant", "poly"),
    "tse.score": ("loss", "mIoU"),
    "supernet.amp": (None, "bf16", "fp16"),
    "retrain.amp": (None, "bf16", "fp16"),
}
LOGGERS = ("mlflow", "wandb")
_FREE_FORM = {"param_space", "scheduler", "searcher", "constraints", "resources"}
_MERGED = {"env_vars"}
# (minimum, None allowed) of every integer option
COUNTS: dict[str, tuple[int, bool]] = {
    "iters": (1, False),
    "report_interval": (1, False),
    "num_samples": (1, False),
    "max_concurrent": (1, False),
    "num_candidates": (1, False),
    "calib_batches": (0, False),
    "eval_images": (1, True),
    "top_k": (1, False),
    "num_cpus": (1, True),
    "num_gpus": (0, True),
}
# cpu/gpu: the trial's own; workers > 1 (data-parallel trials: supernet, retrain): the trial is a
# light Ray Train driver (0.1 CPU) and each worker takes cpu_per_worker/gpu_per_worker
RESOURCES = ("cpu", "gpu", "workers", "cpu_per_worker", "gpu_per_worker", "threads", "gpu_memory")
_THREADS_PHASES = ("supernet", "retrain")  # trials that train with the Runner in one process
DATA_PARALLEL = ("supernet", "search", "retrain")  # search: SSR only
_CONSTRAINTS = ("flops", "params", "latency_ms")


def _unknown(what: str, key: str, valid: Any) -> UnknownKeyError:
    return UnknownKeyError(f"unknown {what} {key!r}{closest(key, valid)}; valid: {sorted(valid)}")


def _mapping(where: str, value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidValueError(f"{where} must be a dict, got {value!r}")
    return dict(value)


def resolve_tune_cfg(user: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Merges a config's ``tune_cfg`` over :data:`DEFAULTS` and checks every value.

    Raises:
        UnknownKeyError: An unknown phase, option or sub-key, naming the closest valid one.
        InvalidValueError: A value of the wrong type or outside its range.
    """
    out = copy.deepcopy(DEFAULTS)
    for phase, opts in _mapping("tune_cfg", user).items():
        if phase not in out:
            raise _unknown("tune_cfg key", phase, out)
        for key, value in _mapping(f"tune_cfg.{phase}", opts).items():
            if key not in out[phase]:
                raise UnknownKeyError(
                    f"unknown tune_cfg key '{phase}.{key}'{closest(key, out[phase])}; valid "
                    f"keys of tune_cfg.{phase}: {sorted(out[phase])}"
                )
            if key in _MERGED:
                merged = {**out[phase][key], **_mapping(f"tune_cfg.{phase}.{key}", value)}
                value = {k: v for k, v in merged.items() if v is not None}
            elif key in _FREE_FORM and value:
                value = _mapping(f"tune_cfg.{phase}.{key}", value)
            out[phase][key] = value
    for phase, opts in out.items():
        _check_phase(phase, opts)
    return out


TSE = dict(candidates=8, iters=50, lr=1e-3, schedule="constant", score="loss",
            resources=dict(cpu=1, gpu=0), max_concurrent=2)  # fmt: skip


def _check_tse(tse: dict[str, Any]) -> dict[str, Any]:
    for key in tse:
        if key not in TSE:
            raise _unknown("key of tune_cfg.search.tse:", key, TSE)
    out = {**copy.deepcopy(TSE), **tse}
    for key in ("candidates", "iters", "max_concurrent"):
        _check_count(f"tune_cfg.search.tse.{key}", out[key], 1, False)
    if not isinstance(out["lr"], (int, float)) or out["lr"] <= 0:
        raise InvalidValueError(f"tune_cfg.search.tse.lr must be a number > 0, got {out['lr']!r}")
    for key in ("schedule", "score"):
        choices = CHOICES[f"tse.{key}"]
        if out[key] not in choices:
            raise InvalidValueError(
                f"tune_cfg.search.tse.{key} must be one of {choices}, got {out[key]!r}"
            )
    return out


SSR = dict(
    iters=400,
    shrink_interval=50,
    threshold=0.1,
    warmup_iters=0,
    loss_weights=dict(depth=0.3, ops=0.3, widths=0.15, head=0.15),
    cost="flops",
    target_flops=None,
    target_latency_ms=None,
    cost_weight=1.0,
    arch_optimizer=dict(lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-3),
    grad_clip=5.0,
    warm_start=True,
    seed=0,
    sample_k=0,
    optimizer="ssr",
    xnas_bound=None,
    xnas_lr=None,
    tolerance=0.05,
)


def _check_ssr(ssr: dict[str, Any], where: str = "tune_cfg.search.ssr") -> dict[str, Any]:
    from raynas.core.ssr import check_loss_weights, check_settings

    for key in ssr:
        if key not in SSR:
            raise _unknown(f"key of {where}:", key, SSR)
    out = {**copy.deepcopy(SSR), **ssr}
    check_settings(out, where)
    check_loss_weights(
        _mapping(f"{where}.loss_weights", out["loss_weights"]), f"{where}.loss_weights"
    )
    return out


def _check_phase(phase: str, opts: dict[str, Any]) -> None:
    where = f"tune_cfg.{phase}"
    if phase == "search" and opts.get("tse") is not None:
        opts["tse"] = _check_tse(_mapping(f"{where}.tse", opts["tse"]))
    if phase == "search" and opts["type"] == "ssr":
        opts["ssr"] = _check_ssr(_mapping(f"{where}.ssr", opts["ssr"]))
    if phase == "report":
        from raynas.baselines import check_baselines

        opts["baselines"] = check_baselines(opts["baselines"])
    for key, value in opts.items():
        if key in COUNTS:
            _check_count(f"{where}.{key}", value, *COUNTS[key])
    for key, value in (opts.get("resources") or {}).items():
        if key not in RESOURCES:
            raise _unknown(f"key of {where}.resources:", key, RESOURCES)
        if key == "threads":
            _check_threads(f"{where}.resources.threads", value, phase)
            continue
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise InvalidValueError(
                f"{where}.resources.{key} must be a number >= 0, got {value!r}"
            )
    workers = (opts.get("resources") or {}).get("workers", 1)
    _check_count(f"{where}.resources.workers", workers, 1, False)
    if workers > 1 and phase not in DATA_PARALLEL:
        raise InvalidValueError(
            f"{where}.resources.workers={workers}: data-parallel trials are built for the "
            f"{', '.join(DATA_PARALLEL)} phases; use workers=1 here"
        )
    if workers > 1 and phase == "search" and opts.get("type") != "ssr":
        raise InvalidValueError(
            f"{where}.resources.workers={workers}: a search runs data-parallel with "
            f"type='ssr' only (a sampling search's trials each score their own candidates); "
            "use workers=1, or type='ssr'"
        )
    if "report_interval" in opts and opts["report_interval"] > opts["iters"]:
        raise InvalidValueError(
            f"{where}.report_interval ({opts['report_interval']}) exceeds "
            f"{where}.iters ({opts['iters']})"
        )
    if phase == "retrain" and opts["init"] not in CHOICES["retrain.init"]:
        raise InvalidValueError(
            f"tune_cfg.retrain.init must be 'inherit' or 'scratch', got {opts['init']!r}"
        )
    if "loggers" in opts:
        opts["loggers"] = _check_loggers(where, opts["loggers"])
    if "amp" in opts:
        _check_amp(where, opts)
    if phase == "search":
        _check_search(opts)
    keys = ["cfg_options", "ssr"] if phase == "search" else ["cfg_options"]
    unknown = sorted(set(opts.get("param_space") or {}) - set(keys))
    if unknown:
        raise _unknown(f"key of {where}.param_space:", unknown[0], keys)
    for key in (opts.get("param_space") or {}).get("ssr") or {}:
        if key not in SSR:
            raise _unknown(f"key of {where}.param_space.ssr:", key, SSR)


def _check_search(opts: dict[str, Any]) -> None:
    for key, bounds in opts["constraints"].items():
        if key not in _CONSTRAINTS:
            raise _unknown("key of tune_cfg.search.constraints:", key, _CONSTRAINTS)
        pair = isinstance(bounds, (tuple, list)) and len(bounds) == 2
        if not pair or not all(b is None or isinstance(b, (int, float)) for b in bounds):
            raise InvalidValueError(
                f"tune_cfg.search.constraints.{key}: use {key}=(low, high) with numbers and "
                f"None for an open end, got {bounds!r}"
            )
        if None not in bounds and bounds[0] > bounds[1]:
            raise InvalidValueError(
                f"tune_cfg.search.constraints.{key}: low {bounds[0]} > high {bounds[1]}"
            )
    if opts["cost"] not in CHOICES["search.cost"]:
        raise InvalidValueError(
            f"tune_cfg.search.cost must be 'flops' or 'latency_ms', got {opts['cost']!r}"
        )
    size = opts["searcher"].get("population_size")
    if size is not None:
        _check_count("tune_cfg.search.searcher.population_size", size, 2, False)
    starts = opts["start_with"]
    if not isinstance(starts, (list, tuple)) or not all(
        isinstance(s, (str, Mapping)) for s in starts
    ):
        raise InvalidValueError(
            "tune_cfg.search.start_with must be a list of 'largest', 'smallest', arch file paths "
            f"or label -> choice dicts, got {starts!r}"
        )
    if opts["latency_backend"] not in CHOICES["search.latency_backend"]:
        raise InvalidValueError(
            f"tune_cfg.search.latency_backend must be one of "
            f"{list(CHOICES['search.latency_backend'])}, got {opts['latency_backend']!r}"
        )
    if not isinstance(opts["latency"], bool):
        raise InvalidValueError(
            f"tune_cfg.search.latency must be True or False, got {opts['latency']!r}"
        )


def _check_amp(where: str, opts: dict[str, Any]) -> None:
    """Mixed precision: a known dtype, on trials that have a GPU (mmengine's AmpOptimWrapper
    runs on CUDA only)."""
    amp = opts["amp"]
    if amp not in CHOICES[f"{where.split('.')[1]}.amp"]:
        raise InvalidValueError(f"{where}.amp must be None, 'bf16' or 'fp16', got {amp!r}")
    res = opts.get("resources") or {}
    if amp and not (res.get("gpu") or res.get("gpu_per_worker")):
        raise InvalidValueError(
            f"{where}.amp={amp!r} trains with mmengine's AmpOptimWrapper, which runs on CUDA "
            f"only, and these trials have no GPU: set {where}.resources.gpu (or "
            f"gpu_per_worker), or {where}.amp=None"
        )


def _check_loggers(where: str, loggers: Any) -> list[dict[str, Any]]:
    """``loggers`` as a list of ``dict(type=..., **kwargs)``, each type one of :data:`LOGGERS`."""
    if not isinstance(loggers, (list, tuple)):
        raise InvalidValueError(
            f"{where}.loggers must be a list such as ['mlflow', 'wandb'], got {loggers!r}"
        )
    out = []
    for item in loggers:
        spec = dict(type=item) if isinstance(item, str) else _mapping(f"{where}.loggers", item)
        if spec.get("type") not in LOGGERS:
            kind = str(spec.get("type"))
            raise UnknownKeyError(
                f"unknown logger {kind!r} in {where}.loggers{closest(kind, LOGGERS)}; "
                f"known: {list(LOGGERS)}"
            )
        out.append(spec)
    return out


def _check_count(where: str, value: Any, minimum: int, nullable: bool) -> None:
    if value is None and nullable:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        extra = " or None" if nullable else ""
        raise InvalidValueError(f"{where} must be an integer >= {minimum}{extra}, got {value!r}")


def _check_threads(where: str, value: Any, phase: str) -> None:
    if phase not in _THREADS_PHASES:
        raise InvalidValueError(
            f"{where} applies to the {' and '.join(_THREADS_PHASES)} phases only (trials here "
            "use as many threads as they reserve CPUs); remove it"
        )
    if value != "auto" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise InvalidValueError(
            f"{where} must be 'auto' (the faster of 1 and the trial's CPUs, measured) or an "
            f"integer >= 1, got {value!r}"
        )


def trial_resources(opts: dict) -> dict[str, float]:
    """What a trial reserves; a data-parallel trial's workers reserve their own."""
    if int(opts["resources"].get("workers", 1)) > 1:
        return {"cpu": 0.1}
    res = {k: float(v) for k, v in opts["resources"].items() if v and k in ("cpu", "gpu")}
    return res or {"cpu": 1}


def ray_init_kwargs(
    opts: dict[str, Any], address: str | None, environ: Mapping[str, str]
) -> dict[str, Any]:
    """``ray.init`` arguments from ``tune_cfg.ray``.

    Args:
        opts: The resolved ``tune_cfg.ray``.
        address: A cluster to join, or None to start a local Ray.
        environ: The driver's environment; its variables win over ``opts['env_vars']``.
    """
    kwargs: dict[str, Any] = dict(logging_level="WARNING")
    if address:
        kwargs["address"] = address
    else:
        kwargs.update(
            num_cpus=opts["num_cpus"],
            num_gpus=opts["num_gpus"],
            include_dashboard=bool(opts["dashboard"]),
        )
    env = {k: str(v) for k, v in opts["env_vars"].items() if k not in environ}
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    return kwargs
