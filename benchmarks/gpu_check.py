"""GPU check (for the day a GPU machine is lent, maybe for minutes): a 200-iteration supernet
trial with the mmengine Runner on CUDA in fp32 and bf16, and the supernet-vs-static-subnet
training-step ratio on CUDA.

Run:  python -m benchmarks.gpu_check [--iters 200] [--out DIR]   (benchmarks/gpu_check.sh)
Writes DIR/gpu_check.json and gpu_check.md (DIR: $OUT, else benchmarks/results).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner

import mmseg_plugins  # noqa: F401
from benchmarks.harness import RESULTS, ROOT, write
from mmseg_plugins.arch import build_subnet, search_space, set_arch
from raynas.config import load_config
from raynas.data.synth import SynthSpec, generate
from raynas.export import build_supernet

CONFIG = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


class _Clock(Hook):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.losses: list[float] = []

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        torch.cuda.synchronize()
        self.start = time.perf_counter()

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.start)
        self.losses.append(float(outputs["loss"]))


def trial(data: Path, iters: int, dtype: str, work: Path) -> dict:
    """One supernet training run on CUDA (uniform sampling), timed per iteration."""
    synth = None
    opts = {f"{s}_dataloader.dataset.{k}": v for s in ("train", "val", "test")
            for k, v in (("data_root", str(data)), ("synth", synth))}  # fmt: skip
    cfg = load_config(CONFIG, {**opts, "train_cfg.max_iters": iters,
                               "train_cfg.val_interval": iters})  # fmt: skip
    if dtype == "bf16":
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.dtype = "bfloat16"
    cfg.work_dir = str(work / dtype)
    cfg.default_hooks.checkpoint.interval = iters
    runner = Runner.from_cfg(cfg)
    clock = _Clock()
    runner.register_hook(clock)
    start = time.perf_counter()
    runner.train()
    wall = time.perf_counter() - start
    return dict(
        dtype=dtype,
        iters=iters,
        wall_s=wall,
        median_iter_ms=float(np.median(clock.times[10:]) * 1e3),
        first_loss=clock.losses[0],
        last_loss=float(np.mean(clock.losses[-10:])),
        peak_mem_mib=torch.cuda.max_memory_allocated() / 2**20,
    )


def step_ratio(steps: int = 20, batch: int = 16, size: int = 256) -> list[dict]:
    """Median CUDA step time of supernet paths vs their exported static subnets."""
    from benchmarks.supernet import step_time

    cfg = Config.fromfile(str(ROOT / "configs/_base_/models/segsupernet.py"))
    model = build_supernet(cfg).cuda()
    space = search_space(model)
    paths = {"largest": space.extreme(True), "smallest": space.extreme(False)}
    paths["random0"] = space.sample(np.random.default_rng(0))
    x = torch.randn(batch, 3, size, size, device="cuda")
    y = torch.randint(0, 8, (batch, size // 8, size // 8), device="cuda")
    rows = []
    for name, arch in paths.items():
        set_arch(model, arch)
        t_super = _synced(step_time, model, x, y, steps)
        t_sub = _synced(step_time, build_subnet(model, arch, cfg.model), x, y, steps)
        rows.append(dict(path=name, supernet_ms=t_super * 1e3, subnet_ms=t_sub * 1e3,
                         ratio=t_super / t_sub))  # fmt: skip
    return rows


def _synced(fn, *args):
    torch.cuda.synchronize()
    return fn(*args)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or RESULTS))
    args = ap.parse_args()
    assert torch.cuda.is_available(), "no CUDA device visible"
    with tempfile.TemporaryDirectory() as tmp:
        data = generate(Path(tmp) / "synthseg", SynthSpec(num_train=400, num_val=50))
        trials = [trial(data, args.iters, d, Path(tmp)) for d in ("fp32", "bf16")]
    result = dict(device=torch.cuda.get_device_name(0), torch=torch.__version__,
                  trials=trials, step_ratio=step_ratio())  # fmt: skip
    lines = [f"device {result['device']}, torch {result['torch']}", "",
             "| dtype | iters | wall s | median ms/iter | loss first -> last | peak MiB |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {t['dtype']} | {t['iters']} | {t['wall_s']:.1f} | {t['median_iter_ms']:.1f} | "
              f"{t['first_loss']:.3f} -> {t['last_loss']:.3f} | {t['peak_mem_mib']:.0f} |"
              for t in trials]  # fmt: skip
    lines += ["", "| path | supernet step ms | subnet step ms | ratio |", "|---|---|---|---|"]
    lines += [f"| {r['path']} | {r['supernet_ms']:.2f} | {r['subnet_ms']:.2f} | {r['ratio']:.3f} |"
              for r in result["step_ratio"]]  # fmt: skip
    write("gpu_check", result, "\n".join(lines), args.out)


if __name__ == "__main__":
    main()
