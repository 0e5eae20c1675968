"""Phase 3, retraining: the top-k Pareto architectures of the search are exported as plain
mmseg subnets (``subnets/``) and trained with mmseg's standard training, one Tune trial each,
from inherited weights or from scratch."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ray import tune

from mmseg_plugins.checkpoint import CKPT_NAME
from raynas.tune.archive import Archive, encode_rows
from raynas.tune.factories import build_trial_scheduler
from raynas.tune.options import trial_resources
from raynas.tune.phases.base import TunePhase
from raynas.tune.storage import Storage
from raynas.tune.trial import prepare_runner_cfg, run_runner, scored_on, trial_config

__all__ = ["RetrainPhase", "retrain_subnet"]


def retrain_subnet(config: dict, opts: dict) -> None:
    """The trainable: standard mmseg training of one exported subnet."""
    from mmengine.analysis import parameter_count

    from raynas.core.arch_io import load_arch

    subnet = Storage(config["subnet_dir"]).local_copy()
    cfg = trial_config((subnet / "subnet.py").read_text(), config.get("cfg_options"))
    work = Path(tune.get_context().get_trial_dir()) / "work"
    prepare_runner_cfg(cfg, opts["iters"], opts["report_interval"], work)
    if opts.get("init", "inherit") == "inherit" and not cfg.get("resume"):
        cfg.load_from = str(subnet / "subnet.pth")
    arch = load_arch(subnet / "arch.yaml")
    name = Path(config["subnet_dir"]).name
    split = scored_on(cfg)

    def rows(runner: Any, metrics: Mapping[str, Any], on: str = split) -> list[dict]:
        params = parameter_count(runner.model)[""]
        flops = opts["flops"].get(name)
        return [dict(path=name, arch=arch, encoding=None, mIoU=metrics.get("mIoU"),
                     split=on, flops=flops, params=params)]  # fmt: skip

    runner, hook = run_runner(cfg, rows)
    if split == "selection":  # the validation set, read once, to report
        val = runner.test()
        tune.report({**hook.last, "val_mIoU": float(val["mIoU"]), "iter": runner.iter,
                     "archive_rows": encode_rows(rows(runner, val, "val"))})  # fmt: skip


class RetrainPhase(TunePhase):
    """Exports the top-k once (a resumed pipeline retrains the same ones), then trains them."""

    name = "retrain"

    def exports(self) -> list[dict[str, Any]]:
        state = self.pipeline.phase(self.name)
        if "exports" not in state:
            state["exports"] = self._export_top_k()
            self.pipeline.save()
        return state["exports"]

    def _export_top_k(self) -> list[dict[str, Any]]:
        from mmseg_plugins.bn_calib import train_calibration_loader
        from raynas.export import build_supernet, export_subnet, load_supernet_weights
        from raynas.report import select_top_k
        from raynas.tune import PipelineError

        pipeline, sup = self.pipeline, self.pipeline.phase("supernet")
        chosen = select_top_k(Archive(pipeline.storage).read("search").to_pandas(),
                              self.opts["top_k"])  # fmt: skip
        if chosen.empty:
            raise PipelineError(
                "search found no feasible architecture; relax "
                "tune_cfg.search.constraints or evaluate more candidates"
            )
        cfg = pipeline.cfg.copy()
        if sup.get("cfg_options"):
            cfg.merge_from_dict(sup["cfg_options"])
        model = build_supernet(cfg)
        ckpt = Storage(sup["checkpoint"]).local_copy() / CKPT_NAME
        load_supernet_weights(model, ckpt)
        loader = train_calibration_loader(cfg)
        exports = []
        for i, row in enumerate(chosen.itertuples()):
            name = f"subnet{i}"
            provenance = dict(search_trial=row.trial_id, search_mIoU=row.mIoU,
                              flops=int(row.flops))  # fmt: skip
            with tempfile.TemporaryDirectory() as tmp:
                export_subnet(cfg, ckpt, json.loads(row.arch), Path(tmp) / name, model=model,
                              calib_loader=loader, provenance=provenance)  # fmt: skip
                pipeline.storage.upload(Path(tmp) / name, "subnets", name)
            uri = pipeline.storage.child("subnets", name).uri
            exports.append(dict(name=name, dir=uri, arch=row.arch, search_mIoU=row.mIoU,
                                flops=int(row.flops)))  # fmt: skip
        return exports

    def trainable(self) -> Any:
        o = self.opts
        trial_opts = dict(
            iters=o["iters"], report_interval=o["report_interval"], init=o["init"],
            flops={e["name"]: e["flops"] for e in self.exports()},
        )  # fmt: skip
        fn = tune.with_parameters(retrain_subnet, opts=trial_opts)
        return tune.with_resources(fn, trial_resources(o))

    def param_space(self) -> dict[str, Any]:
        return {"subnet_dir": tune.grid_search([e["dir"] for e in self.exports()])}

    def total(self) -> int:
        return len(self.exports())

    def iters(self) -> int:
        return self.opts["iters"]

    def tune_config(self) -> dict[str, Any]:
        return dict(super().tune_config(), scheduler=build_trial_scheduler(self.opts["scheduler"]))

    def results(self, grid: Any) -> dict[str, Any]:
        best = grid.get_best_result(metric="mIoU", mode="max", scope="last")
        name = Path(best.config["subnet_dir"]).name
        flops = next(e["flops"] for e in self.exports() if e["name"] == name)
        return dict(
            best=dict(
                name=name,
                mIoU=best.metrics.get("val_mIoU", best.metrics["mIoU"]),
                selection_mIoU=best.metrics["mIoU"],
                flops=flops,
                subnet_dir=best.config["subnet_dir"],
                checkpoint=self.pipeline.uri(best.checkpoint.path),
            )
        )
