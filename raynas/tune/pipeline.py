"""The supernet -> search -> retrain -> report pipeline on Ray Tune, resumable at any point.

The experiment folder (local path or URI) holds ``config.py`` (the frozen config),
``pipeline.json`` (which phases are done and what they produced: the pipeline's own state,
never the TrialScheduler's), one Tune experiment per phase (``supernet/``, ``search/``,
``retrain/``), the Parquet ``archive/``, the exported ``subnets/``, ``report/`` and ``best/``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from raynas.config import config_from_text, space_and_table
from raynas.core.errors import (
    ExistingOutputError,
    MissingInputError,
    UnknownKeyError,
    closest,
)
from raynas.tune import PipelineError, PipelineInterrupted
from raynas.tune.archive import Archive, decode_rows
from raynas.tune.checks import (
    PHASES,
    STATE,
    STATE_VERSION,
    check_address,
    check_datasets,
    check_factories,
    check_feasible,
    check_supernet,
    read_state,
)
from raynas.tune.options import ray_init_kwargs, resolve_tune_cfg, trial_resources
from raynas.tune.param_space import grid_size, tune_spec
from raynas.tune.storage import Storage

__all__ = ["PHASES", "Pipeline", "PipelineError", "check_address", "ray_init_kwargs"]

CONFIG = "config.py"


class Pipeline:
    """A pipeline experiment; create with :meth:`create`, continue with ``Pipeline(uri)``."""

    def __init__(self, experiment: str | os.PathLike | Storage) -> None:
        self.storage = experiment if isinstance(experiment, Storage) else Storage(experiment)
        for name in (STATE, CONFIG):
            if not self.storage.exists(name):
                raise MissingInputError(
                    f"{self.storage.uri} is not a raynas experiment "
                    f"(no {name}); start one with `raynas run CONFIG`"
                )
        self.state = read_state(self.storage)
        self.cfg_text = self.storage.read_text(CONFIG)
        self.cfg = config_from_text(self.cfg_text)
        self.opts = resolve_tune_cfg(self.cfg.get("tune_cfg"))

    @classmethod
    def create(
        cls, config: str | os.PathLike, storage: str, name: str, cfg_options: dict | None = None
    ) -> Pipeline:
        """Validates a config and starts a new experiment folder ``storage/name``.

        Raises:
            FileExistsError: The experiment exists (nothing is overwritten).
            KeyError, ValueError, FileNotFoundError: Bad config or missing dataset.
        """
        from raynas.config import load_config

        cfg = load_config(config, cfg_options)
        opts = resolve_tune_cfg(cfg.get("tune_cfg"))
        check_supernet(cfg)
        exp = Storage(storage).child(name)
        if exp.exists(STATE):
            raise ExistingOutputError(
                f"experiment {exp.uri} exists; continue it with `raynas resume "
                f"{exp.uri}` or choose another --name"
            )
        check_factories(opts)
        check_feasible(cfg, opts["search"]["constraints"])
        check_datasets(cfg)
        exp.write_text(cfg.pretty_text, CONFIG)
        state = {"version": STATE_VERSION, "source": str(config), "created": time.time()}
        exp.write_text(json.dumps({**state, "phases": {}}, indent=2), STATE)
        return cls(exp)

    # ---- state -------------------------------------------------------------------------
    def phase(self, name: str) -> dict[str, Any]:
        return self.state["phases"].setdefault(name, {})

    def _save(self) -> None:
        self.storage.write_text(json.dumps(self.state, indent=2), STATE)

    def done(self, name: str) -> bool:
        return bool(self.state["phases"].get(name, {}).get("done"))

    # ---- running -----------------------------------------------------------------------
    def run(self, address: str | None = None, until: str | None = None) -> dict[str, Any]:
        """Runs every phase not done yet (up to and including ``until``); returns the state."""
        if until is not None and until not in PHASES:
            raise UnknownKeyError(
                f"unknown phase {until!r}{closest(until, PHASES)}; phases: {list(PHASES)}"
            )
        self._init_ray(address)
        for name in PHASES[: PHASES.index(until) + 1 if until else None]:
            if self.done(name):
                print(f"[raynas] {name}: done earlier, skipped", flush=True)
                continue
            print(f"[raynas] {name}: starting", flush=True)
            start = time.time()
            result = getattr(self, f"_run_{name}")()
            self.phase(name).update(
                result, done=True, wall_s=time.time() - start + self.phase(name).get("wall_s", 0)
            )
            self._save()
            print(f"[raynas] {name}: done in {time.time() - start:.0f} s", flush=True)
        return self.state

    def _init_ray(self, address: str | None) -> None:
        import ray

        if ray.is_initialized():
            return
        os.environ.setdefault("RAY_CHDIR_TO_TRIAL_DIR", "0")
        os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "0")
        check_address(address)
        from raynas.tune.lifeline import reap_when_gone, terminate_gracefully

        ray.init(**ray_init_kwargs(self.opts["ray"], address, os.environ))
        if not address:  # a local Ray instance: it dies with this driver
            reap_when_gone()
        terminate_gracefully(ray.shutdown)

    def _tune(
        self,
        phase: str,
        trainable: Any,
        param_space: dict,
        total: int,
        iters: int | None = None,
        **tune_config: Any,
    ) -> Any:
        from ray import tune

        from raynas.tune.callbacks import ArchiveCallback, ProgressCallback

        uri = self.storage.child(phase).uri
        if tune.Tuner.can_restore(uri):
            print(f"[raynas] {phase}: restoring the interrupted Tune experiment {uri}", flush=True)
            tuner = tune.Tuner.restore(
                uri, trainable=trainable, resume_unfinished=True, resume_errored=True
            )
        else:
            run_config = tune.RunConfig(
                name=phase,
                storage_path=self.storage.uri,
                verbose=0,
                callbacks=[
                    ArchiveCallback(self.storage.uri, phase),
                    ProgressCallback(phase, total, iters),
                ],
                failure_config=tune.FailureConfig(max_failures=1),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            )
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                run_config=run_config,
                tune_config=tune.TuneConfig(**tune_config),
            )
        grid = tuner.fit()
        errors = [r.error for r in grid if r.error]
        unfinished = sum(1 for r in grid if not r.error and not r.metrics.get("done"))
        if not errors and (unfinished or len(grid) < total):  # Tune returns after Ctrl-C
            raise PipelineInterrupted(
                f"{phase}: interrupted with {unfinished + total - len(grid)} of {total} "
                f"trial(s) unfinished; `raynas resume {self.storage.uri}` continues from the "
                "last checkpoints"
            )
        if errors:
            raise PipelineError(
                f"{phase}: {len(errors)} trial(s) failed; first error: "
                f"{errors[0]}. Fix the cause, then `raynas resume "
                f"{self.storage.uri}` continues from the last checkpoints."
            )
        self._backfill(phase, grid)
        return grid

    def _backfill(self, phase: str, grid: Any) -> None:
        """Makes the archive match the trials' result logs: no gaps, no orphans."""
        archive = Archive(self.storage)
        existing = set(archive.files(phase))
        known = set()
        for result in grid:
            trial_id = result.metrics["trial_id"]
            known.add(trial_id)
            log = Storage(self._uri(result.path))
            if not log.exists("result.json"):
                continue
            for line in log.read_text("result.json").splitlines():
                rec = json.loads(line)
                iteration = int(rec["training_iteration"])
                name = archive.file_name(phase, trial_id, iteration)
                rows = decode_rows(rec.get("archive_rows"))
                if rows and name not in existing:
                    archive.write(phase, trial_id, iteration, rows)
                    existing.add(name)
        archive.reconcile(phase, known)

    def _uri(self, path: str) -> str:
        if self.storage.is_local:
            return path
        return f"{self.storage.uri.split('://', 1)[0]}://{path}"

    # ---- phases ------------------------------------------------------------------------
    def _run_supernet(self) -> dict[str, Any]:
        from ray import tune

        from raynas.tune.factories import build_trial_scheduler
        from raynas.tune.trainables import train_supernet

        o = self.opts["supernet"]
        fn = tune.with_parameters(
            train_supernet,
            cfg_text=self.cfg_text,
            opts=dict(iters=o["iters"], report_interval=o["report_interval"]),
        )
        space = tune_spec(dict(o["param_space"]))
        size = grid_size(space)
        grid = self._tune(
            "supernet",
            tune.with_resources(fn, trial_resources(o)),
            space,
            total=o["num_samples"] * size,
            iters=o["iters"],
            num_samples=o["num_samples"],
            max_concurrent_trials=o["max_concurrent"],
            scheduler=build_trial_scheduler(o["scheduler"]),
        )
        best = grid.get_best_result(metric="mIoU", mode="max", scope="last")
        return dict(
            checkpoint=self._uri(best.checkpoint.path),
            trial_id=best.metrics["trial_id"],
            mIoU=best.metrics["mIoU"],
            cfg_options=best.config.get("cfg_options"),
        )

    def _run_search(self) -> dict[str, Any]:
        from ray import tune

        from raynas.tune.factories import build_searcher
        from raynas.tune.trainables import evaluate_candidate

        o, sup = self.opts["search"], self.phase("supernet")
        space, _ = space_and_table(self.cfg)
        param_space = {"arch": {k: tune.choice(list(v)) for k, v in space.choices.items()}}
        trial_opts = dict(
            supernet_checkpoint=sup["checkpoint"],
            cfg_options=sup.get("cfg_options"),
            constraints={k: tuple(v) for k, v in o["constraints"].items()},
            calib_batches=o["calib_batches"],
            eval_images=o["eval_images"],
            latency=o["latency"],
        )
        fn = tune.with_parameters(evaluate_candidate, cfg_text=self.cfg_text, opts=trial_opts)
        grid = self._tune(
            "search",
            tune.with_resources(fn, trial_resources(o)),
            param_space,
            total=o["num_candidates"],
            num_samples=o["num_candidates"],
            search_alg=build_searcher(o["searcher"], ["mIoU", "flops"], ["max", "min"]),
            max_concurrent_trials=o["max_concurrent"],
            reuse_actors=True,
        )
        feasible = sum(int(r.metrics.get("feasible", 0)) for r in grid)
        return dict(evaluated=len(grid), feasible=feasible)

    def _export_top_k(self) -> list[dict[str, Any]]:
        from mmseg_plugins.bn_calib import train_calibration_loader
        from raynas.export import build_supernet, export_subnet, load_supernet_weights
        from raynas.report import select_top_k
        from raynas.tune.trainables import CKPT_NAME

        o, sup = self.opts["retrain"], self.phase("supernet")
        frame = Archive(self.storage).read("search").to_pandas()
        chosen = select_top_k(frame, o["top_k"])
        if chosen.empty:
            raise PipelineError(
                "search found no feasible architecture; relax "
                "tune_cfg.search.constraints or evaluate more candidates"
            )
        cfg = self.cfg.copy()
        if sup.get("cfg_options"):
            cfg.merge_from_dict(sup["cfg_options"])
        model = build_supernet(cfg)
        ckpt = Storage(sup["checkpoint"]).local_copy() / CKPT_NAME
        load_supernet_weights(model, ckpt)
        loader = train_calibration_loader(cfg)
        exports = []
        for i, row in enumerate(chosen.itertuples()):
            name = f"subnet{i}"
            with tempfile.TemporaryDirectory() as tmp:
                export_subnet(
                    cfg,
                    ckpt,
                    json.loads(row.arch),
                    Path(tmp) / name,
                    model=model,
                    calib_loader=loader,
                    provenance=dict(
                        search_trial=row.trial_id, search_miou=row.miou, flops=int(row.flops)
                    ),
                )
                self.storage.upload(Path(tmp) / name, "subnets", name)
            exports.append(
                dict(
                    name=name,
                    dir=self.storage.child("subnets", name).uri,
                    arch=row.arch,
                    search_miou=row.miou,
                    flops=int(row.flops),
                )
            )
        return exports

    def _run_retrain(self) -> dict[str, Any]:
        from ray import tune

        from raynas.tune.factories import build_trial_scheduler
        from raynas.tune.trainables import retrain_subnet

        o, state = self.opts["retrain"], self.phase("retrain")
        if "exports" not in state:  # exported once; a resumed pipeline retrains the same ones
            state["exports"] = self._export_top_k()
            self._save()
        exports = state["exports"]
        trial_opts = dict(
            iters=o["iters"],
            report_interval=o["report_interval"],
            init=o["init"],
            flops={e["name"]: e["flops"] for e in exports},
        )
        fn = tune.with_resources(
            tune.with_parameters(retrain_subnet, opts=trial_opts), trial_resources(o)
        )
        grid = self._tune(
            "retrain",
            fn,
            {"subnet_dir": tune.grid_search([e["dir"] for e in exports])},
            total=len(exports),
            iters=o["iters"],
            max_concurrent_trials=o["max_concurrent"],
            scheduler=build_trial_scheduler(o["scheduler"]),
        )
        best = grid.get_best_result(metric="mIoU", mode="max", scope="last")
        name = Path(best.config["subnet_dir"]).name
        flops = next(e["flops"] for e in exports if e["name"] == name)
        return dict(
            best=dict(
                name=name,
                miou=best.metrics["mIoU"],
                flops=flops,
                subnet_dir=best.config["subnet_dir"],
                checkpoint=self._uri(best.checkpoint.path),
            )
        )

    def _run_report(self) -> dict[str, Any]:
        return self.report()

    def report(self) -> dict[str, Any]:
        """Writes ``report/pareto.png``, ``report/report.md`` and ``best/``; prints the table."""
        import torch

        from mmseg_plugins.safe_load import load_local
        from raynas.report import majority_miou, plot_pareto, summary_markdown
        from raynas.tune.trainables import CKPT_NAME

        frame = Archive(self.storage).read().to_pandas()
        val = self.cfg.val_dataloader.dataset
        ann = Path(val.data_root) / val.data_prefix.seg_map_path
        baselines = {"majority class": majority_miou(ann, self.cfg.model.decode_head.num_classes)}
        best = self.phase("retrain").get("best")
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            info = None
            if best:
                sub = Storage(best["subnet_dir"]).local_copy()
                ckpt = load_local(str(Storage(best["checkpoint"]).local_copy() / CKPT_NAME), "cpu")
                (tmp / "best").mkdir()
                for f in ("subnet.py", "arch.yaml"):
                    shutil.copy(sub / f, tmp / "best" / f)
                torch.save(
                    {
                        "meta": {
                            "raynas": {"miou": best["miou"], "name": best["name"]},
                            "dataset_meta": ckpt.get("meta", {}).get("dataset_meta"),
                        },
                        "state_dict": ckpt["state_dict"],
                    },
                    tmp / "best" / "subnet.pth",
                )
                self.storage.upload(tmp / "best", "best")
                info = dict(
                    best,
                    config=self.storage.child("best", "subnet.py").uri,
                    checkpoint=self.storage.child("best", "subnet.pth").uri,
                )
            text = summary_markdown(frame, baselines, info)
            (tmp / "report").mkdir()
            (tmp / "report" / "report.md").write_text(text)
            plot_pareto(frame, tmp / "report" / "pareto.png", baselines)
            self.storage.upload(tmp / "report", "report")
        print(text, flush=True)
        return dict(baselines=baselines, rows=len(frame))
