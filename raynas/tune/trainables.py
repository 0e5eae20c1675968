"""Ray Tune function trainables of the three phases (``ray.tune.report`` / ``get_checkpoint``).

Each trial gets the experiment's frozen mmseg config as text (through ``tune.with_parameters``)
and its phase options; Tune samples only what ``param_space`` declares.
"""

from __future__ import annotations

import numbers
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from ray import tune

from raynas.config import space_and_table
from raynas.tune.archive import encode_rows
from raynas.tune.lifeline import exit_with_parent

__all__ = ["evaluate_candidate", "retrain_subnet", "train_supernet"]

CKPT_NAME = "checkpoint.pth"
Rows = Callable[[Any, Mapping[str, Any]], list[dict]]


def _config(cfg_text: str, options: Mapping[str, Any] | None) -> Config:
    import mmseg_plugins  # noqa: F401  (registers modules, safe checkpoint loading)
    from raynas.config import config_from_text

    return config_from_text(cfg_text, dict(options or {}))


def _threads() -> None:
    """Sizes torch's thread pool to the trial's CPUs; the process ends with its raylet."""
    exit_with_parent()
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, numbers.Real)}


class TuneReportHook(Hook):
    """After each validation: ``tune.report`` the metrics, archive rows and the checkpoint.

    Injected by the trainables (not registered): it needs a Tune session.
    """

    priority = "LOWEST"

    def __init__(self, rows: Rows) -> None:
        self.rows = rows
        self.start = time.perf_counter()

    def after_val_epoch(self, runner: Any, metrics: Mapping[str, Any] | None = None) -> None:
        metrics = dict(metrics or {})
        ckpt = Path(runner.work_dir) / f"iter_{runner.iter}.pth"
        report = {
            **_scalar_metrics(metrics),
            **_strategy_metrics(runner),
            "iter": runner.iter,
            "compute_s": time.perf_counter() - self.start,
            "compute_end": time.time(),
            "archive_rows": encode_rows(self.rows(runner, metrics)),
        }
        if not ckpt.is_file():
            tune.report(report)
            return
        with tempfile.TemporaryDirectory() as d:
            try:
                os.link(ckpt, Path(d) / CKPT_NAME)
            except OSError:  # another filesystem
                shutil.copy(ckpt, Path(d) / CKPT_NAME)
            tune.report(report, checkpoint=tune.Checkpoint.from_directory(d))


def _strategy_metrics(runner: Any) -> dict[str, float]:
    """The path-sampling strategy's latest scalars (``strategy/...``), e.g. the DPS stage."""
    return {
        k: float(v.current())
        for k, v in runner.message_hub.log_scalars.items()
        if k.startswith("strategy/")
    }


def _prepare_runner_cfg(cfg: Config, iters: int, interval: int, work_dir: Path) -> None:
    cfg.work_dir = str(work_dir)
    cfg.log_level = "WARNING"
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = interval
    for sched in cfg.get("param_scheduler") or []:
        if "end" in sched:
            sched["end"] = iters
    cfg.default_hooks.checkpoint = dict(
        type="CheckpointHook", by_epoch=False, interval=interval, max_keep_ckpts=1, save_last=True
    )
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:  # restored trial: continue from the last reported checkpoint
        work_dir.mkdir(parents=True, exist_ok=True)
        with checkpoint.as_directory() as d:
            shutil.copy(Path(d) / CKPT_NAME, work_dir / "resume_from.pth")
        cfg.load_from = str(work_dir / "resume_from.pth")
        cfg.resume = True


def _run(cfg: Config, rows: Rows) -> None:
    from mmengine.runner import Runner

    _threads()
    runner = Runner.from_cfg(cfg)
    runner.register_hook(TuneReportHook(rows))
    runner.train()


def _row(
    arch: Mapping[str, Any], path: str, miou: float | None, cost: Any, space: Any, **extra: Any
) -> dict:
    return dict(
        path=path,
        arch=dict(arch),
        encoding=space.encode(arch).tolist(),
        miou=miou,
        flops=cost.flops,
        params=cost.params,
        **extra,
    )


def train_supernet(config: dict, cfg_text: str, opts: dict) -> None:
    """Phase 1: supernet training with the config's path-sampling strategy."""
    cfg = _config(cfg_text, config.get("cfg_options"))
    work = Path(tune.get_context().get_trial_dir()) / "work"
    _prepare_runner_cfg(cfg, opts["iters"], opts["report_interval"], work)
    space, table = space_and_table(cfg)
    paths = {"largest": space.extreme(True), "smallest": space.extreme(False)}

    def rows(runner: Any, metrics: Mapping[str, Any]) -> list[dict]:
        return [
            _row(arch, name, metrics.get(f"{name}/mIoU"), table(arch), space)
            for name, arch in paths.items()
            if f"{name}/mIoU" in metrics
        ]

    _run(cfg, rows)


