"""What every Tune trial of raynas shares: its config, threads and lifeline, and running the
mmengine Runner inside a trial (report + checkpoint at each validation, resume from Tune's
checkpoint)."""

from __future__ import annotations

import logging
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
from mmengine.hooks import CheckpointHook, Hook
from ray import tune

from mmseg_plugins.checkpoint import CKPT_NAME
from mmseg_plugins.hooks.lr_from_config import lr_state
from raynas.config import mixed_precision
from raynas.tune.archive import encode_rows
from raynas.tune.lifeline import exit_with_parent
from raynas.tune.storage import Storage

__all__ = ["Rows", "TuneReportHook", "archive_row", "build_runner", "drop_harmless",
           "prepare_runner_cfg",
           "resume_from", "run_runner", "scale_schedule", "scored_on", "staging_dir",
           "staging_dirs_of", "trial_config", "trial_threads"]  # fmt: skip

Rows = Callable[[Any, Mapping[str, Any]], list[dict]]
_RESUME = "resume_from"  # the name (prefix) of a restored trial's starting checkpoint
_STAGING = "raynas-"  # + trial id: a trial's temporary checkpoint folders
# mmengine 0.10 warns of these in every training run, whatever the config says
_HARMLESS = (
    '"FileClient" will be deprecated',
    '"HardDiskBackend" is the alias',
    "The prefix is not set in metric class",
)


class _DropHarmless(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(_HARMLESS)


def drop_harmless(logger: logging.Logger) -> None:
    """Keeps mmengine's known-harmless warnings off ``logger``'s console (not its files)."""
    for handler in logger.handlers:
        if not isinstance(handler, logging.FileHandler):
            handler.addFilter(_DropHarmless())


def trial_config(cfg_text: str, options: Mapping[str, Any] | None) -> Config:
    """The experiment's frozen config with the trial's ``cfg_options``."""
    import mmseg_plugins  # noqa: F401  (registers modules, safe checkpoint loading)
    from raynas.config import config_from_text

    return config_from_text(cfg_text, dict(options or {}))


def trial_threads() -> None:
    """Sizes torch's thread pool to the trial's CPUs; the process ends with its raylet; Ray
    Train's per-checkpoint INFO line stays out of the console."""
    exit_with_parent()
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def _scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, numbers.Real)}


def _strategy_metrics(runner: Any) -> dict[str, float]:
    """The path-sampling strategy's latest scalars (``strategy/...``), e.g. the DPS stage."""
    return {
        k: float(v.current())
        for k, v in runner.message_hub.log_scalars.items()
        if k.startswith("strategy/")
    }


