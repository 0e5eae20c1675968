"""The found models against mmseg's real-time models, at the pipeline's retrain schedule.

mmseg's FastSCNN, CGNet, BiSeNetV2, ERFNet and STDC1 (their mmseg configs with only the
number of classes, input size and BN changed; no pretrained weights) are trained on the
embedded dataset with exactly the config of the experiment's retrained subnets (dataset and
selection split, optimizer, schedule, iterations), from scratch, and tested on val. The
experiment's retrained subnets (from inherited weights) are read from its archive. Every
model's params, FLOPs and CPU latency (batch 1, all measured in this one process) go on one
Pareto plot, and each mmseg model is marked with the found models that beat it (higher val
mIoU at lower or equal latency). Trainings are cached in --cache; ``--recorded`` takes an
earlier run's mmseg accuracies (same schedule) for models not in the cache, marked in the table
(their latencies are still measured here).

Run:  python -m benchmarks.vs_mmseg --experiment runs/quickstart [runs/realtime ...]
      [--models fastscnn ...] [--recorded benchmarks/data/vs_mmseg-2000-recorded.json]
Every model's latency is also measured in PyTorch eager and in ONNX Runtime, 1 and 2 threads,
in this process (the deployment table, and whether the latency order changes between them).
Writes benchmarks/results/vs_mmseg.{json,md,png} (--out names another) and prints the table.
``--scratch-cost 5``: the whole pipeline's wall time as a multiple of training its delivered
model once from scratch to the same val mIoU (at most 5x the retrain's iterations).
``--equal-cost bisenetv2 cgnet``: those models from scratch for the iterations that fit the
first experiment's whole wall time (their step time measured here, the retrain's recipe with
its schedule stretched), beside the experiment's found models from scratch on the longest of
those schedules and the model the pipeline delivered (vs_mmseg-equal-cost.{json,md}; 117
minutes on 2 CPU cores for configs/realtime.py's 35-minute pipeline, the machine slowing under
it: two trainings of its wall time and the found model's shorter one).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

from mmengine.hooks import Hook

from benchmarks import harness
from raynas.baselines import BASELINES, baseline_config, deploy_latency
from raynas.report import deploy_markdown


def cached(name: str, iters: int, cache: Path) -> Path:
    """Where :func:`train` keeps the result of ``name`` trained for ``iters``."""
    return cache / f"{name}-{iters}.json"


def stretch(cfg: Any, iters: int, val_interval: int, work_dir: Path) -> None:
    """``cfg`` (a retrain config) set to train from scratch for ``iters`` (its schedule
    stretched to them, as the retrain phase stretches it), validated every ``val_interval``,
    one checkpoint at the end."""
    from raynas.tune.trial import scale_schedule

    scale_schedule(cfg, iters)
    cfg.work_dir = str(work_dir)
    cfg.load_from, cfg.resume = None, False
    cfg.train_cfg.max_iters, cfg.train_cfg.val_interval = iters, val_interval
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iters)
    cfg.log_level = "WARNING"


def wall_s(state: dict[str, Any]) -> float:
    """The whole pipeline's wall time: its phases' summed."""
    return sum(p.get("wall_s", 0.0) for p in state["phases"].values())


def train(name: str, cfg: Any, iters: int, cache: Path) -> dict[str, Any]:
    """Val mIoU, checkpoint and wall time of ``cfg`` trained from scratch for ``iters``, its
    schedule stretched to them (cached by name and iterations)."""
    from mmengine.runner import Runner

    key = cached(name, iters, cache)
    if key.is_file():
        return json.loads(key.read_text())
    work = key.with_suffix("")  # the same name, without .json
    stretch(cfg, iters, iters, work)
    runner = Runner.from_cfg(cfg)
    start = time.perf_counter()
    runner.train()
    result = dict(name=name, val_mIoU=float(runner.test()["mIoU"]), iters=iters,
                  train_s=time.perf_counter() - start,
                  checkpoint=str(work / f"iter_{iters}.pth"))  # fmt: skip
    key.write_text(json.dumps(result))
    return result


def train_baseline(name: str, subnet_cfg: Any, iters: int, cache: Path) -> dict[str, Any]:
    return train(name, baseline_config(name, subnet_cfg), iters, cache)


def cost(cfg: Any, checkpoint: str | None, size: tuple[int, int]) -> dict[str, float]:
    """Params, FLOPs and CPU latency (batch 1) of a config's model."""
    from raynas.baselines import model_cost

    return model_cost(cfg.model, size, checkpoint)


