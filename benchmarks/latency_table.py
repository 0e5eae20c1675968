"""The latency lookup table against measured latency of exported subnets across the space.

24 paths stratified over the FLOPs range (fixed seed) are exported as static subnets and
timed end to end (batch 1, median of 30 runs); the table (fixed part + layers, measured on the
same device in the same process) predicts each. Reports the error spread and how well the
table ranks the paths (Spearman), which is what a latency-constrained search needs.

Run:  python -m benchmarks.latency_table [--paths 24] [--size 128]
Writes benchmarks/results/latency_table.json and latency_table.md and prints the table.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from mmengine.config import Config
from scipy.stats import spearmanr

import mmseg_plugins  # noqa: F401
from benchmarks.harness import ROOT, seed_everything, write
from mmseg_plugins.arch import build_subnet, search_space
from mmseg_plugins.latency import LatencyTable, device_key, measure_latency
from raynas.core.complexity import PathComplexity
from raynas.export import build_supernet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paths", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()
    seed_everything(0)
    cfg = Config.fromfile(str(ROOT / "configs/_base_/models/segsupernet.py"))
    model = build_supernet(cfg).eval()
    space = search_space(model)
    size = (args.size, args.size)
    table = PathComplexity.from_model_cfg(cfg.model, size)
    rng = np.random.default_rng(0)
    pool = [space.canonical(space.sample(rng)) for _ in range(2000)]
    pool += [space.extreme(False), space.extreme(True)]
    pool.sort(key=lambda a: table(a).flops)
    picks = [pool[round(i)] for i in np.linspace(0, len(pool) - 1, args.paths)]
    lut = LatencyTable(model.backbone.settings, size, runs=30)
    start = time.time()
    rows = []
    for arch in picks:
        predicted = lut.predict(arch, model)
        sub = build_subnet(model, arch, cfg.model).eval()
        measured = measure_latency(sub, size, warmup=5, runs=30)
        rows.append(dict(mflops=table(arch).flops / 1e6, measured_ms=measured,
                         predicted_ms=predicted, error=predicted / measured - 1))  # fmt: skip
    err = np.array([r["error"] for r in rows])
    rho = spearmanr([r["measured_ms"] for r in rows], [r["predicted_ms"] for r in rows])[0]
    result = dict(
        device=device_key("cpu"), input=size, paths=len(rows), wall_s=time.time() - start,
        table_entries=len(lut.entries), median_abs_error=float(np.median(np.abs(err))),
        p90_abs_error=float(np.quantile(np.abs(err), 0.9)), min_error=float(err.min()),
        max_error=float(err.max()), spearman=float(rho), rows=rows,
    )  # fmt: skip
    lines = [
        f"{result['device']}, input {size[0]}x{size[1]}, batch 1; {len(rows)} paths stratified "
        f"by FLOPs; table of {len(lut.entries)} entries",
        "",
        "| median abs error | p90 abs error | min error | max error | Spearman (ranking) |",
        "|---|---|---|---|---|",
        f"| {result['median_abs_error']:.1%} | {result['p90_abs_error']:.1%} | "
        f"{result['min_error']:+.1%} | {result['max_error']:+.1%} | {rho:.3f} |",
        "",
        "| MFLOPs | measured ms | predicted ms | error |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['mflops']:.1f} | {r['measured_ms']:.2f} | {r['predicted_ms']:.2f} | "
              f"{r['error']:+.1%} |" for r in rows]  # fmt: skip
    write("latency_table", result, "\n".join(lines))


if __name__ == "__main__":
    main()
