"""Supernet training strategies compared under equal training (same seed, same iterations).

For each strategy config: train the supernet for --iters iterations on synthseg, then evaluate
the largest, the smallest and 3 fixed random paths (BN recalibrated on 8 batches, full val set).
Also reports the cost of a DPS selection round relative to a training iteration.

Run:  python -m experiments.strategies.run [--iters 1000] [--strategies uniform dps pada calr-ms]
Writes experiments/strategies/results/strategies.json and strategies.md.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from mmengine.hooks import Hook
from mmengine.runner import Runner

from benchmarks.harness import ROOT
from benchmarks.harness import evaluate_paths as evaluate

OUT = Path(__file__).resolve().parent / "results"
CONFIGS = {
    "uniform": "segsupernet_uniform_1xb8-2k_synthseg-128x128.py",
    "dps": "segsupernet_dps_1xb8-2k_synthseg-128x128.py",
    "pada": "segsupernet_pada_1xb8-2k_synthseg-128x128.py",
    "calr-ms": "segsupernet_uniform-calr-ms_1xb8-2k_synthseg-128x128.py",
}


class IterTimer(Hook):
    priority = "LOWEST"

    def __init__(self) -> None:
        self.times: list[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        self.t = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.times.append(time.perf_counter() - self.t)


def train(strategy: str, iters: int, work: Path) -> tuple[Runner, dict]:
    from mmseg_plugins import PathSamplingHook
    from raynas.config import load_config

    cfg = load_config(
        ROOT / "configs/supernet" / CONFIGS[strategy],
        {
            "train_cfg.max_iters": iters,
            "train_cfg.val_interval": iters + 1,
            "default_hooks.checkpoint.interval": iters,
            "log_level": "WARNING",
        },
    )
    for sched in cfg.get("param_scheduler") or []:
        sched["end"] = iters
    for hook in cfg.get("custom_hooks", []):
        if hook.get("sampler", {}).get("type") == "pada":
            hook["sampler"]["total_iters"] = iters
    cfg.work_dir = str(work / strategy)
    runner = Runner.from_cfg(cfg)
    timer = IterTimer()
    runner.register_hook(timer)
    start = time.perf_counter()
    runner.train()
    info = dict(train_s=time.perf_counter() - start, iter_s=float(np.median(timer.times)))
    hook = next(h for h in runner.hooks if isinstance(h, PathSamplingHook))
    sampler = hook._sampler
    if hasattr(sampler, "scheduler"):
        info["transitions"] = sampler.stage_scheduler.transitions
        info["round_s"] = sampler.last_log.get("round_s")
    return runner, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--strategies", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/raynas-strategies"))
    args = ap.parse_args()
    rows = {}
    paths = None
    for strategy in args.strategies:
        runner, info = train(strategy, args.iters, args.work)
        if paths is None:
            from mmseg_plugins import search_space

            space = search_space(runner.model)
            rng = np.random.default_rng(0)
            paths = {"largest": space.extreme(True), "smallest": space.extreme(False)}
            paths.update({f"random{i}": space.sample(rng) for i in range(3)})
        rows[strategy] = dict(info, mIoU=evaluate(runner, paths))
        print(strategy, json.dumps(rows[strategy]["mIoU"]), flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "strategies.json").write_text(json.dumps(dict(iters=args.iters, rows=rows), indent=2))
    names = list(paths)
    lines = [
        "| strategy | " + " | ".join(names) + " | mean | train s | s / iter |",
        "|---|" + "---|" * (len(names) + 3),
    ]
    for strategy, r in rows.items():
        vals = [r["mIoU"][n] for n in names]
        lines.append(
            f"| {strategy} | "
            + " | ".join(f"{v:.2f}" for v in vals)
            + f" | {np.mean(vals):.2f} | {r['train_s']:.0f} | {r['iter_s']:.3f} |"
        )
    md = (
        f"{args.iters} iterations, batch 8, 128x128, seed 0; val mIoU (%) after BN "
        "recalibration\n\n"
    )
    md += "\n".join(lines) + "\n"
    if "dps" in rows and rows["dps"].get("round_s"):
        r = rows["dps"]
        md += (
            f"\nDPS selection round (pool 32, 8 held-out images): {r['round_s']:.2f} s = "
            f"{r['round_s'] / r['iter_s']:.1f} training iterations; every 100 iterations "
            f"that is {r['round_s'] / (100 * r['iter_s']):.1%} extra time. Stage transitions: "
            + "; ".join(
                f"{t['src']}->{t['dst']} at {t['iteration']} ({t['reason']})"
                for t in r.get("transitions", [])
            )
            + "\n"
        )
    (OUT / "strategies.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