def recorded(path: Path | None, iters: int) -> dict[str, dict[str, Any]]:
    """The mmseg rows of an earlier results file with the same iterations, by name."""
    if path is None:
        return {}
    doc = json.loads(path.read_text())
    if doc["iters"] != iters:
        raise SystemExit(f"--recorded {path} was trained for {doc['iters']} iterations, "
                         f"the experiment retrains for {iters}: drop --recorded")  # fmt: skip
    keep = ("name", "val_mIoU")
    return {r["name"]: {k: r[k] for k in keep} | dict(recorded=str(path))
            for r in doc["rows"] if not r.get("found", r["name"].startswith("found"))}  # fmt: skip


def found_models(exp: Path, prefix: str = "found") -> list[dict[str, Any]]:
    """The experiment's retrained subnets: val mIoU (last retrain row), config, checkpoint."""
    import pandas as pd

    frame = pd.read_parquet(exp / "archive")
    retrain = frame[(frame.phase == "retrain") & ~frame.path.str.startswith("baseline:")]
    retrain = retrain[retrain.split == "val"]  # candidates stopped by successive halving: none
    retrain = retrain.sort_values("iteration")
    exports = {e["name"]: e for e in harness.state(exp)["phases"]["retrain"]["exports"]}
    out = []
    for _, row in retrain.groupby("trial_id").tail(1).iterrows():
        trial = next((exp / "retrain").glob(f"*{row.trial_id}*"))
        ckpt = sorted(trial.glob("checkpoint_*/checkpoint.pth"))[-1]
        out.append(dict(name=f"{prefix} {row.path}", val_mIoU=float(row.mIoU), found=True,
                        checkpoint=str(ckpt),
                        config=str(Path(exports[row.path]["dir"]) / "subnet.py")))  # fmt: skip
    return out


class _Crossing(Hook):
    """Wall time and val mIoU at each validation; stops training at ``target``."""

    priority = "LOWEST"

    def __init__(self, target: float, out: Path) -> None:
        import time

        self.target, self.out, self.start, self.points = target, out, time.perf_counter(), []

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        import time

        miou = float((metrics or {}).get("mIoU", 0.0))
        self.points.append(dict(iter=runner.iter, wall_s=time.perf_counter() - self.start,
                                val_mIoU=miou))  # fmt: skip
        self.out.write_text(json.dumps(self.points))
        if miou >= self.target:
            runner.train_loop.stop_training = True


def scratch_cost(exp: Path, cap: int, cache: Path) -> dict[str, Any]:
    """The delivered model's architecture trained from scratch with the retrain's recipe,
    its schedule stretched to ``cap`` x the retrain's iterations, validated every report
    interval until it reaches the delivered val mIoU: the pipeline's wall time over that."""
    from mmengine.runner import Runner

    from raynas.config import load_config

    state = harness.state(exp)
    target = float(state["phases"]["retrain"]["best"]["mIoU"])
    pipeline_s = wall_s(state)
    opts = load_config(exp / "config.py").tune_cfg.retrain
    iters = cap * opts.iters
    cfg = load_config(exp / "best/subnet.py")
    stretch(cfg, iters, opts.report_interval, cache / f"scratch-{exp.name}")
    runner = Runner.from_cfg(cfg)
    hook = _Crossing(target, cache / f"scratch-{exp.name}.json")
    runner.register_hook(hook)
    runner.train()
    reached = next((p for p in hook.points if p["val_mIoU"] >= target), None)
    scratch_s = (reached or hook.points[-1])["wall_s"]
    return dict(experiment=str(exp), target_val_mIoU=target, pipeline_s=pipeline_s,
                retrain_iters=opts.iters, cap_iters=iters, points=hook.points,
                reached=reached is not None, scratch_s=scratch_s,
                multiple=pipeline_s / scratch_s)  # fmt: skip


class _StepTimer(Hook):
    """The wall time of the training iterations after the first ``warmup``."""

    def __init__(self, warmup: int) -> None:
        self.warmup, self.start, self.end = warmup, 0.0, 0.0

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: Any = None) -> None:  # fmt: skip
        self.end = time.perf_counter()
        if runner.iter + 1 == self.warmup:
            self.start = self.end


def step_seconds(cfg: Any, work: Path, steps: int = 20, warmup: int = 5) -> float:
    """Seconds per training iteration of ``cfg`` on this machine's threads (a timed run)."""
    from mmengine.runner import Runner

    stretch(cfg, warmup + steps, warmup + steps + 1, work)  # no validation
    runner = Runner.from_cfg(cfg)
    timer = _StepTimer(warmup)
    runner.register_hook(timer)
    runner.train()
    return (timer.end - timer.start) / steps


