"""Supernet training speed in a Ray trial, on an idle machine and with one busy process beside it.

PyTorch's CPU wheels use libgomp, whose threads spin while they wait at a barrier. When a
process outside the trial takes one of the cores a 2-thread trial uses, the spinning thread
keeps the working one off its core; without the spinning, every barrier waits for a thread to
wake up, and a step of many small operators can be slower on 2 threads than on one. This runs
the quickstart's supernet phase (2 CPUs reserved) for a fixed time under each OpenMP setting
(passed to the Ray workers through ``tune_cfg.ray.env_vars``) and torch thread count
(``tune_cfg.supernet.resources.threads``: 2, 1, or ``'auto'``, the faster of the two measured
when the trial starts) and reports the median seconds per training iteration from mmengine's
log.

Run:  python -m experiments.openmp.run [--seconds 75] [--storage /tmp/raynas-bench-openmp]
Writes experiments/openmp/results/openmp.json and openmp.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.harness import ROOT

OUT = Path(__file__).resolve().parent / "results"
SETTINGS = {  # label -> (OpenMP variables, torch threads)
    "libgomp default (spin), 2 threads": ({"GOMP_SPINCOUNT": None}, 2),
    "GOMP_SPINCOUNT=1000 (raynas default), 2 threads": ({}, 2),
    "OMP_WAIT_POLICY=PASSIVE, 2 threads": (
        {"GOMP_SPINCOUNT": None, "OMP_WAIT_POLICY": "PASSIVE"},
        2,
    ),
    "GOMP_SPINCOUNT=1000, 1 thread": ({}, 1),
    "GOMP_SPINCOUNT=1000, threads='auto' (raynas default)": ({}, "auto"),
}
OMP_VARS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "KMP_BLOCKTIME")


def busy_process(seconds: float) -> subprocess.Popen:
    code = f"import time\nt = time.time()\nwhile time.time() - t < {seconds}: pass"
    return subprocess.Popen([sys.executable, "-c", code])


def run_supernet(
    storage: Path, name: str, env_vars: dict, threads: int | str, seconds: float
) -> list[tuple[int, float]]:
    """Runs the quickstart for ``seconds``; returns the logged (iteration, seconds) pairs."""
    opts = [f"tune_cfg.ray.env_vars.{k}={v}" for k, v in env_vars.items()]
    opts.append(f"tune_cfg.supernet.resources.threads={threads}")
    env = {k: v for k, v in os.environ.items() if k not in OMP_VARS}
    cmd = [sys.executable, "-m", "raynas.cli", "run", str(ROOT / "configs/quickstart.py")]
    cmd += ["--storage", str(storage), "--name", name]
    cmd += ["--cfg-options", "tune_cfg.supernet.iters=5000", *opts]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL
    )
    time.sleep(seconds)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    times = []
    for log in (storage / name / "supernet").glob("*/work/*/vis_data/scalars.json"):
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            if "iter" in rec and "time" in rec:
                times.append((rec["iter"], rec["time"]))
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=75.0)
    ap.add_argument("--storage", type=Path, default=Path("/tmp/raynas-bench-openmp"))
    args = ap.parse_args()
    shutil.rmtree(args.storage, ignore_errors=True)
    rows = []
    for busy in (0, 1):
        for label, (env_vars, threads) in SETTINGS.items():
            hogs = [busy_process(args.seconds + 5) for _ in range(busy)]
            name = f"busy{busy}-{len(rows)}"
            logged = run_supernet(args.storage, name, env_vars, threads, args.seconds)
            for h in hogs:
                h.kill()
            rows.append(
                dict(
                    setting=label,
                    busy_processes=busy,
                    iters_reached=max((i for i, _ in logged), default=0),
                    s_per_iter=statistics.median(t for _, t in logged) if logged else None,
                )
            )
            print(rows[-1], flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "openmp.json").write_text(json.dumps(rows, indent=2))
    lines = [
        f"Quickstart supernet trial (2 CPUs reserved), {args.seconds:.0f} s per run, "
        f"{os.cpu_count()} cores; median s/iteration over mmengine's logged iterations.",
        "",
        "| OpenMP setting | busy processes | iterations reached | s / iteration |",
        "|---|---|---|---|",
    ]
    for r in rows:
        s = f"{r['s_per_iter']:.3f}" if r["s_per_iter"] is not None else "n/a"
        lines.append(f"| {r['setting']} | {r['busy_processes']} | {r['iters_reached']} | {s} |")
    md = "\n".join(lines) + "\n"
    (OUT / "openmp.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
