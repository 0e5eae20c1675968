"""The configuration reference of ``tune_cfg``, generated from what the validator reads.

Every option's default comes from :data:`raynas.tune.options.DEFAULTS` (and the nested
``TSE``, ``SSR`` and ``RESOURCES``), its allowed values from the same tables the checks use
(``COUNTS``, ``CHOICES``, SSR's bounds); only the one-line descriptions live here, in
:data:`DOCS`. ``docs/hooks.py`` writes :func:`markdown` into the docs site at build time, and a
test fails when an option has no description or a description names no option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raynas.core.ssr import COSTS, COUNT_SETTINGS, LOWER_BOUNDS
from raynas.tune import options as o

__all__ = ["DOCS", "Option", "markdown", "options"]

DOCS: dict[str, str] = {
    "supernet.iters": "training iterations of each supernet trial",
    "supernet.report_interval": "iterations between validation (largest and smallest paths), "
    "report and checkpoint",
    "supernet.num_samples": "Tune trials; `param_space` may grid or sample `cfg_options`",
    "supernet.param_space": "Tune search space over the trial's config, in Ray's syntax, e.g. "
    "`{'cfg_options': {'optim_wrapper.optimizer.lr': tune.loguniform(1e-4, 1e-2)}}`",
    "supernet.scheduler": "a Tune trial scheduler on metric mIoU: `dict(type='asha'|'pbt'|'fifo', "
    "...)` with the scheduler's own arguments",
    "supernet.resources": "what one trial reserves (keys below)",
    "supernet.max_concurrent": "trials running at once",
    "supernet.amp": "mixed precision of the trials (mmengine's AmpOptimWrapper, GPU trials "
    "only): 'bf16', or 'fp16' with dynamic loss scaling; None: float32",
    "retrain.amp": "mixed precision of the retrain trials, as `supernet.amp`",
    "supernet.loggers": "experiment trackers fed by Tune's logger callbacks: 'mlflow', 'wandb', "
    "or dict(type=..., **the callback's arguments)",
    "search.type": "'sampling' (a searcher over candidates scored with inherited weights) or "
    "'ssr' (differentiable search with Solution Space Regularization)",
    "search.num_candidates": "candidates the searcher evaluates",
    "search.searcher": "`dict(type='nsga2'|'tpe'|'random', population_size=..., seed=...)`: an "
    "Optuna sampler driven by Tune's OptunaSearch",
    "search.constraints": "bounds per cost, e.g. `dict(flops=(None, 60e6), params=(None, 1e6), "
    "latency_ms=(None, 3.0))`; None leaves an end open",
    "search.cost": "the searcher's second objective (minimised)",
    "search.calib_batches": "BN recalibration batches per candidate",
    "search.eval_images": "selection-split images per candidate (None: all)",
    "search.latency": "also record every feasible candidate's latency (latency table)",
    "search.latency_backend": "how latency_ms is measured: 'torch' (PyTorch eager on the "
    "trial's device, per-layer table) or 'onnxruntime' (each candidate's static subnet "
    "exported and timed whole in ONNX Runtime on the trial's CPU threads)",
    "search.start_with": "architectures evaluated first: 'largest', 'smallest', arch files or "
    "label -> choice dicts",
    "search.tse": "re-rank the search's best candidates by a short fine-tune (keys below); None: "
    "retrain the top-k by inherited mIoU",
    "search.ssr": "SSR's options when `type='ssr'` (keys below)",
    "search.param_space": "Tune search space over `cfg_options` and `ssr`, e.g. "
    "`dict(ssr=dict(target_flops=dict(grid=[20e6, 40e6])))`: one SSR trial per point",
    "search.resources": "what one trial reserves (keys below)",
    "search.max_concurrent": "trials running at once, in batches: the searcher proposes the "
    "next batch once all of one has ended, so one seed evaluates one set of candidates",
    "search.loggers": "experiment trackers, as `supernet.loggers`",
    "retrain.top_k": "Pareto architectures retrained",
    "retrain.iters": "training iterations of each retrain trial",
    "retrain.report_interval": "iterations between validation, report and checkpoint",
    "retrain.init": "start from the supernet's weights ('inherit') or from scratch",
    "retrain.scheduler": "a Tune trial scheduler, as `supernet.scheduler`, or "
    "`dict(type='successive_halving', eta=3, grace=1)`: the top_k candidates halved at fixed "
    "rungs, a budget fixed in advance (docs: Pipeline)",
    "retrain.resources": "what one trial reserves (keys below)",
    "retrain.max_concurrent": "trials running at once",
    "retrain.loggers": "experiment trackers, as `supernet.loggers`",
    "report.baselines": "mmseg models trained beside the found ones on the same data and "
    "schedule: 'fastscnn', 'cgnet', 'bisenetv2', 'erfnet', 'stdc1' or mmseg configs",
    "ray.num_cpus": "CPUs of a local Ray (None: all)",
    "ray.num_gpus": "GPUs of a local Ray (None: all visible)",
    "ray.dashboard": "start the Ray dashboard of a local Ray (`raynas run --no-dashboard`)",
    "ray.env_vars": "environment of every Ray worker, merged over the default (None drops a "
    "variable; the driver's own environment wins); GOMP_SPINCOUNT keeps libgomp's spin-wait "
    "from slowing 2-thread trials beside a busy process",
    "resources.cpu": "CPUs of the trial (of each worker's driver when workers > 1)",
    "resources.gpu": "GPUs of the trial",
    "resources.workers": "data-parallel workers (Ray Train) of a supernet, SSR search or "
    "retrain trial",
    "resources.cpu_per_worker": "CPUs of each data-parallel worker",
    "resources.gpu_per_worker": "GPUs of each data-parallel worker",
    "resources.gpu_memory": "GiB of one of the cluster's GPUs: `raynas check` and `run` refuse "
    "a step estimated not to fit the trial's share (default: the local GPU's, if any)",
    "resources.threads": "torch threads of a supernet or retrain trial: 'auto' measures the "
    "faster of 1 and the trial's CPUs (the choice, and with it the weights, can change with the "
    "machine's load); an integer gives the same result on every run",
    "tse.candidates": "the search's best candidates re-scored",
    "tse.iters": "fine-tune iterations per candidate",
    "tse.lr": "fine-tune learning rate (AdamW)",
    "tse.schedule": "the fine-tune's lr: constant, or decayed to 0 ('poly')",
    "tse.score": "rank by the fine-tune's summed loss (TSE) or its selection-split mIoU",
    "tse.resources": "what one trial reserves",
    "tse.max_concurrent": "trials running at once",
    "ssr.iters": "weight + alpha iterations per SSR trial (the search may end earlier)",
    "ssr.shrink_interval": "iterations between shrink steps (and validations)",
    "ssr.threshold": "prune candidates with p_i / max_j p_j <= threshold",
    "ssr.warmup_iters": "weight-only iterations before alpha steps",
    "ssr.loss_weights": "SSR loss weight per decision type (depth, ops, widths, head)",
    "ssr.cost": "the cost the target is set on: 'flops', or 'latency_ms' from the trial "
    "device's latency table",
    "ssr.target_flops": "expected FLOPs pulled toward this (None: no cost term)",
    "ssr.target_latency_ms": "with cost='latency_ms': expected latency pulled toward this",
    "ssr.cost_weight": "weight of the cost term",
    "ssr.arch_optimizer": "Adam arguments of the architecture weights",
    "ssr.grad_clip": "gradient-norm clip of the architecture weights",
    "ssr.warm_start": "start from the supernet phase's weights",
    "ssr.seed": "seed of the SSR trial",
    "ssr.sample_k": "candidates per row computed in a step (drawn by probability); 0: all",
    "ssr.optimizer": "architecture optimizer: 'ssr' (Adam, SSR loss, threshold shrinking) or "
    "'xnas' (exponentiated gradient with wipeout)",
    "ssr.xnas_bound": "XNAS's reward bound (rewards clipped to it); None: the first step's "
    "largest reward",
    "ssr.xnas_lr": "XNAS's step size; None: sqrt(2 ln N / T) / xnas_bound",
    "ssr.tolerance": "the derived path's cost within this fraction of the target",
}
_FREE = "dict (free form)"
_SPECIAL = {
    "search.searcher": "dict: type 'nsga2', 'tpe' or 'random'; population_size >= 2",
    "search.constraints": "dict: flops, params, latency_ms -> (low, high)",
    "search.start_with": "list of 'largest', 'smallest', file paths, dicts",
    "search.tse": "None or dict (keys under tse)",
    "search.ssr": "None or dict (keys under ssr)",
    "report.baselines": "list of baseline names or mmseg config paths",
    "resources.threads": "'auto' or integer >= 1 (supernet, retrain only)",
    "resources.workers": "integer >= 1 (> 1: supernet, SSR search, retrain only)",
    "ssr.target_flops": "number > 0 or None",
    "ssr.target_latency_ms": "number > 0 or None",
    "ssr.sample_k": "0 or integer >= 2",
    "ssr.optimizer": "'ssr', 'xnas'",
    "ssr.xnas_bound": "number > 0 or None",
    "ssr.xnas_lr": "number > 0 or None",
    "ssr.tolerance": "number in (0, 1)",
    "ssr.cost": ", ".join(repr(c) for c in COSTS),
    "ssr.loss_weights": "dict: depth, ops, widths, head -> number >= 0",
    "tse.lr": "number > 0",
}


@dataclass(frozen=True)
class Option:
    """One row of the reference.

    Attributes:
        name: The key below ``tune_cfg`` (``resources.*``, ``tse.*`` and ``ssr.*`` are nested).
        default: The default value.
        allowed: The values the validator accepts.
        doc: One line on what it does.
    """

    name: str
    default: Any
    allowed: str
    doc: str


def _allowed(name: str, default: Any) -> str:
    key = name.rpartition(".")[2]
    if name in _SPECIAL:
        return _SPECIAL[name]
    if name == "search.type":  # the registry the checks read
        from raynas.tune.phases import SEARCH_TYPES

        return ", ".join(repr(k) for k in SEARCH_TYPES)
    if name in o.CHOICES:
        return ", ".join(repr(c) for c in o.CHOICES[name])
    if name.startswith("ssr.") and key in LOWER_BOUNDS:
        kind = "integer" if key in COUNT_SETTINGS else "number"
        return f"{kind} >= {LOWER_BOUNDS[key]}"
    if name.startswith(("tse.", "supernet.", "search.", "retrain.", "ray.")) and key in o.COUNTS:
        low, nullable = o.COUNTS[key]
        return f"integer >= {low}" + (" or None" if nullable else "")
    if key == "loggers":
        return "list of " + ", ".join(repr(t) for t in o.LOGGERS) + " or dict(type=...)"
    if isinstance(default, bool):
        return "True, False"
    if name.startswith("resources."):
        return "number >= 0"
    if isinstance(default, dict) or default is None:
        return _FREE
    return type(default).__name__


def options() -> list[Option]:
    """Every option, in the order of :data:`raynas.tune.options.DEFAULTS`, nested ones after."""
    flat: list[tuple[str, Any]] = []
    for phase, opts in o.DEFAULTS.items():
        flat += [(f"{phase}.{key}", value) for key, value in opts.items()]
    flat += [(f"resources.{key}", None) for key in o.RESOURCES]
    flat += [(f"tse.{key}", value) for key, value in o.TSE.items()]
    flat += [(f"ssr.{key}", value) for key, value in o.SSR.items()]
    return [Option(n, v, _allowed(n, v), DOCS.get(n, "")) for n, v in flat]


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|")


def markdown() -> str:
    """The reference as a markdown page, one table per section."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from `raynas/tune/options.py` (defaults and checks) at docs build time: the",
        "keys of a pipeline config's `tune_cfg`. A bad key or value stops `raynas run` before",
        "anything starts, naming the key and the closest valid one.",
    ]
    section = None
    for opt in options():
        head = opt.name.partition(".")[0]
        if head != section:
            section = head
            where = {"resources": "`tune_cfg.<phase>.resources`", "tse": "`tune_cfg.search.tse`",
                     "ssr": "`tune_cfg.search.ssr`"}.get(head, f"`tune_cfg.{head}`")  # fmt: skip
            lines += ["", f"## {where}", "", "| key | default | allowed | what it does |",
                      "|---|---|---|---|"]  # fmt: skip
        default = "" if opt.name.startswith("resources.") else f"`{opt.default!r}`"
        key = opt.name.partition(".")[2]
        lines.append(f"| `{key}` | {_cell(default)} | {_cell(opt.allowed)} | {_cell(opt.doc)} |")
    return "\n".join(lines) + "\n"
