"""Seconds per training iteration under the step's speed settings, one added at a time.

The settings: torch's multi-tensor kernels for the optimizer step and the gradient clipping
(``AdamW(fused=True)``, ``clip_grad=dict(foreach=True)``; on CPU torch otherwise loops over
the parameters one at a time, a few small operators each), and the model in channels-last
memory format (``ChannelsLastHook``). Trains, with the real mmengine Runner on the embedded
dataset, the quickstart's supernet (its uniform path sampling) and one mid-size path of its
space as a plain mmseg model, --iters iterations per setting, the settings alternating
--rounds times in one process; reports the median seconds per iteration after a warm-up
(timed between consecutive iterations, so data loading and the optimizer step count) and the
ratio to the first setting. torch runs --threads threads with OpenMP's spin-wait shortened, as
in raynas' Ray workers.

Run:  python -m experiments.step_speed.run [--iters 60 --rounds 2 --threads 2]
Writes experiments/step_speed/results/step_speed.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from benchmarks.harness import ROOT

OUT = Path(__file__).resolve().parent / "results"
QUICKSTART = ROOT / "configs" / "quickstart.py"
WARMUP = 10
SETTINGS = {  # label -> (fused AdamW + foreach clipping, channels-last)
    "per-parameter AdamW and clipping": (False, False),
    "fused AdamW, foreach clipping": (True, False),
    "fused AdamW, foreach clipping, channels-last": (True, True),
}


def configs() -> dict[str, Any]:
    """The quickstart's supernet config and one of its mid-size paths as a plain mmseg model."""
    from experiments.recipes.run import mid_path
    from raynas.config import load_config, space_and_table
    from raynas.export import subnet_config

    cfg = load_config(QUICKSTART)
    arch = mid_path(*space_and_table(cfg))
    return {"supernet (uniform paths)": cfg, "mid path, plain mmseg": subnet_config(cfg, arch)}


def seconds_per_iter(cfg: Any, iters: int, fused: bool, channels_last: bool) -> float:
    """Median seconds between training iterations after the warm-up."""
    from mmengine.hooks import Hook
    from mmengine.runner import Runner

    stamps: list[float] = []

    class Stamp(Hook):
        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                             outputs: Any = None) -> None:  # fmt: skip
            stamps.append(time.perf_counter())

    cfg = cfg.copy()
    cfg.work_dir = tempfile.mkdtemp(prefix="raynas-bench-step-")
    cfg.train_cfg.max_iters, cfg.train_cfg.val_interval = iters, iters + 1
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=iters + 1, by_epoch=False)
    cfg.default_hooks.logger = dict(type="LoggerHook", interval=iters + 1)
    cfg.param_scheduler = []
    cfg.optim_wrapper.optimizer.fused = fused
    cfg.optim_wrapper.clip_grad.foreach = fused
    if channels_last:
        cfg.default_hooks.memory_format = dict(type="ChannelsLastHook")
    cfg.log_level = "WARNING"
    runner = Runner.from_cfg(cfg)
    runner.register_hook(Stamp())
    runner.train()
    gaps = [b - a for a, b in zip(stamps[WARMUP:], stamps[WARMUP + 1 :])]
    return statistics.median(gaps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = {}
    for name, cfg in configs().items():
        runs: dict[str, list[float]] = {label: [] for label in SETTINGS}
        for _ in range(args.rounds):
            for label, (fused, cl) in SETTINGS.items():
                runs[label].append(seconds_per_iter(cfg, args.iters, fused, cl))
                print(f"{name}, {label}: {runs[label][-1]:.4f} s/it", flush=True)
        rows[name] = {label: statistics.median(t) for label, t in runs.items()}
        rows[name]["runs"] = runs
    write(rows, vars(args))


def write(rows: dict, args: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "step_speed.json").write_text(json.dumps({"args": args, "rows": rows}, indent=1))
    first = next(iter(SETTINGS))
    lines = [
        "# Training step speed settings (`experiments/step_speed/run.py`)",
        "",
        f"{args['iters']} iterations per setting, {args['rounds']} alternating rounds, "
        f"{args['threads']} threads; median seconds per iteration after {WARMUP} warm-up ones "
        f"(ratio to the first setting).",
        "",
        "| model | " + " | ".join(SETTINGS) + " |",
        "|---|" + "---|" * len(SETTINGS),
    ]
    for name, r in rows.items():
        cells = [f"{r[label]:.4f} ({r[label] / r[first]:.2f})" for label in SETTINGS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    (OUT / "step_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
