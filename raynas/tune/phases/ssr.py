"""Phase 2, differentiable search with Solution Space Regularization
(``search=dict(type='ssr')``): one SSR search per Tune trial (``SSRHook`` on the mmengine Runner,
warm-started from the supernet phase's weights); ``param_space`` grids or samples SSR's options,
e.g. several FLOPs targets, each trial deriving one architecture. Every shrink step archives
the derived architecture (path ``ssr-step``, with entropies, candidates left, expected cost,
relaxed and derived mIoU); the final one is the trial's ``candidate``, and the candidates of
all trials go on to the Pareto selection and retraining with the trial's own weights."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import tune

from mmseg_plugins.checkpoint import CKPT_NAME
from raynas.config import space_and_table
from raynas.export import drop_supernet_training
from raynas.tune.options import trial_resources
from raynas.tune.param_space import grid_size, tune_spec
from raynas.tune.phases.base import TunePhase
from raynas.tune.storage import Storage
from raynas.tune.trial import (
    archive_row,
    prepare_runner_cfg,
    run_runner,
    scored_on,
    trial_config,
    trial_threads,
)

__all__ = ["SSRSearch", "search_ssr"]

_HOOK_ARGS = ("loss_weights", "target_flops", "cost_weight", "arch_optimizer", "grad_clip",
              "shrink_interval", "threshold", "warmup_iters", "seed", "cost",
              "target_latency_ms", "sample_k", "optimizer", "xnas_bound", "xnas_lr",
              "tolerance")  # fmt: skip


def ssr_hook(ssr: Mapping[str, Any], latency_table: str | None = None) -> dict[str, Any]:
    """The ``SSRHook`` config of resolved SSR options."""
    return dict(type="SSRHook", latency_table=latency_table, **{k: ssr[k] for k in _HOOK_ARGS})


def search_ssr(config: dict, cfg_text: str, opts: dict) -> None:
    """The trainable: one SSR search, from the supernet's weights to one architecture."""
    trial_threads()  # before naming the latency table: its CPU key includes torch's threads
    cfg = trial_config(cfg_text, config.get("cfg_options") or opts.get("cfg_options"))
    ssr = {**opts["ssr"], **(config.get("ssr") or {})}
    # the supernet phase's path-sampling strategy (and a CaLR schedule) gives way to SSR's
    # relaxed training, before the schedule is stretched to SSR's length
    drop_supernet_training(cfg)
    logs_to = prepare_runner_cfg(cfg, ssr["iters"], ssr["shrink_interval"], opts["storage"])
    work = Path(cfg.work_dir)
    size = tuple(cfg.model.data_preprocessor.size)
    lut = _latency_copy(opts["latency_cache"], work, size) if ssr["cost"] == "latency_ms" else None
    cfg.custom_hooks = [*cfg.custom_hooks, ssr_hook(ssr, lut and str(lut))]
    warm = ssr["warm_start"] and opts.get("supernet_checkpoint") and not cfg.get("resume")
    data_parallel = int(opts["resources"].get("workers", 1)) > 1
    if warm and not data_parallel:
        cfg.load_from = str(Storage(opts["supernet_checkpoint"]).local_copy() / CKPT_NAME)
    space, table = space_and_table(cfg)
    split = scored_on(cfg)

    def rows(runner: Any, metrics: Mapping[str, Any]) -> list[dict]:
        hook = next(h for h in runner.hooks if type(h).__name__ == "SSRHook")
        arch = hook.derive()
        final = hook.weights.decided or runner.iter >= ssr["iters"]
        proxies = dict(hook.summary(), iter=runner.iter, target_flops=ssr["target_flops"],
                       target_latency_ms=ssr["target_latency_ms"],
                       decided_at=hook.decided_at)  # fmt: skip
        latency = hook.latency.predict(arch) if hook.latency is not None else None
        if "strategy/relaxed_mIoU" in runner.message_hub.log_scalars:
            proxies["relaxed_mIoU"] = runner.message_hub.get_scalar(
                "strategy/relaxed_mIoU"
            ).current()
        return [archive_row(arch, "candidate" if final else "ssr-step", metrics.get("mIoU"),
                            table(arch), space, split, proxies=proxies,
                            latency_ms=latency)]  # fmt: skip

    if data_parallel:  # each worker fetches the supernet's weights on its own node
        from raynas.tune.data_parallel import run_data_parallel

        weights = (opts["supernet_checkpoint"], CKPT_NAME) if warm else None
        run_data_parallel(cfg, rows, opts["resources"], opts["ddp_storage"], weights=weights,
                          logs_to=logs_to)  # fmt: skip
    else:
        run_runner(cfg, rows, logs_to=logs_to)
    if lut is not None and lut.is_file():  # the entries this trial measured, for the others
        cache = Storage(opts["latency_cache"])
        cache.write_text(lut.read_text(), lut.name)


def _latency_copy(cache: str, work: Path, size: tuple[int, int]) -> Path:
    """A local copy of the experiment's latency table for this trial's device and input size
    (named as the sampling search names it); the hook reads and extends it."""
    import torch

    from mmseg_plugins.latency import table_file

    name = table_file("cuda" if torch.cuda.is_available() else "cpu", size)
    work.mkdir(parents=True, exist_ok=True)
    if Storage(cache).exists(name):
        (work / name).write_text(Storage(cache).read_text(name))
    return work / name


class SSRSearch(TunePhase):
    """SSR searches as Tune trials; their final architectures are the search's candidates."""

    name = "search"

    def trainable(self) -> Any:
        sup = self.pipeline.phase("supernet")
        trial_opts = dict(ssr=self.opts["ssr"], cfg_options=sup.get("cfg_options"),
                          supernet_checkpoint=sup.get("checkpoint"),
                          latency_cache=self.pipeline.storage.child("latency").uri,
                          storage=self.pipeline.storage.child(self.name).uri,
                          ddp_storage=self.pipeline.storage.child(self.name, "ddp").uri,
                          resources=self.opts["resources"])  # fmt: skip
        fn = tune.with_parameters(search_ssr, cfg_text=self.pipeline.cfg_text, opts=trial_opts)
        return tune.with_resources(fn, trial_resources(self.opts))

    def param_space(self) -> dict[str, Any]:
        return tune_spec(dict(self.opts["param_space"]))

    def total(self) -> int:
        return grid_size(self.param_space())

    def iters(self) -> int:
        return self.opts["ssr"]["iters"]

    def results(self, grid: Any) -> dict[str, Any]:
        """The trials' last checkpoints: each candidate is exported with its own trial's
        weights (``checkpoints[trial_id]``)."""
        return dict(
            evaluated=len(grid),
            feasible=len(grid),
            checkpoints={
                r.metrics["trial_id"]: self.pipeline.uri(r.checkpoint.path)
                for r in grid
                if r.checkpoint is not None
            },
        )
