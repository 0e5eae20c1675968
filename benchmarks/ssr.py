"""SSR and XNAS on the embedded dataset: do they decide, at the cost asked, and beat NSGA-II?

Parts (each its own results file, each under 90 minutes on 2 CPU cores; searches cached):

1. ``converge`` (about 20 min), the SSR quickstart's space on its own 800-iteration supernet
   (``configs/ssr_quickstart.py``'s supernet phase): SSR searches with the shipped settings
   (``configs/ssr_quickstart.py``), through the Runner, at 25 and 50 MFLOPs, seeds 0 and 1; the
   SSR loss off (all its weights 0) at 50 MFLOPs, seeds 0 and 1; XNAS instead of SSR's step
   (all candidates: XNAS rewards every one) at 50 MFLOPs, seeds 0 and 1. For each: the
   iteration at which every row was decided, the derived path's exact and expected FLOPs
   against the target, the relaxed against the derived path's selection mIoU (the
   discretisation gap) at the last validation before every row was decided, and the derived
   path's selection mIoU at the end.
2. ``realtime`` (about 35 min): the same on a reduced realtime space (``configs/realtime.py``'s
   widths without the detail branch, as the SSR quickstart leaves it out; its supernet trained
   1200 iterations instead of 7200), SSR on and off, 2 seeds, at a target a third of the way up
   the space's FLOPs range.
3. ``compare`` (about 30 min): SSR against NSGA-II at equal search wall time on the same
   supernet, 2 seeds: the SSR quickstart whole (two searches at 25 and 50 MFLOPs, each found
   model retrained 1500 iterations from its search's weights) and the same config with the
   quickstart's NSGA-II search (the number of candidates that fits SSR's search wall time,
   measured on this machine; the best 2 retrained 1500 iterations from the supernet's weights):
   val mIoU, MFLOPs and CPU latency of every found model, and search time.
4. ``cost`` (about 2 min): seconds and saved-for-backward MB of one training step of the
   relaxed supernet (all candidates, as SSR and XNAS step; 2 drawn per row) against the largest
   and a random path: the ratio to the largest path's step is the figure that carries to a GPU.

Run:  python -m benchmarks.ssr --part converge|realtime|compare|cost
Writes benchmarks/results/ssr-<part>.{json,md}. Pipelines and searches are kept in --storage.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

ROOT = harness.ROOT
QUICK = ROOT / "configs" / "ssr_quickstart.py"
# the reduced realtime space and its shorter supernet (the SSR quickstart's search settings)
REALTIME = f"""_base_ = ["{QUICK}"]
model = dict(
    backbone=dict(arch_settings=dict(stem_channels=(24, 48), stage_channels=(96, 160, 256),
                                     dilations=(1, 2), zooms=(1,))),
    decode_head=dict(in_channels=[96, 160, 256], channels=96, channel_choices=(48, 72, 96),
                     detail_channels=48),
)
tune_cfg = dict(supernet=dict(iters=1200, report_interval=600),
                search=dict(param_space=dict(ssr=dict(target_flops=dict(grid=[130e6])))))
"""
# the SSR quickstart with the quickstart's NSGA-II search instead (seed, candidates)
NSGA = """_base_ = ["{quick}"]
tune_cfg = dict(search=dict(_delete_=True, type="sampling", num_candidates={n}, eval_images=100,
                            calib_batches=3, searcher=dict(type="nsga2", population_size=8,
                            seed={seed}), constraints=dict(flops=(None, 80e6)),
                            resources=dict(cpu=1), max_concurrent=2))
"""


def shipped_ssr() -> dict[str, Any]:
    """The SSR quickstart's resolved SSR options."""
    from raynas.config import load_config
    from raynas.tune.options import resolve_tune_cfg

    return dict(resolve_tune_cfg(load_config(QUICK).tune_cfg)["search"]["ssr"])


def search_once(exp: Path, work: Path, ssr: dict[str, Any]) -> dict[str, Any]:
    """One search through the Runner from ``exp``'s supernet (one thread); cached."""
    import torch
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    from mmseg_plugins.checkpoint import CKPT_NAME
    from raynas.config import apply_selection_split, config_from_text
    from raynas.tune.phases.ssr import ssr_hook

    torch.set_num_threads(1)
    cfg = config_from_text((exp / "config.py").read_text())
    apply_selection_split(cfg)
    cfg.work_dir, cfg.log_level = str(work), "WARNING"
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=ssr["iters"],
                         val_interval=ssr["shrink_interval"])  # fmt: skip
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10**6)
    cfg.custom_hooks = [ssr_hook(ssr)]
    cfg.load_from = str(Path(harness.state(exp)["phases"]["supernet"]["checkpoint"]) / CKPT_NAME)
    vals: list[dict] = []

    class Record(Hook):
        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            hub = runner.message_hub
            decided = hub.get_scalar("strategy/decided").current()
            relaxed = hub.get_scalar("strategy/relaxed_mIoU").current() if not decided else None
            derived = float(metrics["derived/mIoU"])
            relaxed = relaxed and float(relaxed)
            vals.append(dict(iter=runner.iter, derived=derived, relaxed=relaxed,
                             decided=bool(decided)))  # fmt: skip

    runner = Runner.from_cfg(cfg)
    runner.register_hook(Record(), "LOWEST")
    start = time.time()
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == "SSRHook")
    return dict(ssr=ssr, seconds=time.time() - start, iters=runner.iter, vals=vals,
                history=hook.history, decided_at=hook.decided_at, derived=hook.derive(),
                **hook.summary())  # fmt: skip