class TuneReportHook(Hook):
    """After each validation: ``tune.report`` the metrics, archive rows and the checkpoint.

    Injected by the training trainables (not registered): it needs a Tune session.
    """

    priority = "LOWEST"

    def __init__(self, rows: Rows, logs_to: str | None = None) -> None:
        self.rows = rows
        self.logs_to = logs_to
        self.work_dir = ""
        self.start = time.perf_counter()
        self.last: dict[str, float] = {}

    def before_train(self, runner: Any) -> None:
        self.work_dir = runner.work_dir
        loaded = Path(runner.cfg.get("load_from") or "")
        if loaded.name.startswith(_RESUME) and loaded.is_file():  # Tune keeps the original
            loaded.unlink()

    def after_val_epoch(self, runner: Any, metrics: Mapping[str, Any] | None = None) -> None:
        metrics = dict(metrics or {})
        saved_in = next(h.out_dir for h in runner.hooks if isinstance(h, CheckpointHook))
        ckpt = Path(saved_in) / f"iter_{runner.iter}.pth"
        report = {
            **_scalar_metrics(metrics),
            **_strategy_metrics(runner),
            **lr_state(runner),
            "iter": runner.iter,
            "compute_s": time.perf_counter() - self.start,
            "compute_end": time.time(),
            "node_id": _node_id(),  # which Ray node ran it (a string: loggers skip it)
            "workers": runner.world_size,  # data-parallel ranks
            "archive_rows": encode_rows(self.rows(runner, metrics)),
        }
        self.last = _scalar_metrics(metrics)
        self.send(report, ckpt if ckpt.is_file() else None)

    def copy_logs(self) -> None:
        """Copies the work folder (logs, scalars) to ``logs_to``, if given."""
        if self.logs_to:
            Storage(self.logs_to).upload(self.work_dir)

    def send(self, report: dict[str, Any], ckpt: Path | None) -> None:
        """Reports, with the mmengine checkpoint ``ckpt`` when there is one (the logs copied
        first; the file removed after: the reported copy is the one kept)."""
        if ckpt is None:
            self.report(report, None)
            return
        self.copy_logs()
        with tempfile.TemporaryDirectory() as d:
            _place(ckpt, Path(d) / CKPT_NAME)
            self.report(report, d)
        ckpt.unlink()

    def finish(self, report: dict[str, Any]) -> None:
        """Reports a result after training (no checkpoint), the work folder's last log lines
        copied first."""
        self.copy_logs()
        self.report(report, None)

    def report(self, report: dict[str, Any], checkpoint_dir: str | None) -> None:
        """``tune.report``, with the checkpoint in ``checkpoint_dir`` if given."""
        ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(report, checkpoint=ckpt)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _place(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem
        shutil.copy(src, dst)


def staging_dir(cfg: Config) -> str:
    """Where a trial's mmengine checkpoints wait until Tune holds them (see
    :func:`prepare_runner_cfg`)."""
    return cfg.default_hooks.checkpoint.out_dir


def prepare_runner_cfg(
    cfg: Config, iters: int, interval: int, storage: str, amp: str | None = None
) -> str:
    """Schedule, validation and checkpoints every ``interval``; resume from Tune's checkpoint,
    exactly (global RNG states restored after the data-loader replay).

    mmengine's work folder (logs, scalars) is ``work/`` in the trial's folder; it is copied
    into the trial's folder in the experiment's ``storage`` before each checkpoint is reported,
    from whichever node runs the trial. mmengine's checkpoints (and a resumed trial's starting
    one) go to a temporary folder instead, each removed once Tune holds it, so the experiment
    folder stores each checkpoint once; :func:`run_runner` removes that folder (and the next
    run of a killed trial, the one it left).

    Args:
        cfg: The trial's config.
        iters: Training iterations.
        interval: Iterations between validations, reports and checkpoints.
        storage: The phase's folder in the experiment's storage (a path or URI).
        amp: Mixed precision, ``'bf16'`` or ``'fp16'`` (:func:`raynas.config.mixed_precision`).

    Returns:
        Where the work folder is copied (give it to :func:`run_runner`).
    """
    trial_dir = Path(tune.get_context().get_trial_dir())
    cfg.work_dir = str(trial_dir / "work")
    cfg.log_level = "WARNING"  # while the Runner is built; then INFO to the file (run_runner)
    scale_schedule(cfg, iters)
    mixed_precision(cfg, amp)
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = interval
    if cfg.train_cfg.get("type", "IterBasedTrainLoop") == "IterBasedTrainLoop":
        cfg.train_cfg.type = "ExactResumeTrainLoop"  # a resumed trial continues exactly
    cfg.default_hooks.setdefault("rng_state", dict(type="RNGStateHook"))
    # a PBT exploit resumes the donor's checkpoint: the mutated lr must be the one in force
    cfg.default_hooks.setdefault("lr_from_config", dict(type="LRFromConfigHook"))
    # faster training steps on CPU (experiments/step_speed/); devices=[] turns it off
    cfg.default_hooks.setdefault("memory_format", dict(type="ChannelsLastHook"))
    staging = _new_staging_dir()
    checkpoint = tune.get_checkpoint()
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=interval,
                                        max_keep_ckpts=1, save_last=True,
                                        out_dir=staging)  # fmt: skip
    if checkpoint is not None:  # continue from the last reported checkpoint
        resume_from(cfg, checkpoint)
    return Storage(storage).child(trial_dir.name, "work").uri


def resume_from(cfg: Config, checkpoint: Any, tag: str = "") -> None:
    """Makes ``cfg`` resume from a Tune or Ray Train ``checkpoint``, copied into the trial's
    staging folder (:func:`staging_dir`) as ``resume_from{tag}.pth``; the copy is removed once
    training starts (:class:`TuneReportHook`)."""
    local = Path(staging_dir(cfg)) / f"{_RESUME}{tag}.pth"
    with checkpoint.as_directory() as d:
        shutil.copy(Path(d) / CKPT_NAME, local)
    cfg.load_from, cfg.resume = str(local), True


