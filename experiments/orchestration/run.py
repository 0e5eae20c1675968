"""Orchestration benchmarks of the pipeline on this machine.

1. Runs the quickstart (configs/quickstart.py) and measures its orchestration overhead:
   (wall time - time during which at least one trial computed) / wall time, per phase and for
   the whole run (Ray start-up included).
2. Reruns the search phase alone from the quickstart's supernet with 1 and 2 concurrent trials
   and reports candidates per minute, for each period of Tune's experiment-state snapshot
   (``TUNE_GLOBAL_CHECKPOINT_S``; raynas sets 10 s, 1 s until round 2's last stop).

Run:  python -m experiments.orchestration.run [--storage /tmp/raynas-bench] [--candidates 24]
      [--reuse EXPERIMENT]  (only part 2, from a finished quickstart experiment's supernet)
      [--state-periods 1 10 auto]
Writes experiments/orchestration/results/orchestration.json and orchestration.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from benchmarks.harness import ROOT

OUT = Path(__file__).resolve().parent / "results"


def busy_seconds(phase_dir: Path) -> float:
    """Length of the union of the trials' compute intervals in a phase's Tune experiment."""
    intervals = []
    for log in phase_dir.glob("*/result.json"):
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        attempts: dict[int, dict] = {}
        for rec in lines:  # one interval per process (restored trials restart the clock)
            attempts[rec["pid"]] = rec
        for rec in attempts.values():
            intervals.append((rec["compute_end"] - rec["compute_s"], rec["compute_end"]))
    total, end = 0.0, float("-inf")
    for lo, hi in sorted(intervals):
        if hi > end:
            total += hi - max(lo, end)
            end = hi
    return total


def run_quickstart(storage: Path, options: dict) -> dict:
    from raynas.tune.pipeline import Pipeline

    start = time.time()
    pipe = Pipeline.create(ROOT / "configs/quickstart.py", str(storage), "quickstart", options)
    pipe.run()
    wall = time.time() - start
    exp = storage / "quickstart"
    phases = {}
    for name in ("supernet", "search", "retrain"):
        phase_wall = pipe.state["phases"][name]["wall_s"]
        busy = busy_seconds(exp / name)
        phases[name] = dict(
            wall_s=phase_wall, busy_s=busy, overhead=(phase_wall - busy) / phase_wall
        )
    busy = sum(p["busy_s"] for p in phases.values())
    return dict(
        wall_s=wall,
        busy_s=busy,
        overhead=(wall - busy) / wall,
        phases=phases,
        report_wall_s=pipe.state["phases"]["report"]["wall_s"],
        best=pipe.state["phases"]["retrain"]["best"],
        baselines=pipe.state["phases"]["report"]["baselines"],
    )


def search_throughput(
    storage: Path, quickstart: Path, concurrency: int, candidates: int, period: str
) -> dict:
    from raynas.tune.pipeline import Pipeline

    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = period  # read by each Tune run
    name = f"search-c{concurrency}-p{period}"
    opts = {
        "tune_cfg.search.max_concurrent": concurrency,
        "tune_cfg.search.num_candidates": candidates,
    }
    pipe = Pipeline.create(ROOT / "configs/quickstart.py", str(storage), name, opts)
    pipe.state["phases"]["supernet"] = json.loads((quickstart / "pipeline.json").read_text())[
        "phases"
    ]["supernet"]
    pipe.save()
    start = time.time()
    pipe.run(until="search")
    wall = time.time() - start
    return dict(
        concurrency=concurrency,
        candidates=candidates,
        state_period_s=period,
        wall_s=wall,
        candidates_per_min=candidates / wall * 60,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", type=Path, default=Path("/tmp/raynas-bench"))
    ap.add_argument("--candidates", type=int, default=24)
    ap.add_argument(
        "--reuse",
        type=Path,
        help="a finished quickstart experiment: measure only "
        "the search throughput from its supernet (the quickstart figures are kept)",
    )
    ap.add_argument("--state-periods", nargs="+", default=["1"],
                    help="TUNE_GLOBAL_CHECKPOINT_S values for part 2 (raynas: 10)")  # fmt: skip
    args = ap.parse_args()
    shutil.rmtree(args.storage, ignore_errors=True)
    if args.reuse:
        quick, source = (
            json.loads((OUT / "orchestration.json").read_text())["quickstart"],
            args.reuse,
        )
    else:
        quick, source = run_quickstart(args.storage, {}), args.storage / "quickstart"
    throughput = [
        search_throughput(args.storage, source, c, args.candidates, period)
        for period in args.state_periods
        for c in (1, 2)
    ]
    result = dict(quickstart=quick, search_throughput=throughput)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "orchestration.json").write_text(json.dumps(result, indent=2))
    print(write(result))


def write(result: dict) -> str:
    """orchestration.md from the results."""
    quick, throughput = result["quickstart"], result["search_throughput"]
    lines = ["| phase | wall s | trials computing s | overhead |", "|---|---|---|---|"]
    for name, p in quick["phases"].items():
        lines.append(f"| {name} | {p['wall_s']:.1f} | {p['busy_s']:.1f} | {p['overhead']:.1%} |")
    lines.append(
        f"| **whole quickstart** (Ray start, report included) | {quick['wall_s']:.1f} "
        f"| {quick['busy_s']:.1f} | **{quick['overhead']:.1%}** |"
    )
    lines += [
        "",
        "| experiment-state period s | concurrent search trials | candidates | wall s | "
        "candidates / min |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {t.get('state_period_s', '1')} | {t['concurrency']} | {t['candidates']} | "
        f"{t['wall_s']:.1f} | {t['candidates_per_min']:.1f} |"
        for t in throughput
    ]
    best = quick["best"]
    md = (
        f"Quickstart best subnet {best['name']}: mIoU {best.get('mIoU', best.get('miou')):.2f} at "
        f"{best['flops'] / 1e6:.1f} MFLOPs; majority-class baseline "
        f"{quick['baselines']['majority class']:.2f}.\n\n" + "\n".join(lines) + "\n"
    )
    (OUT / "orchestration.md").write_text(md)
    return md


if __name__ == "__main__":
    main()