def searches(exp: Path, runs: dict[str, dict[str, Any]], parallel: int = 2) -> dict[str, Any]:
    """``runs`` (name -> SSR options) as one-thread processes, ``parallel`` at a time."""
    todo = [n for n in runs if not (exp / "searches" / f"{n}.json").is_file()]
    procs: list[subprocess.Popen] = []
    for name in todo:
        while len([p for p in procs if p.poll() is None]) >= parallel:
            time.sleep(2)
        arg = json.dumps(runs[name])
        procs.append(subprocess.Popen([sys.executable, "-m", "benchmarks.ssr", "--one",
                                       str(exp), name, arg], cwd=ROOT))  # fmt: skip
    if any(p.wait() for p in procs):
        raise RuntimeError(f"a search failed: {[p.args[-2] for p in procs if p.returncode]}")
    return {n: json.loads((exp / "searches" / f"{n}.json").read_text()) for n in runs}


def _row(name: str, r: dict[str, Any]) -> dict[str, Any]:
    """One search's figures for the tables."""
    target = r["ssr"]["target_flops"]
    undecided = [v for v in r["vals"] if not v["decided"] and v["relaxed"] is not None]
    last = undecided[-1] if undecided else None
    return dict(run=name, optimizer=r["ssr"]["optimizer"], seed=r["ssr"]["seed"],
                ssr_loss=r["ssr"]["optimizer"] == "ssr" and any(r["ssr"]["loss_weights"].values()),
                target_mflops=target / 1e6,
                rows=int(r["rows"]), rows_decided=int(r["rows_decided"]),
                by_cost=int(r.get("rows_decided_by_cost", 0)),
                all_decided_at=max(r["decided_at"].values()) if r["decided"] else None,
                first_decided_at=min(r["decided_at"].values(), default=None),
                budget=r["ssr"]["iters"], derived_mflops=r["derived_cost"] / 1e6,
                expected_mflops=r["expected_mflops"],
                derived_off=r["derived_cost"] / target - 1,
                expected_off=r["expected_mflops"] * 1e6 / target - 1,
                gap_iter=last and last["iter"], relaxed=last and last["relaxed"],
                derived_then=last and last["derived"], final_derived=r["vals"][-1]["derived"],
                seconds=r["seconds"], s_per_iter=r["seconds"] / max(r["iters"], 1))  # fmt: skip


def converge_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| run | optimizer | SSR loss | seed | target MFLOPs | rows decided (by the cost) | "
             "all decided "
             "at iter (first) | derived MFLOPs (vs target) | expected MFLOPs (vs target) | "
             "gap at iter: relaxed - derived mIoU | final derived mIoU | s/iter |",
             "|---" * 12 + "|"]  # fmt: skip
    for r in rows:
        at = f"{r['all_decided_at']} of {r['budget']}" if r["all_decided_at"] else "not all"
        gap = "-"
        if r["relaxed"] is not None:
            gap = (f"{r['gap_iter']}: {r['relaxed']:.2f} - {r['derived_then']:.2f} = "
                   f"{r['relaxed'] - r['derived_then']:+.2f}")  # fmt: skip
        lines.append(
            f"| {r['run']} | {r['optimizer']} | {_loss(r)} | {r['seed']} "
            f"| {r['target_mflops']:.1f} | {r['rows_decided']}/{r['rows']} ({r['by_cost']}) "
            f"| {at} ({r['first_decided_at'] or '-'}) "
            f"| {r['derived_mflops']:.1f} ({r['derived_off']:+.1%}) | "
            f"{r['expected_mflops']:.1f} ({r['expected_off']:+.1%}) | {gap} | "
            f"{r['final_derived']:.2f} | {r['s_per_iter']:.2f} |"
        )
    return "\n".join(lines)


def _loss(row: dict[str, Any]) -> str:
    """Whether the SSR loss was on ('-' for XNAS, which has none)."""
    return "-" if row["optimizer"] == "xnas" else ("on" if row["ssr_loss"] else "off")