def staging_dirs_of(trial_id: str) -> list[Path]:
    """The temporary checkpoint folders of trial ``trial_id`` on this node."""
    return sorted(Path(tempfile.gettempdir()).glob(f"{_STAGING}{trial_id}-*"))


def _new_staging_dir() -> str:
    """A temporary folder for the trial's mmengine checkpoints, after removing those that
    earlier runs of the same trial, killed, left on this node (a data-parallel trial restarts
    from Ray Train's checkpoint, with no Tune checkpoint to tell that it was restored)."""
    trial_id = tune.get_context().get_trial_id()
    for stale in staging_dirs_of(trial_id):
        shutil.rmtree(stale, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_STAGING}{trial_id}-")


def scored_on(cfg: Config) -> str:
    """What a trial's validation reads: ``'selection'`` (carved from training) or ``'val'``."""
    return "selection" if (cfg.get("selection_split") or {}).get("applied") else "val"


def scale_schedule(cfg: Config, iters: int) -> None:
    """Stretches the config's schedule to ``iters``: schedulers that ran to the config's end
    now run to ``iters``; shorter ones (a warm-up) keep their length, within ``iters``."""
    total = cfg.train_cfg.max_iters
    for sched in cfg.get("param_scheduler") or []:
        if sched.get("end") is None or sched["end"] >= total:
            sched["end"] = iters
        sched["end"] = min(sched["end"], iters)
        sched["begin"] = min(sched.get("begin", 0), sched["end"] - 1)


def run_runner(
    cfg: Config, rows: Rows, threads: int | str | None = None, logs_to: str | None = None
) -> tuple[Any, TuneReportHook]:
    """Trains with the mmengine Runner, reporting to Tune at each validation; returns the
    runner and its report hook.

    mmengine's INFO log (loss lines) goes to the trial's log file in its work dir; the console
    (which Ray forwards to the driver from every trial) gets warnings only.

    Args:
        cfg: The trial's config.
        rows: Archive rows of a validation's metrics.
        threads: torch's CPU threads: a count; ``'auto'``: 1 or the trial's CPUs, whichever
            trains the model faster (:func:`mmseg_plugins.threads.fastest_threads`); None: the
            trial's CPUs.
        logs_to: Where to copy the work folder at each checkpoint (see
            :func:`prepare_runner_cfg`).
    """
    trial_threads()
    try:
        runner = build_runner(cfg)
        size_threads(runner, threads)
        hook = TuneReportHook(rows, logs_to)
        runner.register_hook(hook)
        runner.train()
    finally:
        shutil.rmtree(staging_dir(cfg), ignore_errors=True)
    return runner, hook


def size_threads(runner: Any, threads: int | str | None) -> None:
    """Applies ``threads`` (see :func:`run_runner`) to a CPU trial, logging a measured choice."""
    cpus = torch.get_num_threads()
    if threads is None:
        return
    if threads != "auto":
        torch.set_num_threads(int(threads))
        return
    size = getattr(runner.model.data_preprocessor, "size", None)
    if cpus < 2 or torch.cuda.is_available() or not size:
        return
    from mmseg_plugins.hooks import ChannelsLastHook
    from mmseg_plugins.threads import fastest_threads

    for hook in runner.hooks:  # the probe times the memory format that training will use
        if isinstance(hook, ChannelsLastHook):
            hook.before_run(runner)

    batch = runner.cfg.train_dataloader.batch_size
    best, times = fastest_threads(runner.model, batch, size, (1, cpus))
    shown = ", ".join(f"{n} threads {t:.3f} s" for n, t in times.items())
    runner.logger.info(f"training step measured at {shown}: training on {best}")


def build_runner(cfg: Config) -> Any:
    """The mmengine Runner of a trial: INFO to its log file, warnings only to the console."""
    from mmengine.runner import Runner

    runner = Runner.from_cfg(cfg)
    runner.logger.setLevel(logging.INFO)
    for handler in runner.logger.handlers:
        if isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.INFO)
    drop_harmless(runner.logger)
    return runner


def archive_row(
    arch: Mapping[str, Any],
    path: str,
    miou: float | None,
    cost: Any,
    space: Any,
    split: str,
    **extra: Any,
) -> dict:
    """An archive row of an evaluated path (``split``: what ``miou`` was measured on)."""
    return dict(
        split=split,
        path=path,
        arch=dict(arch),
        encoding=space.encode(arch).tolist(),
        mIoU=miou,
        flops=cost.flops,
        params=cost.params,
        **extra,
    )
