"""Data-parallel training trials: a Tune trial drives Ray Train's ``TorchTrainer`` (the V2
pattern: the trial is the Train driver, its workers reserve their own resources), each worker
runs the trial's mmengine Runner with ``launcher='pytorch'`` on the process group Ray Train set
up (gloo on CPU, nccl on GPU) and mmengine's ``MMDistributedDataParallel``.

- Every rank trains the same path: rank 0's sampler draws it and broadcasts it
  (:class:`~mmseg_plugins.hooks.PathSamplingHook`); DPS rounds run on rank 0; sampler states
  are rank 0's in every checkpoint, and synced and checked identical at the end of training.
  DDP runs with ``find_unused_parameters=True``: the parameters off the path get no gradient,
  and DDP marks them ready instead of waiting for them (no hang, nothing all-reduced for them).
- BN statistics are per rank (``ElasticBatchNorm2d`` slices its buffers per path, which
  ``SyncBatchNorm`` cannot).
- Rank 0 writes checkpoints; every rank reports each validation to Ray Train
  (``ray.train.report``, the checkpoint from rank 0), which keeps them in the experiment's
  storage under ``<phase>/ddp/<trial_id>/``; ``TuneReportCallback`` forwards the metrics to
  the Tune trial, which reports the last checkpoint to Tune when training ends.
- A restarted trial restores Ray Train's run of the same name: the workers continue from its
  latest checkpoint, exactly. The number of workers may change across a resume (mmengine's
  resume loads the same state; the data order then differs from an uninterrupted run).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmengine.config import Config
from ray import train, tune

from raynas.tune.trial import Rows, TuneReportHook, build_runner, resume_from, staging_dir

__all__ = ["run_data_parallel"]


Final = Callable[[Any, TuneReportHook], dict[str, Any]]


def run_data_parallel(
    cfg: Config,
    rows: Rows,
    resources: dict[str, Any],
    storage: str,
    final: Final | None = None,
    weights: tuple[str, str] | None = None,
    logs_to: str | None = None,
) -> dict:
    """Trains ``cfg`` on ``resources['workers']`` data-parallel workers; returns the last
    reported metrics (the Tune trial has them, with the last checkpoint).

    Args:
        cfg: The trial's config (work dir, schedule and hooks set).
        rows: The archive rows of a validation.
        resources: ``workers``, ``cpu_per_worker``, ``gpu_per_worker``.
        storage: Where Ray Train keeps the run (the experiment's storage).
        final: Run on every rank after training (e.g. the test on val); its report is the
            trial's last.
        weights: ``(storage folder, file)`` of initial weights, fetched on each worker's node
            (``cfg.load_from`` may be a path of the driver's node only).
        logs_to: Where rank 0 copies its work folder at each checkpoint.
    """
    from ray.train.torch import TorchConfig, TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    gpu = float(resources.get("gpu_per_worker") or 0)
    cpu = float(resources.get("cpu_per_worker") or 1)
    per_worker = {"CPU": cpu, **({"GPU": gpu} if gpu else {})}
    trainer = TorchTrainer(
        _worker,
        train_loop_config=dict(cfg_text=cfg.pretty_text, rows=rows, threads=max(1, int(cpu)),
                               final=final, weights=weights, logs_to=logs_to),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo"),
        scaling_config=train.ScalingConfig(num_workers=int(resources["workers"]),
                                           use_gpu=bool(gpu), resources_per_worker=per_worker),
        run_config=train.RunConfig(name=tune.get_context().get_trial_id(), storage_path=storage,
                                   callbacks=[TuneReportCallback()]),
    )  # fmt: skip
    try:
        result = trainer.fit()
    finally:  # (a worker on another node leaves an empty one there)
        shutil.rmtree(staging_dir(cfg), ignore_errors=True)
    last = {k: v for k, v in (result.metrics or {}).items() if k != "archive_rows"}
    if result.checkpoint is not None:  # the final state, as a Tune checkpoint of the trial
        with result.checkpoint.as_directory() as d:
            tune.report({**last, "archive_rows": ""},
                        checkpoint=tune.Checkpoint.from_directory(d))  # fmt: skip
    return last


class _TrainReportHook(TuneReportHook):
    """Reports each validation to Ray Train from every rank; the checkpoint from rank 0."""

    def send(self, report: dict[str, Any], ckpt: Path | None) -> None:
        super().send(report, ckpt if train.get_context().get_world_rank() == 0 else None)

    def copy_logs(self) -> None:
        if train.get_context().get_world_rank() == 0:
            super().copy_logs()

    def report(self, report: dict[str, Any], checkpoint_dir: str | None) -> None:
        ckpt = train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        train.report(report, checkpoint=ckpt)


def _worker(config: dict[str, Any]) -> None:
    """One data-parallel rank: the trial's Runner on Ray Train's process group."""
    import torch
    from ray.train.torch import get_device

    import mmseg_plugins  # noqa: F401  (registers modules)
    from raynas.config import config_from_text

    torch.set_num_threads(config["threads"])
    cfg = config_from_text(config["cfg_text"])
    cfg.launcher = "pytorch"  # the process group exists: mmengine uses it as it is
    device = get_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)  # mmengine builds the model on the current device
    cfg.model_wrapper_cfg = dict(
        type="MMDistributedDataParallel",
        find_unused_parameters=True,
        device_ids=[device.index] if device.type == "cuda" else None,
    )
    Path(staging_dir(cfg)).mkdir(parents=True, exist_ok=True)  # on this worker's node
    checkpoint = train.get_checkpoint()
    if checkpoint is not None:  # a restored run: continue from its latest checkpoint
        resume_from(cfg, checkpoint, f"_rank{train.get_context().get_world_rank()}")
    elif config["weights"]:
        from raynas.tune.storage import Storage

        folder, name = config["weights"]
        cfg.load_from = str(Storage(folder).local_copy() / name)
    runner = build_runner(cfg)
    hook = _TrainReportHook(config["rows"], config["logs_to"])
    runner.register_hook(hook)
    runner.train()
    if config["final"] is not None:
        hook.finish(config["final"](runner, hook))