def _runs(targets: list[float], xnas: bool) -> dict[str, dict[str, Any]]:
    base, runs = shipped_ssr(), {}
    off = {k: 0.0 for k in base["loss_weights"]}
    for seed in (0, 1):
        for t in targets:
            runs[f"ssr-{t / 1e6:.0f}M-s{seed}"] = {**base, "seed": seed, "target_flops": t}
        t = targets[-1]
        runs[f"off-{t / 1e6:.0f}M-s{seed}"] = {**base, "seed": seed, "target_flops": t,
                                               "loss_weights": off}  # fmt: skip
        if xnas:
            xnas_run = dict(optimizer="xnas", sample_k=0)
            runs[f"xnas-{t / 1e6:.0f}M-s{seed}"] = {**base, "seed": seed, "target_flops": t,
                                                    **xnas_run}  # fmt: skip
    return runs


def part_converge(storage: Path, realtime: bool) -> None:
    if realtime:
        config = storage / "realtime_reduced.py"
        config.write_text(REALTIME)
        exp = harness.pipeline(config, storage, "realtime-supernet", until="supernet")
        low, high = _flops_range(exp)
        targets = [round(low + (high - low) / 3, -5)]
    else:
        exp = harness.pipeline(QUICK, storage, "supernet", until="supernet")
        targets = [25e6, 50e6]
    rows = [_row(n, r) for n, r in searches(exp, _runs(targets, not realtime)).items()]
    name = "ssr-realtime" if realtime else "ssr-converge"
    wall = harness.state(exp)["phases"]["supernet"]["wall_s"]
    space = ("the realtime config's widths (stem 24/48, stages 96/160/256, head 48-96 channels)"
             ", dilations 1-2, no zoom, no detail branch: 32 decision rows. " if realtime else
             "the SSR quickstart's space: 44 decision rows. ")  # fmt: skip
    intro = space + (f"Supernet: `{exp.name}` ({_supernet_iters(exp)} iterations, "
             f"{wall:.0f} s). Every search: the shipped SSR settings of "
             "`configs/ssr_quickstart.py` (budget 120 iterations, shrink every 12, threshold "
             "0.1), one thread, through the Runner; mIoU on the selection split.\n\n")  # fmt: skip
    harness.write(name, dict(rows=rows), intro + converge_table(rows))


def _supernet_iters(exp: Path) -> int:
    from raynas.config import config_from_text
    from raynas.tune.options import resolve_tune_cfg

    cfg = config_from_text((exp / "config.py").read_text())
    return resolve_tune_cfg(cfg.tune_cfg)["supernet"]["iters"]


def _flops_range(exp: Path) -> tuple[float, float]:
    from raynas.config import config_from_text, space_and_table

    space, table = space_and_table(config_from_text((exp / "config.py").read_text()))
    return space.cost_range(lambda a: table(a).flops)


def found(exp: Path) -> list[dict[str, Any]]:
    """The retrained found models: val mIoU, FLOPs, params and CPU latency (batch 1)."""
    from benchmarks.vs_mmseg import cost, found_models
    from raynas.config import load_config

    out = []
    for m in found_models(exp, prefix=""):
        cfg = load_config(m["config"])
        size = tuple(cfg.model.data_preprocessor.size)
        out.append(dict(name=m["name"].strip(), val_mIoU=m["val_mIoU"],
                        **cost(cfg, None, size)))  # fmt: skip
    return out


