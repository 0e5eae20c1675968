"""Phase 2, sampling-based search with inherited weights (``search=dict(type='sampling')``):
Optuna's NSGA-II (or TPE, random) through Ray's ``OptunaSearch`` proposes architectures; each
trial sets the path on the trained supernet, recalibrates BN and scores it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import Any

import torch
from mmengine.config import Config
from ray import tune

from mmseg_plugins.checkpoint import CKPT_NAME
from raynas.config import space_and_table
from raynas.core.arch_io import resolve_arch
from raynas.tune.archive import encode_rows
from raynas.tune.factories import build_searcher
from raynas.tune.options import trial_resources
from raynas.tune.phases.base import TunePhase
from raynas.tune.trial import (
    archive_row,
    drop_harmless,
    scored_on,
    trial_config,
    trial_threads,
)

__all__ = ["SamplingSearch", "evaluate_candidate"]


class _Evaluator:
    """A loaded supernet with its data, kept per worker process across candidates."""

    def __init__(self, cfg: Config, checkpoint_dir: str, opts: Mapping[str, Any]) -> None:
        from mmengine.dataset import pseudo_collate
        from mmengine.evaluator import Evaluator
        from mmengine.logging import MMLogger
        from mmseg.registry import DATASETS
        from torch.utils.data import DataLoader, Subset

        from mmseg_plugins.bn_calib import train_calibration_loader
        from raynas.export import build_supernet, load_supernet_weights
        from raynas.tune.storage import Storage

        # every candidate's per-class IoU table (mmengine's IoUMetric, at INFO on the worker's
        # console) stays off the driver's console: the trial reports its mIoU to Tune
        logger = MMLogger.get_current_instance()
        logger.setLevel(logging.WARNING)
        drop_harmless(logger)
        self.cfg = cfg
        self.model = build_supernet(cfg)
        load_supernet_weights(self.model, Storage(checkpoint_dir).local_copy() / CKPT_NAME)
        if torch.cuda.is_available():  # a trial with a GPU (Ray sets CUDA_VISIBLE_DEVICES)
            self.model.cuda()
        self.space, self.table = space_and_table(cfg)
        self.calib = train_calibration_loader(cfg)
        val = DATASETS.build(cfg.val_dataloader.dataset)
        n = min(len(val), int(opts.get("eval_images") or len(val)))
        self.val = DataLoader(
            Subset(val, range(n)), batch_size=cfg.val_dataloader.batch_size,
            collate_fn=pseudo_collate,
        )  # fmt: skip
        self.evaluator = Evaluator(cfg.val_evaluator)
        self.evaluator.dataset_meta = val.metainfo
        self.lut: Any = None
        self.scores: dict[tuple[str, int], float] = {}

    def network(self, arch: Mapping[str, Any]) -> str:
        """The key of the network ``arch`` computes (degenerate dilations folded)."""
        from raynas.core.seg_space import functional_arch

        net = functional_arch(arch, self.model.backbone.settings, tuple(self.table.input_size))
        return json.dumps(net, sort_keys=True)

    def miou(self, arch: Mapping[str, Any], calib_batches: int) -> float:
        """Selection-split mIoU with inherited weights; a network this worker has scored
        already (NSGA-II repeats itself, and paths differing only in degenerate dilations
        compute the same network) is answered from memory: the evaluation is deterministic."""
        from mmseg_plugins.path_eval import evaluate_path

        key = (self.network(arch), calib_batches)
        if key not in self.scores:
            size = len(self.val.dataset)
            metrics = evaluate_path(
                self.model, arch, self.calib, calib_batches, self.val, self.evaluator, size
            )
            self.scores[key] = float(metrics["mIoU"])
        return self.scores[key]

    def latency(self, arch: Mapping[str, Any], cache: str, backend: str = "torch") -> float:
        """The path's latency: on this trial's device, predicted by the latency table (kept in
        the experiment's ``latency/`` per device and input size; missing entries measured),
        or (``backend='onnxruntime'``) its static subnet measured whole in ONNX Runtime on
        this trial's CPU threads."""
        from mmseg_plugins.latency import LatencyTable, table_file
        from raynas.tune.storage import Storage

        if backend == "onnxruntime":
            return self.onnx_latency(arch)
        if self.lut is None:
            device = next(self.model.parameters()).device
            size = tuple(self.table.input_size)
            self.lut = LatencyTable(self.model.backbone.settings, size, device=device)
            self.lut_name = table_file(device, size)
            if Storage(cache).exists(self.lut_name):
                self.lut.add_json(Storage(cache).read_text(self.lut_name), self.lut_name)
        known = len(self.lut.entries)
        value = self.lut.predict(arch, self.model)
        if len(self.lut.entries) > known:
            Storage(cache).write_text(self.lut.to_json(), self.lut_name)
        return value

    def onnx_latency(self, arch: Mapping[str, Any]) -> float:
        """ONNX Runtime latency of the path's static subnet (one per network, remembered)."""
        import torch

        from mmseg_plugins.arch import build_subnet
        from raynas.onnx_export import onnx_latency_ms

        size = tuple(self.table.input_size)
        key = ("onnxruntime", self.network(arch))
        if key not in self.scores:
            sub = build_subnet(self.model, arch, self.cfg.model).cpu().eval()
            self.scores[key] = onnx_latency_ms(sub, size, torch.get_num_threads())
        return self.scores[key]


_EVALUATORS: dict[tuple[int, str], _Evaluator] = {}


def _feasible(cost: Mapping[str, float], constraints: Mapping[str, Any]) -> bool:
    """Whether every constraint of a known cost holds (unknown costs are not checked)."""
    for key, (low, high) in constraints.items():
        value = cost.get(key)
        if value is None:
            continue
        if (low is not None and value < low) or (high is not None and value > high):
            return False
    return True


def evaluate_candidate(config: dict, cfg_text: str, opts: dict) -> None:
    """The trainable: one candidate with inherited weights (BN recalibration, mIoU, cost)."""
    trial_threads()
    start = time.perf_counter()
    key = (hash(cfg_text), opts["supernet_checkpoint"])
    if key not in _EVALUATORS:  # actors are reused, so later candidates skip the loading
        _EVALUATORS.clear()
        cfg = trial_config(cfg_text, opts.get("cfg_options"))
        _EVALUATORS[key] = _Evaluator(cfg, opts["supernet_checkpoint"], opts)
    ev = _EVALUATORS[key]
    arch = ev.space.canonical(ev.space.validate(config["arch"]))
    cost = ev.table(arch)
    latency = (ev.latency(arch, opts["latency_cache"], opts.get("latency_backend", "torch"))
               if opts.get("needs_latency") else None)  # fmt: skip
    costs = dict(flops=cost.flops, params=cost.params, latency_ms=latency)
    feasible = _feasible(costs, opts.get("constraints") or {})
    miou = ev.miou(arch, opts.get("calib_batches", 4)) if feasible else 0.0
    row = archive_row(
        arch, "candidate", miou if feasible else None, cost, ev.space, scored_on(ev.cfg),
        latency_ms=latency, feasible=feasible,
    )  # fmt: skip
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


class SamplingSearch(TunePhase):
    """Candidates proposed by an Optuna sampler, scored with the supernet's weights."""

    name = "search"

    def trainable(self) -> Any:
        sup = self.pipeline.phase("supernet")
        trial_opts = dict(
            supernet_checkpoint=sup["checkpoint"],
            cfg_options=sup.get("cfg_options"),
            constraints={k: tuple(v) for k, v in self.opts["constraints"].items()},
            calib_batches=self.opts["calib_batches"],
            eval_images=self.opts["eval_images"],
            needs_latency=bool(
                self.opts["latency"]
                or self.opts["cost"] == "latency_ms"
                or "latency_ms" in self.opts["constraints"]
            ),
            latency_cache=self.pipeline.storage.child("latency").uri,
            latency_backend=self.opts["latency_backend"],
        )
        fn = tune.with_parameters(
            evaluate_candidate, cfg_text=self.pipeline.cfg_text, opts=trial_opts
        )
        return tune.with_resources(fn, trial_resources(self.opts))

    def param_space(self) -> dict[str, Any]:
        space, _ = space_and_table(self.pipeline.cfg)
        return {"arch": {k: tune.choice(list(v)) for k, v in space.choices.items()}}

    def total(self) -> int:
        return self.opts["num_candidates"]

    def tune_config(self) -> dict[str, Any]:
        metrics = ["mIoU", self.opts["cost"]]
        space, _ = space_and_table(self.pipeline.cfg)  # start_with was checked before training
        starts = [resolve_arch(space, spec) for spec in self.opts["start_with"]]
        points = [{f"arch/{k}": v for k, v in arch.items()} for arch in starts]
        config = super().tune_config()
        # the searcher's limiter holds the trials to max_concurrent (Tune's limit would wrap it)
        concurrent = config.pop("max_concurrent_trials")
        searcher = build_searcher(self.opts["searcher"], metrics, ["max", "min"], points,
                                  concurrent)  # fmt: skip
        return dict(config, num_samples=self.opts["num_candidates"], search_alg=searcher,
                    reuse_actors=True)  # fmt: skip

    def results(self, grid: Any) -> dict[str, Any]:
        feasible = sum(int(r.metrics.get("feasible", 0)) for r in grid)
        return dict(evaluated=len(grid), feasible=feasible)
