"""Phase 1, supernet training: the mmengine Runner with the config's path-sampling strategy in
each trial; ``param_space`` can grid or sample ``cfg_options`` (strategy, seed, lr)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ray import tune

from raynas.config import space_and_table
from raynas.tune.options import trial_resources
from raynas.tune.param_space import grid_size, tune_spec
from raynas.tune.phases.base import TunePhase
from raynas.tune.trial import (
    archive_row,
    prepare_runner_cfg,
    run_runner,
    scored_on,
    trial_config,
)

__all__ = ["SupernetPhase", "train_supernet"]


def train_supernet(config: dict, cfg_text: str, opts: dict) -> None:
    """The trainable: supernet training, validating the largest and smallest paths."""
    cfg = trial_config(cfg_text, config.get("cfg_options"))
    logs_to = prepare_runner_cfg(cfg, opts["iters"], opts["report_interval"], opts["storage"],
                                 opts.get("amp"))  # fmt: skip
    space, table = space_and_table(cfg)
    paths = {"largest": space.extreme(True), "smallest": space.extreme(False)}
    split = scored_on(cfg)

    def rows(runner: Any, metrics: Mapping[str, Any]) -> list[dict]:
        return [
            archive_row(arch, name, metrics.get(f"{name}/mIoU"), table(arch), space, split)
            for name, arch in paths.items()
            if f"{name}/mIoU" in metrics
        ]

    if int(opts["resources"].get("workers", 1)) > 1:
        from raynas.tune.data_parallel import run_data_parallel

        run_data_parallel(cfg, rows, opts["resources"], opts["ddp_storage"], logs_to=logs_to)
    else:
        run_runner(cfg, rows, opts["resources"].get("threads", "auto"), logs_to)


class SupernetPhase(TunePhase):
    """Trains the supernet(s); the best trial's last checkpoint goes on to the search."""

    name = "supernet"

    def trainable(self) -> Any:
        fn = tune.with_parameters(
            train_supernet,
            cfg_text=self.pipeline.cfg_text,
            opts=dict(
                iters=self.opts["iters"],
                report_interval=self.opts["report_interval"],
                resources=self.opts["resources"],
                storage=self.pipeline.storage.child(self.name).uri,
                ddp_storage=self.pipeline.storage.child(self.name, "ddp").uri,
            ),
        )
        return tune.with_resources(fn, trial_resources(self.opts))

    def param_space(self) -> dict[str, Any]:
        return tune_spec(dict(self.opts["param_space"]))

    def total(self) -> int:
        return self.opts["num_samples"] * grid_size(self.param_space())

    def iters(self) -> int:
        return self.opts["iters"]

    def tune_config(self) -> dict[str, Any]:
        return dict(
            super().tune_config(),
            num_samples=self.opts["num_samples"],
        )

    def results(self, grid: Any) -> dict[str, Any]:
        best = grid.get_best_result(metric="mIoU", mode="max", scope="last")
        return dict(
            checkpoint=self.pipeline.uri(best.checkpoint.path),
            trial_id=best.metrics["trial_id"],
            mIoU=best.metrics["mIoU"],
            cfg_options=best.config.get("cfg_options"),
        )