class _Evaluator:
    """A loaded supernet with its data, kept per worker process across candidates."""

    def __init__(self, cfg: Config, checkpoint_dir: str, opts: Mapping[str, Any]) -> None:
        from mmengine.evaluator import Evaluator
        from mmseg.registry import DATASETS
        from torch.utils.data import DataLoader, Subset

        from mmseg_plugins.bn_calib import train_calibration_loader
        from raynas.export import build_supernet, load_supernet_weights
        from raynas.tune.storage import Storage

        self.cfg = cfg
        self.model = build_supernet(cfg)
        local = Storage(checkpoint_dir).local_copy()
        load_supernet_weights(self.model, local / CKPT_NAME)
        if torch.cuda.is_available():  # a trial with a GPU (Ray sets CUDA_VISIBLE_DEVICES)
            self.model.cuda()
        self.space, self.table = space_and_table(cfg)
        self.calib = train_calibration_loader(cfg)
        val = DATASETS.build(cfg.val_dataloader.dataset)
        n = min(len(val), int(opts.get("eval_images") or len(val)))
        from mmengine.dataset import pseudo_collate

        self.val = DataLoader(
            Subset(val, range(n)),
            batch_size=cfg.val_dataloader.batch_size,
            collate_fn=pseudo_collate,
        )
        self.evaluator = Evaluator(cfg.val_evaluator)
        self.evaluator.dataset_meta = val.metainfo

    def miou(self, arch: Mapping[str, Any], calib_batches: int) -> float:
        from mmseg_plugins.bn_calib import evaluate_path

        metrics = evaluate_path(
            self.model,
            arch,
            self.calib,
            calib_batches,
            self.val,
            self.evaluator,
            len(self.val.dataset),
        )
        return float(metrics["mIoU"])


_EVALUATORS: dict[tuple[int, str], _Evaluator] = {}


def _feasible(cost: Any, constraints: Mapping[str, Any]) -> bool:
    for key, (low, high) in constraints.items():
        value = getattr(cost, key)
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def evaluate_candidate(config: dict, cfg_text: str, opts: dict) -> None:
    """Phase 2: one candidate with inherited weights: BN recalibration, val mIoU, cost."""
    _threads()
    start = time.perf_counter()
    key = (hash(cfg_text), opts["supernet_checkpoint"])
    if key not in _EVALUATORS:  # actors are reused, so later candidates skip the loading
        _EVALUATORS.clear()
        _EVALUATORS[key] = _Evaluator(
            _config(cfg_text, opts.get("cfg_options")), opts["supernet_checkpoint"], opts
        )
    ev = _EVALUATORS[key]
    arch = ev.space.canonical(ev.space.validate(config["arch"]))
    cost = ev.table(arch)
    feasible = _feasible(cost, opts.get("constraints") or {})
    miou = ev.miou(arch, opts.get("calib_batches", 4)) if feasible else 0.0
    latency = None
    if feasible and opts.get("latency"):
        from mmseg_plugins.arch import build_subnet
        from mmseg_plugins.latency import measure_latency

        sub = build_subnet(ev.model, arch, ev.cfg.model)
        latency = measure_latency(sub, tuple(ev.table.input_size))
    row = _row(
        arch,
        "candidate",
        miou if feasible else None,
        cost,
        ev.space,
        latency_ms=latency,
        feasible=feasible,
    )
    tune.report(
        {
            "mIoU": miou,
            "flops": cost.flops,
            "params": cost.params,
            "feasible": int(feasible),
            "latency_ms": latency or 0.0,
            "compute_s": time.perf_counter() - start,
            "compute_end": time.time(),
            "archive_rows": encode_rows([row]),
        }
    )


def retrain_subnet(config: dict, opts: dict) -> None:
    """Phase 3: standard mmseg training of one exported subnet."""
    from raynas.arch_io import load_arch
    from raynas.tune.storage import Storage

    subnet = Storage(config["subnet_dir"]).local_copy()
    cfg = _config((subnet / "subnet.py").read_text(), config.get("cfg_options"))
    work = Path(tune.get_context().get_trial_dir()) / "work"
    _prepare_runner_cfg(cfg, opts["iters"], opts["report_interval"], work)
    if opts.get("init", "inherit") == "inherit" and not cfg.get("resume"):
        cfg.load_from = str(subnet / "subnet.pth")
    arch = load_arch(subnet / "arch.yaml")
    name = Path(config["subnet_dir"]).name

    def rows(runner: Any, metrics: Mapping[str, Any]) -> list[dict]:
        from mmengine.analysis import parameter_count

        model = runner.model
        params = parameter_count(model)[""]
        return [
            dict(
                path=name,
                arch=arch,
                encoding=None,
                miou=metrics.get("mIoU"),
                flops=opts["flops"].get(name),
                params=params,
            )
        ]

    _run(cfg, rows)