def part_compare(storage: Path) -> None:
    donor = harness.pipeline(QUICK, storage, "supernet", until="supernet")
    rows, compared = [], set()
    for seed in (0, 1):
        ssr = harness.pipeline(
            QUICK, storage, f"ssr-s{seed}", donor, **{"tune_cfg.search.ssr.seed": seed}
        )
        n = _equal_time(storage, donor, harness.state(ssr)["phases"]["search"]["wall_s"])
        nsga = _nsga(storage, donor, seed, n)
        compared.add(nsga)
        for name, exp in ((f"SSR, seed {seed}", ssr), (f"NSGA-II ({n} candidates), seed {seed}",
                                                       nsga)):  # fmt: skip
            state = harness.state(exp)["phases"]
            rows.append(dict(search=name, search_s=state["search"]["wall_s"], models=found(exp)))
    for exp in sorted(storage.glob("nsga2-s0-n*"), key=lambda e: int(e.name.rsplit("n", 1)[1])):
        if exp not in compared and harness.state(exp)["phases"].get("report", {}).get("done"):
            n = exp.name.rsplit("n", 1)[1]  # a run that timed NSGA-II's search, seed 0
            rows.append(dict(search=f"NSGA-II ({n} candidates), seed 0, timing run",
                             search_s=harness.state(exp)["phases"]["search"]["wall_s"],
                             models=found(exp)))  # fmt: skip
    lines = ["| search | search wall s | model | val mIoU | MFLOPs | CPU latency ms |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        for m in r["models"]:
            lines.append(f"| {r['search']} | {r['search_s']:.0f} | {m['name']} | "
                         f"{m['val_mIoU']:.2f} | {m['flops'] / 1e6:.1f} | "
                         f"{m['latency_ms']:.2f} |")  # fmt: skip
    intro = ("Same supernet (the SSR quickstart's, 800 iterations) for every search; SSR's found "
             "models retrained 1500 iterations from their own search's weights, NSGA-II's best "
             "2 from the supernet's; NSGA-II given the candidates that fit SSR's search wall "
             "time, from its search time measured at two counts (seed 0) as fixed + "
             "per-candidate.\n\n"
             )  # fmt: skip
    harness.write("ssr-compare", dict(rows=rows), intro + "\n".join(lines))


def _equal_time(storage: Path, donor: Path, seconds: float) -> int:
    """The NSGA-II candidates that fit ``seconds`` of search on this machine: its search time
    fitted as fixed + per-candidate from two seed-0 runs (24 candidates, then the count the
    first run's rate gives; the fixed part, Tune's start, dominates at 24)."""
    wall = lambda exp: harness.state(exp)["phases"]["search"]["wall_s"]  # noqa: E731
    t24 = wall(_nsga(storage, donor, 0, 24))
    n1 = max(25, round(seconds / (t24 / 24)))
    t1 = wall(_nsga(storage, donor, 0, n1))
    per = (t1 - t24) / (n1 - 24)
    return max(8, round(24 + (seconds - t24) / per))


def _nsga(storage: Path, donor: Path, seed: int, n: int) -> Path:
    config = storage / f"nsga2_s{seed}_n{n}.py"
    config.write_text(NSGA.format(quick=QUICK, n=n, seed=seed))
    return harness.pipeline(config, storage, f"nsga2-s{seed}-n{n}", donor)


def part_cost(storage: Path, steps: int = 3) -> None:
    """One training step (batch 8, 128x128, one thread) of paths and of the relaxed supernet."""
    import statistics

    import numpy as np
    import torch

    from mmseg_plugins.arch import search_space, set_arch, set_relaxed
    from raynas.config import config_from_text
    from raynas.core.ssr import ArchWeights
    from raynas.export import build_supernet

    torch.set_num_threads(1)
    exp = harness.pipeline(QUICK, storage, "supernet", until="supernet")
    model = build_supernet(config_from_text((exp / "config.py").read_text())).train()
    space, x = search_space(model), torch.randn(8, 3, 128, 128)

    def step() -> float:
        start = time.perf_counter()
        model.decode_head(model.backbone(x)).sum().backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    def measure() -> dict[str, float]:
        mb = harness.saved_tensor_mb(step)  # also the warm-up
        return dict(mb=mb, s=statistics.median(step() for _ in range(steps)))

    out = {}
    random = space.canonical(space.sample(np.random.default_rng(0)))
    for name, arch in (("largest path", space.extreme(True)), ("random path", random)):
        set_arch(model, arch)
        out[name] = measure()
    weights = ArchWeights(space)
    set_relaxed(model, weights)
    out["relaxed, all candidates (SSR sample_k=0, XNAS)"] = measure()
    set_relaxed(model, weights.sample(2, torch.Generator().manual_seed(0)))
    out["relaxed, 2 drawn per row (SSR sample_k=2, shipped)"] = measure()
    set_relaxed(model, None)
    big = out["largest path"]
    lines = ["| step | MB | s | time / largest path's |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['mb']:.0f} | {v['s']:.3f} | {v['s'] / big['s']:.2f} |"
              for k, v in out.items()]  # fmt: skip
    intro = ("One training step, forward + backward (batch 8, 128x128, one thread), the SSR "
             "quickstart's space:\n\n")  # fmt: skip
    harness.write("ssr-cost", dict(steps=out), intro + "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["converge", "realtime", "compare", "cost"])
    ap.add_argument("--storage", type=Path, default=harness.CACHE / "ssr")
    ap.add_argument("--one", nargs=3, metavar=("EXP", "NAME", "SSR_JSON"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401

    init_default_scope("mmseg")
    if args.one:
        exp, name, ssr = Path(args.one[0]), args.one[1], json.loads(args.one[2])
        out = search_once(exp, exp / "searches" / name, ssr)
        (exp / "searches" / f"{name}.json").write_text(json.dumps(out, default=float))
        return
    args.storage.mkdir(parents=True, exist_ok=True)
    if args.part in ("converge", "realtime"):
        part_converge(args.storage, args.part == "realtime")
    elif args.part == "compare":
        part_compare(args.storage)
    else:
        part_cost(args.storage)


if __name__ == "__main__":
    main()
