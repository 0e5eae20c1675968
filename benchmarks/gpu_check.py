"""GPU check on a bare GPU machine (its own torch, no Ray, no network): the Cityscapes config
on a generated Cityscapes-layout fixture at full resolution, through mmengine's Runner.

1. supernet: ``--iters`` iterations of ``configs/cityscapes/realtime.py`` (512x1024 crops of
   1024x2048 images, batch 8, uniform sampling, bf16 on CUDA), time per iteration and peak memory;
2. search scoring: ``--candidates`` sampled paths, inherited mIoU at 1024x2048 (BN recalibrated);
3. retrain: the best of them as a static subnet, ``--retrain-iters`` iterations;
4. the largest path's training step in the supernet against its static subnet, fp32 and bf16:
   ms per step and peak memory (the ratios carry to other GPUs), beside ``raynas.memory``'s
   estimate of the same step;
5. latency at 1024x2048 of the largest, a mid-size and the smallest path, end to end and from
   the per-layer table, keyed by device, dtype and batch.

Run:  python -m benchmarks.gpu_check [--out DIR]     (benchmarks/gpu_check.sh on the GPU machine)
      python -m benchmarks.gpu_check --height 64 --iters 4 --retrain-iters 2   (CPU dry run)
Writes DIR/gpu_check.json and gpu_check.md (DIR: $OUT, else benchmarks/results).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmseg_plugins  # noqa: F401
from benchmarks.harness import RESULTS, ROOT, evaluate_paths, seed_everything, write
from mmseg_plugins.arch import build_subnet, search_space, set_arch
from mmseg_plugins.latency import LatencyTable, device_key, measure_latency
from raynas.config import load_config, mixed_precision, space_and_table
from raynas.data.layouts import write_layout
from raynas.data.synth import SynthSpec
from raynas.export import build_supernet, subnet_config
from raynas.memory import step_memory

CONFIG = ROOT / "configs/cityscapes/realtime.py"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


class _Clock(Hook):
    def __init__(self, device: torch.device) -> None:
        self.device, self.times, self.losses = device, [], []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        _sync(self.device)
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        _sync(self.device)
        self.times.append(time.perf_counter() - self.start)
        self.losses.append(float(outputs["loss"]))


def config(data: Path, height: int, iters: int, amp: str | None, work: Path) -> Config:
    """The shipped Cityscapes config on the fixture; below full resolution (``height`` < 1024)
    the crop and evaluation sizes shrink with it."""
    opts: dict[str, Any] = {"train_cfg.max_iters": iters, "train_cfg.val_interval": 10**6,
                            "default_hooks.checkpoint.interval": 10**6,
                            "default_hooks.logger.interval": 50}  # fmt: skip
    workers = min(8, os.cpu_count() or 1)
    for split in ("train", "val", "test"):
        opts[f"{split}_dataloader.dataset.data_root"] = str(data)
        opts[f"{split}_dataloader.num_workers"] = workers if split == "train" else 2
    if height < 1024:
        crop = (height // 2, height)
        opts.update({"model.data_preprocessor.size": crop,
                     "train_dataloader.dataset.pipeline.2.scale": (2 * height, height),
                     "train_dataloader.dataset.pipeline.3.crop_size": crop,
                     "val_dataloader.dataset.pipeline.1.scale": (2 * height, height),
                     "test_dataloader.dataset.pipeline.1.scale": (2 * height, height),
                     })  # fmt: skip
    cfg = load_config(CONFIG, opts)
    mixed_precision(cfg, amp)
    cfg.work_dir = str(work)
    return cfg


def train(cfg: Config, device: torch.device) -> tuple[Runner, dict[str, Any]]:
    """Trains ``cfg`` with mmengine's Runner; median ms per iteration after 10, peak memory."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    runner = Runner.from_cfg(cfg)
    clock = _Clock(device)
    runner.register_hook(clock)
    start = time.perf_counter()
    runner.train()
    return runner, dict(
        iters=len(clock.times), wall_s=time.perf_counter() - start,
        median_iter_ms=statistics.median(clock.times[min(10, len(clock.times) - 1):]) * 1e3,
        first_loss=clock.losses[0], last_loss=float(np.mean(clock.losses[-10:])),
        peak_mib=_peak_mib(device),
    )  # fmt: skip


def search(runner: Runner, cfg: Config, n: int) -> list[dict[str, Any]]:
    """Inherited mIoU and GFLOPs (at 1024x2048) of ``n`` sampled paths."""
    space, table = space_and_table(cfg)
    rng = np.random.default_rng(0)
    paths = {f"cand{i}": space.canonical(space.sample(rng)) for i in range(n)}
    start = time.perf_counter()
    scores = evaluate_paths(runner, paths)
    per = (time.perf_counter() - start) / n
    return [dict(name=k, arch=a, mIoU=scores[k], gflops=table(a).flops / 1e9, eval_s=per)
            for k, a in paths.items()]  # fmt: skip