def equal_cost(exp: Path, models: list[str], cache: Path) -> dict[str, Any]:
    """Each of ``models`` from scratch for the iterations that fit the experiment's whole
    wall time (by its measured step time; the retrain's recipe, schedule stretched), and the
    experiment's found models from scratch for the longest of those schedules."""
    from raynas.config import load_config

    state = harness.state(exp)
    budget_s = wall_s(state)
    interval = load_config(exp / "config.py").tune_cfg.retrain.report_interval
    subnet = load_config(exp / "best/subnet.py")
    size = tuple(subnet.model.data_preprocessor.size)
    configs = {name: baseline_config(name, subnet) for name in models}
    steps = {}  # every model timed before any long training loads the machine
    for name, cfg in configs.items():
        steps[name] = harness.cached(f"step-{name}", lambda c=cfg, n=name: dict(
            s=step_seconds(copy.deepcopy(c), cache / f"step-{n}")), cache)["s"]  # fmt: skip
    rows = []
    for name, cfg in configs.items():
        step = steps[name]
        iters = max(interval, int(budget_s / step) // interval * interval)
        trained = train(f"{name}-equal", copy.deepcopy(cfg), iters, cache)
        rows.append(dict(trained, step_s=step, **cost(cfg, None, size)))
    longest = max(r["iters"] for r in rows)
    for model in found_models(exp):
        cfg, label = load_config(model["config"]), model["name"].removeprefix("found ")
        trained = train(f"{exp.name}-{label}-scratch", copy.deepcopy(cfg), longest, cache)
        rows.append(dict(trained, found=True, name=f"found {label} (from scratch)",
                         **cost(cfg, None, size)))  # fmt: skip
    delivered = dict(name="delivered by the pipeline (from supernet weights)", found=True,
                     val_mIoU=float(state["phases"]["retrain"]["best"]["mIoU"]),
                     iters=None, train_s=budget_s, **cost(subnet, None, size))  # fmt: skip
    return dict(experiment=str(exp), budget_s=budget_s, rows=[delivered, *rows])


def write_equal_cost(result: dict[str, Any]) -> None:
    lines = [f"`{result['experiment']}`'s whole pipeline took {result['budget_s']:.0f} s on this "
             "machine. mmseg's models trained from scratch for the iterations that fit that "
             "time (by their measured step time, the retrain's recipe with its schedule "
             "stretched); the found models from scratch on the longest of those schedules; "
             "latency batch 1, one process.", "",
             "| model | iterations | training wall s | val mIoU | latency ms | MFLOPs |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        iters = r["iters"] or "whole pipeline"
        lines.append(f"| {r['name']} | {iters} | {r['train_s']:.0f} | {r['val_mIoU']:.2f} | "
                     f"{r['latency_ms']:.2f} | {r['flops'] / 1e6:.1f} |")  # fmt: skip
    mmseg = [r for r in result["rows"] if not r.get("found")]
    lines.append("")
    for r in result["rows"]:
        if not r.get("found"):
            continue
        acc = [m["name"] for m in mmseg if r["val_mIoU"] >= m["val_mIoU"]]
        fast = [
            m["name"] for m in mmseg if r["latency_ms"] < m["latency_ms"] and m["name"] not in acc
        ]
        lines.append(f"- {r['name']}: as accurate or more than {', '.join(acc) or 'none'}; "
                     f"only faster than {', '.join(fast) or 'none'}.")  # fmt: skip
    harness.write("vs_mmseg-equal-cost", result, "\n".join(lines))


def write_scratch_cost(result: dict[str, Any]) -> None:
    lines = [f"`{result['experiment']}`: delivered val mIoU {result['target_val_mIoU']:.2f} after "
             f"a {result['pipeline_s']:.0f} s pipeline. The same architecture from scratch "
             f"(retrain recipe, schedule stretched to {result['cap_iters']} iterations, "
             f"{result['cap_iters'] // result['retrain_iters']}x the retrain's), val mIoU by "
             "iteration:", "", "| iteration | wall s | val mIoU |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {p['iter']} | {p['wall_s']:.0f} | {p['val_mIoU']:.2f} |"
              for p in result["points"]]  # fmt: skip
    verdict = "reached it" if result["reached"] else "did not reach it within the cap"
    lines += ["", f"Scratch training {verdict} after {result['scratch_s']:.0f} s: the whole "
              f"pipeline costs **{result['multiple']:.2f}x** training the final model once from "
              "scratch" + ("" if result["reached"] else " at the cap") + "."]  # fmt: skip
    harness.write("vs_mmseg-scratch-cost", result, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--experiment",
        type=Path,
        nargs="+",
        required=True,
        help="experiments whose found models go in the table (same retrain config)",
    )
    ap.add_argument(
        "--recorded",
        type=Path,
        help="recorded mmseg accuracies (benchmarks/data/vs_mmseg-2000-recorded.json) for "
        "models not in the cache",
    )
    ap.add_argument("--models", nargs="+", default=list(BASELINES))
    ap.add_argument("--cache", type=Path, default=harness.CACHE / "vs_mmseg")
    ap.add_argument("--out", default="vs_mmseg", help="results file name, without suffix")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the latencies "
                    "(1: faster than 2 for every model on the 2-core machine here)")  # fmt: skip
    ap.add_argument("--scratch-cost", type=int, metavar="CAP", help="only the whole-search cost: "
                    "the first experiment's delivered model from scratch, at most CAP x the "
                    "retrain's iterations (vs_mmseg-scratch-cost.{json,md})")  # fmt: skip
    ap.add_argument("--equal-cost", nargs="+", metavar="MODEL", help="only the equal-cost "
                    "table: MODELs trained for the first experiment's whole wall time, its found "
                    "models from scratch beside them (vs_mmseg-equal-cost.{json,md})")  # fmt: skip
    args = ap.parse_args()
    if args.scratch_cost or args.equal_cost:
        from mmengine.registry import init_default_scope

        import mmseg_plugins

        init_default_scope("mmseg")
        args.cache.mkdir(parents=True, exist_ok=True)
        if args.equal_cost:
            write_equal_cost(equal_cost(args.experiment[0], args.equal_cost, args.cache))
        else:
            write_scratch_cost(scratch_cost(args.experiment[0], args.scratch_cost, args.cache))
        return
    import torch
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401
    from raynas.config import load_config

    init_default_scope("mmseg")
    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    several = len(args.experiment) > 1
    found = [m for exp in args.experiment
             for m in found_models(exp, f"{exp.name}:" if several else "found")]  # fmt: skip
    subnet_cfg = load_config(found[0]["config"])
    iters = load_config(args.experiment[0] / "config.py").tune_cfg.retrain.iters
    size = tuple(subnet_cfg.model.data_preprocessor.size)
    old = recorded(args.recorded, iters)
    trained = [old[name] if name in old and not cached(name, iters, args.cache).is_file()
               else train_baseline(name, subnet_cfg, iters, args.cache)
               for name in args.models]  # fmt: skip
    rows = []  # costs measured after all training, back to back, so latencies compare
    for name, result in zip(args.models, trained, strict=True):
        rows.append({**result, **cost(baseline_config(name, subnet_cfg), None, size)})
        print(json.dumps(rows[-1]), flush=True)
    for model in found:
        rows.append({**model, **cost(load_config(model["config"]), model["checkpoint"], size)})
        print(json.dumps(rows[-1]), flush=True)
    for row, name in zip(rows, [*args.models, *(None for _ in found)], strict=True):
        model_cfg = (
            baseline_config(name, subnet_cfg) if name else load_config(row["config"])
        ).model
        row["deploy_ms"] = deploy_latency(model_cfg, size, row.get("checkpoint") if not name
                                          else None)  # fmt: skip
        print(row["name"], json.dumps(row["deploy_ms"]), flush=True)
    write(rows, iters, size, args.threads, args.out)


def write(rows: list[dict], iters: int, size: tuple, threads: int, out: str) -> None:
    """``benchmarks/results/{out}.{json,md,png}``."""
    from raynas.report import plot_vs_baselines, vs_baselines_markdown

    marked = [dict(r, mIoU=r["val_mIoU"], baseline=not r.get("found"),
                   name=r["name"] + (" (recorded)" if "recorded" in r else ""))
              for r in rows]  # fmt: skip
    harness.RESULTS.mkdir(parents=True, exist_ok=True)
    plot_vs_baselines(marked, harness.RESULTS / f"{out}.png", size)
    sources = sorted({r["recorded"] for r in rows if "recorded" in r})
    note = f"; (recorded): val mIoU from {', '.join(sources)}, not retrained" if sources else ""
    md = (f"synthseg val mIoU after {iters} iterations of the pipeline's retrain config (found "
          "models: from inherited weights; mmseg models: from scratch); CPU latency batch 1 at "
          f"{size[0]}x{size[1]}, {threads} thread(s), measured in one process{note}\n\n"
          + vs_baselines_markdown(marked))  # fmt: skip
    harness.write(out, dict(rows=rows, iters=iters, threads=threads),
                  md + "\n" + deploy_markdown(rows, size))  # fmt: skip


def cost_table(rows: list[dict], caption: str) -> str:
    """A markdown table of the rows' mIoU and costs, fastest first, under ``caption``."""
    lines = [caption, "", "| model | val mIoU | latency ms | MFLOPs | params k |",
             "|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(rows, key=lambda r: r["latency_ms"]):
        lines.append(f"| {r['name']} | {r['val_mIoU']:.2f} | {r['latency_ms']:.2f} | "
                     f"{r['flops'] / 1e6:.1f} | {r['params'] / 1e3:.0f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
