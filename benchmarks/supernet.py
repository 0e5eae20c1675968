"""Supernet benchmarks: training-step time of supernet-with-path vs the exported static subnet,
FLOPs-table speed against mmengine's analysis, and measured latency against the lookup table's
prediction (fixed part + layers).

Run:  python -m benchmarks.supernet [--steps 20] [--batch 8] [--size 128]
At a real resolution (a real-dataset config's space; step time and the tensors saved for
backward only, each path as the supernet trains it and as its static subnet):
      python -m benchmarks.supernet --config configs/cityscapes/realtime.py --size 512 1024
      --batch 1 2 --steps 3   (writes results/supernet-cityscapes-512x1024.{json,md})
Writes benchmarks/results/supernet.json and supernet.md and prints the table.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from mmengine.config import Config

from benchmarks.harness import ROOT, saved_tensor_mb, seed_everything, write
from mmseg_plugins.arch import build_subnet, search_space, set_arch
from mmseg_plugins.latency import LatencyTable, measure_latency
from raynas.core.complexity import PathComplexity
from raynas.export import build_supernet


def step_time(model, x, y, steps: int) -> float:
    """Median seconds of one SGD step (forward, CE loss, backward, update)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    times = []
    for i in range(steps + 3):
        start = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model._forward(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, nargs="+", default=[8])
    ap.add_argument("--size", type=int, nargs="+", default=[128], help="H [W]")
    ap.add_argument("--config", help="a pipeline config: its space at --size, speed and memory")
    args = ap.parse_args()
    if args.config:
        return real_resolution(args)
    seed_everything(0)
    cfg = Config.fromfile(str(ROOT / "configs/_base_/models/segsupernet.py"))
    model = build_supernet(cfg)
    space = search_space(model)
    rng = np.random.default_rng(0)
    paths = {"largest": space.extreme(True), "smallest": space.extreme(False)}
    paths.update({f"random{i}": space.sample(rng) for i in range(3)})
    size = (args.size[0], args.size[-1])
    batch = args.batch[0]
    x = torch.randn(batch, 3, *size)
    y = torch.randint(0, 8, (batch, size[0] // 8, size[1] // 8))
    table = PathComplexity.from_model_cfg(cfg.model, size)
    lut = LatencyTable(model.backbone.settings, size)
    rows = []
    for name, arch in paths.items():
        set_arch(model, arch)
        t_super = step_time(model, x, y, args.steps)
        sub = build_subnet(model, arch, cfg.model)
        t_sub = step_time(sub, x, y, args.steps)
        start = time.perf_counter()
        for _ in range(100):
            predicted = table(dict(arch))
        t_table = (time.perf_counter() - start) / 100 * 1e3
        start = time.perf_counter()
        measured = FlopAnalyzer(sub.eval(), (x[:1],)).unsupported_ops_warnings(False)
        measured = measured.uncalled_modules_warnings(False).total()
        t_mmengine = (time.perf_counter() - start) * 1e3
        start = time.perf_counter()
        latency = measure_latency(sub, size, warmup=5, runs=20)
        t_latency = (time.perf_counter() - start) * 1e3
        rows.append(
            dict(
                path=name,
                supernet_step_ms=t_super * 1e3,
                subnet_step_ms=t_sub * 1e3,
                ratio=t_super / t_sub,
                mflops=predicted.flops / 1e6,
                mflops_mmengine=measured / 1e6,
                params_k=predicted.params / 1e3,
                table_ms=t_table,
                mmengine_analysis_ms=t_mmengine,
                latency_ms=latency,
                latency_lut_layers_ms=lut.layers(arch),
                latency_lut_ms=lut.predict(arch, model),
                latency_measure_ms=t_latency,
            )
        )
    result = dict(
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        batch=batch,
        input=size,
        steps=args.steps,
        rows=rows,
        max_ratio=max(r["ratio"] for r in rows),
    )
    head = (
        "| path | supernet step ms | subnet step ms | ratio | MFLOPs (table) | MFLOPs "
        "(mmengine) | params k | table ms/arch | mmengine ms/arch | latency ms | "
        "LUT layers ms | LUT predicted ms | LUT error |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        lines.append(
            f"| {r['path']} | {r['supernet_step_ms']:.1f} | {r['subnet_step_ms']:.1f} | "
            f"{r['ratio']:.3f} | {r['mflops']:.1f} | {r['mflops_mmengine']:.1f} | "
            f"{r['params_k']:.1f} | {r['table_ms']:.3f} | {r['mmengine_analysis_ms']:.0f} | "
            f"{r['latency_ms']:.2f} | {r['latency_lut_layers_ms']:.2f} | "
            f"{r['latency_lut_ms']:.2f} | {r['latency_lut_ms'] / r['latency_ms'] - 1:+.1%} |"
        )
    md = (
        f"batch {batch}, input {size}, {torch.get_num_threads()} threads, torch "
        f"{torch.__version__}; max supernet/subnet step ratio {result['max_ratio']:.3f}\n\n"
        + "\n".join(lines)
    )
    write("supernet", result, md)


def real_resolution(args: argparse.Namespace) -> None:
    """Seconds per training step and MiB saved for backward of the largest, a mid-size and the
    smallest path of a config's space at ``--size``, in the supernet and as a static subnet."""
    from raynas.config import load_config, space_and_table

    seed_everything(0)
    cfg = load_config(ROOT / args.config)
    model = build_supernet(cfg)
    space, table = space_and_table(cfg)
    size = (args.size[0], args.size[-1])
    pool = sorted((space.canonical(space.sample(np.random.default_rng(0))) for _ in range(200)),
                  key=lambda a: table(a).flops)  # fmt: skip
    paths = {"largest": space.extreme(True), "mid": pool[len(pool) // 2],
             "smallest": space.extreme(False)}  # fmt: skip
    classes = cfg.model.decode_head.num_classes
    rows = []
    for batch in args.batch:
        x = torch.randn(batch, 3, *size)
        for name, arch in paths.items():
            set_arch(model, arch)
            sub = build_subnet(model, arch, cfg.model).eval()
            with torch.no_grad():  # the logits' size: 1/8, or 1/4 with the detail branch
                hw = sub._forward(x[:1]).shape[2:]
            y = torch.randint(0, classes, (batch, *hw))
            row = dict(path=name, batch=batch, gflops=table(arch).flops / 1e9)
            for kind, net in (("supernet", model), ("subnet", sub)):
                net.train()
                row[f"{kind}_mb"] = saved_tensor_mb(
                    lambda n=net, x=x, y=y: F.cross_entropy(n._forward(x), y).backward()
                )
                row[f"{kind}_s"] = step_time(net, x, y, args.steps)
            rows.append(row)
            print(row, flush=True)
    at = "x".join(map(str, table.input_size))
    lines = [f"{args.config}: one training step (forward, cross-entropy, backward, SGD update) "
             f"at {size[0]}x{size[1]}, {torch.get_num_threads()} CPU threads, median of "
             f"{args.steps}; MiB of tensors saved for backward (the activations a GPU holds at "
             f"the step's peak, besides weights, gradients and optimizer state); GFLOPs at {at}.",
             "", "| path | batch | GFLOPs | supernet s/step | subnet s/step | supernet MiB | "
             "subnet MiB |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {r['path']} | {r['batch']} | {r['gflops']:.2f} | {r['supernet_s']:.2f} | "
              f"{r['subnet_s']:.2f} | {r['supernet_mb']:.0f} | {r['subnet_mb']:.0f} |"
              for r in rows]  # fmt: skip
    name = f"supernet-{Path(args.config).parent.name}-{size[0]}x{size[1]}"
    write(name, dict(config=args.config, input=size, steps=args.steps, rows=rows),
          "\n".join(lines))  # fmt: skip


if __name__ == "__main__":
    main()