def _step_ms(model: torch.nn.Module, x, y, amp: bool, steps: int) -> float:
    device = x.device
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    times = []
    for i in range(steps + 3):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model._forward(x)
            logits = torch.nn.functional.interpolate(logits, x.shape[-2:], mode="bilinear")
            loss = torch.nn.functional.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def step_ratio(cfg: Config, device: torch.device, steps: int) -> list[dict[str, Any]]:
    """The largest path's step, supernet vs static subnet, fp32 and bf16 (autocast)."""
    size, batch = tuple(cfg.model.data_preprocessor.size), cfg.train_dataloader.batch_size
    model = build_supernet(cfg).to(device)
    arch = search_space(model).extreme(True)
    set_arch(model, arch)
    sub = build_subnet(model, arch, cfg.model).to(device)
    x = torch.randn(batch, 3, *size, device=device)
    y = torch.randint(0, cfg.model.decode_head.num_classes, (batch, *size), device=device)
    rows = []
    for amp in (False, True):
        if amp and device.type != "cuda":
            continue  # bf16 autocast on CPU is not what a GPU does
        row: dict[str, Any] = dict(dtype="bf16" if amp else "fp32", batch=batch, size=size)
        for name, net in (("supernet", model), ("subnet", sub)):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            row[f"{name}_ms"] = _step_ms(net, x, y, amp, steps)
            row[f"{name}_peak_mib"] = _peak_mib(device)
        row["ratio"] = row["supernet_ms"] / row["subnet_ms"]
        row["estimate_mib"] = step_memory(cfg, amp="bf16" if amp else None).total_mib
        rows.append(row)
    return rows


def latency(cfg: Config, device: torch.device, runs: int) -> dict[str, Any]:
    """Latency at the evaluation size of three paths, end to end and from the layer table."""
    size = tuple(cfg.cost_input_size) if device.type == "cuda" else (64, 128)
    model = build_supernet(cfg).to(device).eval()
    space, table = space_and_table(cfg)
    pool = sorted((space.canonical(space.sample(np.random.default_rng(0))) for _ in range(50)),
                  key=lambda a: table(a).flops)  # fmt: skip
    paths = {"largest": space.extreme(True), "mid": pool[25], "smallest": space.extreme(False)}
    lut = LatencyTable(model.backbone.settings, size, runs=runs, device=device)
    rows = []
    for name, arch in paths.items():
        set_arch(model, arch)
        rows.append(dict(path=name, gflops=table(arch).flops / 1e9,
                         end_to_end_ms=measure_latency(model, size, runs=runs),
                         table_ms=lut.predict(arch, model)))  # fmt: skip
    return dict(key=device_key(device, torch.float32, 1), size=size, rows=rows)


def markdown(result: dict[str, Any]) -> str:
    s, r = result["supernet"], result["retrain"]
    lines = [f"device {result['device']}, torch {result['torch']}, fixture "
             f"{result['height']}x{2 * result['height']}", "",
             "| run | iters | wall s | median ms/iter | loss first -> last | peak MiB |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, t in (("supernet " + result["amp"], s), ("retrain " + result["amp"], r)):
        lines.append(f"| {name} | {t['iters']} | {t['wall_s']:.1f} | "
                     f"{t['median_iter_ms']:.1f} | {t['first_loss']:.3f} -> "
                     f"{t['last_loss']:.3f} | {t['peak_mib']} |")  # fmt: skip
    lines += ["", "| candidate | GFLOPs | inherited mIoU | s per candidate |", "|---|---|---|---|"]
    lines += [f"| {c['name']} | {c['gflops']:.2f} | {c['mIoU']:.2f} | {c['eval_s']:.1f} |"
              for c in result["search"]]  # fmt: skip
    lines += ["", "| largest path step | batch | supernet ms | subnet ms | ratio | supernet "
              "peak MiB | subnet peak MiB | raynas.memory estimate MiB |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {x['dtype']} | {x['batch']} | {x['supernet_ms']:.1f} | {x['subnet_ms']:.1f} | "
              f"{x['ratio']:.3f} | {x['supernet_peak_mib']} | {x['subnet_peak_mib']} | "
              f"{x['estimate_mib']:.0f} |" for x in result["step_ratio"]]  # fmt: skip
    lat = result["latency"]
    lines += ["", f"latency at {lat['size'][0]}x{lat['size'][1]}, key `{lat['key']}`", "",
              "| path | GFLOPs | end to end ms | table ms |", "|---|---|---|---|"]  # fmt: skip
    lines += [f"| {x['path']} | {x['gflops']:.2f} | {x['end_to_end_ms']:.2f} | "
              f"{x['table_ms']:.2f} |" for x in lat["rows"]]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--height", type=int, default=1024, help="fixture image height (x2 wide)")
    ap.add_argument("--images", type=int, default=24, help="training images of the fixture")
    ap.add_argument("--iters", type=int, default=300, help="supernet iterations")
    ap.add_argument("--retrain-iters", type=int, default=150)
    ap.add_argument("--candidates", type=int, default=4)
    ap.add_argument("--steps", type=int, default=10, help="timed steps of the step ratio")
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or RESULTS))
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = "bf16" if device.type == "cuda" else None
    seed_everything(0)
    result: dict[str, Any] = dict(
        device=torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
        torch=torch.__version__, height=args.height, amp=amp or "fp32")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        data = write_layout("cityscapes", Path(tmp) / "cs", SynthSpec(
            size=args.height, num_train=args.images, num_val=4))  # fmt: skip
        result["fixture_s"] = time.perf_counter() - start
        cfg = config(data, args.height, args.iters, amp, Path(tmp) / "supernet")
        runner, result["supernet"] = train(cfg, device)
        result["search"] = search(runner, cfg, args.candidates)
        best = max(result["search"], key=lambda c: c["mIoU"])
        sub = subnet_config(cfg, best["arch"])
        sub.train_cfg.max_iters, sub.work_dir = args.retrain_iters, str(Path(tmp) / "retrain")
        del runner
        _, result["retrain"] = train(sub, device)
        result["step_ratio"] = step_ratio(cfg, device, args.steps)
        result["latency"] = latency(cfg, device, runs=50 if device.type == "cuda" else 3)
    write("gpu_check", result, markdown(result), args.out)


if __name__ == "__main__":
    main()
