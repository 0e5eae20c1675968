"""Phase 3, retraining: the top-k Pareto architectures of the search are exported as plain
mmseg subnets (``subnets/``) and trained with mmseg's standard training, one Tune trial each,
from inherited weights or from scratch. The baselines of ``tune_cfg.report.baselines``
(mmseg's hand-designed models, :mod:`raynas.baselines`) train beside them from scratch with the
same config and schedule; their archive rows are named ``baseline:NAME`` and they are never
chosen as the best model."""

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
from raynas.tune.halving import budget
from raynas.tune.options import trial_resources
from raynas.tune.phases.base import TunePhase
from raynas.tune.storage import Storage
from raynas.tune.trial import prepare_runner_cfg, run_runner, scored_on, trial_config

__all__ = ["BASELINE_PREFIX", "HALVING_STATE", "RetrainPhase", "retrain_subnet"]

BASELINE_PREFIX = "baseline:"
HALVING_STATE = "halving.json"  # in the phase's folder: successive halving's decisions


def is_candidate(trial: Any) -> bool:
    """A found subnet's trial (not a baseline's): what successive halving compares."""
    return not Path(trial.config["subnet_dir"]).name.startswith("baseline-")


class _StateFile:
    """Successive halving's state in the experiment's storage (picklable)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def write(self, text: str) -> None:
        Storage(self.uri).write_text(text, HALVING_STATE)

    def read(self) -> str | None:
        folder = Storage(self.uri)
        return folder.read_text(HALVING_STATE) if folder.exists(HALVING_STATE) else None


def retrain_subnet(config: dict, opts: dict) -> None:
    """The trainable: standard mmseg training of one exported subnet."""
    from mmengine.analysis import parameter_count

    from raynas.core.arch_io import load_arch

    subnet = Storage(config["subnet_dir"]).local_copy()
    cfg = trial_config((subnet / "subnet.py").read_text(), config.get("cfg_options"))
    logs_to = prepare_runner_cfg(cfg, opts["iters"], opts["report_interval"], opts["storage"],
                                 opts.get("amp"))  # fmt: skip
    name = Path(config["subnet_dir"]).name
    flops = opts["flops"].get(name)
    baseline = not (subnet / "arch.yaml").is_file()
    inherit = opts.get("init", "inherit") == "inherit" and not baseline
    if inherit and not cfg.get("resume"):
        cfg.load_from = str(subnet / "subnet.pth")
    arch = {} if baseline else load_arch(subnet / "arch.yaml")
    name = f"{BASELINE_PREFIX}{name.removeprefix('baseline-')}" if baseline else name
    split = scored_on(cfg)

    def rows(runner: Any, metrics: Mapping[str, Any], on: str = split) -> list[dict]:
        params = parameter_count(runner.model)[""]
        return [dict(path=name, arch=arch, encoding=None, mIoU=metrics.get("mIoU"),
                     split=on, flops=flops, params=params)]  # fmt: skip

    def test(runner: Any, hook: Any) -> dict[str, Any]:  # the validation set, read once
        val = runner.test()
        return {**hook.last, "val_mIoU": float(val["mIoU"]), "iter": runner.iter,
                "archive_rows": encode_rows(rows(runner, val, "val"))}  # fmt: skip

    final = test if split == "selection" else None
    if int(opts["resources"].get("workers", 1)) > 1:
        from raynas.tune.data_parallel import run_data_parallel

        weights = (config["subnet_dir"], "subnet.pth") if inherit else None
        if weights:
            cfg.load_from = None  # each worker fetches it on its own node
        run_data_parallel(cfg, rows, opts["resources"], opts["ddp_storage"], final, weights,
                          logs_to)  # fmt: skip
        return
    runner, hook = run_runner(cfg, rows, opts["resources"].get("threads", "auto"), logs_to)
    if final is not None:
        hook.finish(final(runner, hook))


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
        from raynas.report import select_best_k, select_top_k
        from raynas.tune import PipelineError

        pipeline, sup = self.pipeline, self.pipeline.phase("supernet")
        ranked, k = self._ranked(), self.opts["top_k"]
        chosen = select_best_k(ranked, k) if self.halving() else select_top_k(ranked, k)
        if chosen.empty:
            raise PipelineError(
                "search found no feasible architecture; relax "
                "tune_cfg.search.constraints or evaluate more candidates"
            )
        cfg = pipeline.cfg.copy()
        if sup.get("cfg_options"):
            cfg.merge_from_dict(sup["cfg_options"])
        model, loaded = build_supernet(cfg), None
        # SSR trials train their own weights; sampling-search candidates share the supernet's
        own = pipeline.phase("search").get("checkpoints") or {}
        loader = train_calibration_loader(cfg)
        exports = []
        for i, row in enumerate(chosen.itertuples()):
            ckpt = Storage(own.get(row.trial_id, sup["checkpoint"])).local_copy() / CKPT_NAME
            if ckpt != loaded:
                load_supernet_weights(model, ckpt)
                loaded = ckpt
            name = f"subnet{i}"
            provenance = dict(search_trial=row.trial_id, search_mIoU=row.search_mIoU,
                              flops=int(row.flops))  # fmt: skip
            if row.tse == row.tse:
                provenance["tse"] = float(row.tse)
            with tempfile.TemporaryDirectory() as tmp:
                export_subnet(cfg, ckpt, json.loads(row.arch), Path(tmp) / name, model=model,
                              calib_loader=loader, provenance=provenance)  # fmt: skip
                pipeline.storage.upload(Path(tmp) / name, "subnets", name)
            uri = pipeline.storage.child("subnets", name).uri
            exports.append(dict(name=name, dir=uri, arch=row.arch, search_mIoU=row.search_mIoU,
                                flops=int(row.flops)))  # fmt: skip
        return exports + self._export_baselines(exports[0]["dir"])

    def _ranked(self) -> Any:
        """The search's rows, ranked (column ``mIoU``) by inherited mIoU, or by the TSE phase's
        score when it scored the best candidates (``mIoU`` = the fine-tuned mIoU, or -TSE;
        ``search_mIoU`` kept)."""
        import pandas as pd

        frame = Archive(self.pipeline.storage).read("search").to_pandas()
        frame = frame[frame["path"] == "candidate"]  # not SSR's intermediate steps
        frame = frame.assign(search_mIoU=frame["mIoU"], tse=float("nan"))
        scores = self.pipeline.phase("tse").get("scores")
        if scores:
            frame = pd.DataFrame(scores).rename(columns={"mIoU": "search_mIoU"})
            score = frame["finetune_mIoU"] if "finetune_mIoU" in frame else -frame["tse"]
            frame = frame.assign(mIoU=score, feasible=True)
        return frame.assign(function=self._functions(frame["arch"]))

    def _functions(self, archs: Any) -> Any:
        """The key of the network each arch computes (degenerate dilations folded)."""
        from raynas.core.seg_space import BackboneSettings, functional_arch

        model = self.pipeline.cfg.model
        settings = BackboneSettings.from_cfg(model.backbone.get("arch_settings"))
        size = tuple(model.data_preprocessor.size)
        return archs.map(lambda a: json.dumps(functional_arch(json.loads(a), settings, size),
                                              sort_keys=True))  # fmt: skip

    def _export_baselines(self, subnet_uri: str) -> list[dict[str, Any]]:
        """``subnets/baseline-NAME/subnet.py``: each baseline in subnet0's training config."""
        from raynas.baselines import baseline_config, model_cost
        from raynas.config import formatted_text, load_config

        pipeline, out = self.pipeline, []
        subnet_cfg = load_config(Storage(subnet_uri).local_copy() / "subnet.py")
        size = tuple(subnet_cfg.model.data_preprocessor.size)
        for base in pipeline.opts["report"]["baselines"]:
            cfg, name = baseline_config(base, subnet_cfg), f"baseline-{Path(base).stem}"
            with tempfile.TemporaryDirectory() as tmp:
                (Path(tmp) / name).mkdir()
                (Path(tmp) / name / "subnet.py").write_text(formatted_text(cfg))
                pipeline.storage.upload(Path(tmp) / name, "subnets", name)
            flops = int(model_cost(cfg.model, size, runs=1)["flops"])
            out.append(dict(name=name, dir=pipeline.storage.child("subnets", name).uri,
                            baseline=base, flops=flops))  # fmt: skip
        return out

    def trainable(self) -> Any:
        o = self.opts
        trial_opts = dict(
            iters=o["iters"], report_interval=o["report_interval"], init=o["init"],
            flops={e["name"]: e["flops"] for e in self.exports()}, resources=o["resources"],
            storage=self.pipeline.storage.child(self.name).uri,
            ddp_storage=self.pipeline.storage.child(self.name, "ddp").uri,
        )  # fmt: skip
        fn = tune.with_parameters(retrain_subnet, opts=trial_opts)
        return tune.with_resources(fn, trial_resources(o))

    def param_space(self) -> dict[str, Any]:
        return {"subnet_dir": tune.grid_search([e["dir"] for e in self.exports()])}

    def halving(self) -> bool:
        """Whether the top-k are retrained under successive halving."""
        return (self.opts.get("scheduler") or {}).get("type") == "successive_halving"

    def tune_config(self) -> dict[str, Any]:
        """Successive halving keeps its decisions in ``retrain/halving.json`` and takes them
        up when an interrupted run is restored (Tune restores no scheduler state)."""
        config = super().tune_config()
        if self.halving():
            folder = self.pipeline.storage.child(self.name)
            sched = build_trial_scheduler(
                self.opts["scheduler"], max_t=self._reports(), store=_StateFile(folder.uri),
                only=is_candidate, trials=sum(not e.get("baseline") for e in self.exports()),
                max_running=config.pop("max_concurrent_trials"),
            )  # fmt: skip
            config["scheduler"] = sched
        return config

    def _reports(self) -> int:
        return self.opts["iters"] // self.opts["report_interval"]

    def total(self) -> int:
        return len(self.exports())

    def iters(self) -> int:
        return self.opts["iters"]

    def budget(self) -> int | None:
        """Under successive halving, the iterations its plan trains (baselines in full)."""
        if not self.halving():
            return None
        plan, found = self._plan(), sum(not e.get("baseline") for e in self.exports())
        reports = budget(found, plan.max_t, plan.eta, plan.grace)[0]
        baselines = (self.total() - found) * self.opts["iters"]
        return reports * self.opts["report_interval"] + baselines

    def _plan(self) -> Any:
        """The successive-halving scheduler of the options, without state: its rungs and eta."""
        return build_trial_scheduler(self.opts["scheduler"], max_t=self._reports())

    def results(self, grid: Any) -> dict[str, Any]:
        found = [r for r in grid if r.metrics and "mIoU" in r.metrics
                 and not Path(r.config["subnet_dir"]).name.startswith("baseline-")]  # fmt: skip
        full = [r for r in found if r.metrics.get("iter") == self.opts["iters"]]
        best = max(full or found, key=lambda r: r.metrics["mIoU"])  # last report, selection
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
            ),
            **({"halving": self._halving_summary(grid)} if self.halving() else {}),
        )

    def _halving_summary(self, grid: Any) -> dict[str, Any]:
        """Every candidate's selection mIoU at each report, the rungs, the iterations it
        trained, and the pick of the search's order alone (the first export)."""
        iters = self.opts["report_interval"]
        scores = {}
        for r in grid:
            name = Path(r.config["subnet_dir"]).name
            if name.startswith("baseline-") or r.metrics_dataframe is None:
                continue
            frame = r.metrics_dataframe.dropna(subset=["mIoU"]).drop_duplicates("iter")
            pairs = zip(frame["iter"], frame["mIoU"], strict=True)
            scores[name] = {int(i): float(m) for i, m in pairs}
        sched = self._plan()
        return dict(rungs=[r * iters for r in sched.rungs], eta=sched.eta,
                    scores=scores, search_pick=self.exports()[0]["name"],
                    budget_iters=sum(max(v) for v in scores.values() if v))  # fmt: skip
