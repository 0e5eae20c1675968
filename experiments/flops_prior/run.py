"""A FLOPs prior: does blending the supernet's ranking with "bigger is better" rank better?

Against the 2400-iteration yardstick, ranking the 16 architectures of ``ranking.py`` by FLOPs
alone (tau 0.52) beats every supernet (0.33-0.49), while against the 1200-iteration one the
supernets lead (0.53 against 0.23). This benchmark scores each architecture by the mean of two
ranks, its inherited mIoU's and its FLOPs' (equal weights, fixed before looking: nothing here is
tuned on the yardsticks), and judges the blend as ``ranking.py`` judges the supernets: Kendall
tau against both stand-alone yardsticks, per supernet seed, and the stand-alone mIoU (2400
iterations, mean of 2 seeds) of the architecture each ranking would pick, without a cost limit
and under 80 and 50 MFLOPs, against simply taking the largest allowed architecture.

Nothing is trained: the supernets' stored inherited scores are read from
``benchmarks/data/ranking-input-sized-2400.json`` (every supernet row of the ranking runs,
1200-7200 iterations) and the yardsticks from it and ``ranking-input-sized.json``. The same
blend is then checked on the other sets of 16 architectures the ranking runs measured (the full
space, ``ranking.json``, ``ranking-3600.json``, ``ranking-dps-calr.json``; the space without
dilation, ``ranking-dilation1.json``), tau against their own 1200-iteration yardsticks; where a
file has no FLOPs row, the architectures' order is their FLOPs order (``ranking.architectures``
sorts them).

Run:  python -m experiments.flops_prior.run  (seconds); writes
experiments/flops_prior/results/flops-prior.{json,md} and prints the table.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy.stats import rankdata

from benchmarks import harness
from experiments.averaging import run as averaging
from experiments.ranking_variants import run as ranking

OUT = Path(__file__).resolve().parent / "results"
FLOPS = "flops (bigger ranks higher, no training)"
# snapshots of the ranking runs (ranking-full-snapshot.json: that folder's ranking.json)
VARIANTS = Path(__file__).resolve().parents[1] / "ranking_variants" / "results"
HELD_OUT = ("ranking-full-snapshot.json", "ranking-3600.json", "ranking-dps-calr.json",
            "ranking-dilation1.json")  # fmt: skip
LIMITS = {"no limit": np.inf, "80 MFLOPs": 80e6, "50 MFLOPs": 50e6}


def blend(inherited: list[float], flops: list[float]) -> np.ndarray:
    """The mean of the inherited score's rank and the FLOPs' rank (higher is better)."""
    return (rankdata(inherited) + rankdata(flops)) / 2


def pick(score: np.ndarray, flops: np.ndarray, limit: float) -> int:
    """Index of the best-scored architecture whose FLOPs are within ``limit``."""
    allowed = np.flatnonzero(flops <= limit)
    return int(allowed[np.argmax(score[allowed])])


def judge(runs: list[list[float]], flops: np.ndarray, truths: dict[str, list[float]]) -> dict:
    """Tau per seed against each yardstick and, given the 2400-iteration one, its stand-alone
    mIoU of each seed's pick under each limit; for the inherited scores and their blend."""
    out: dict = {}
    for name, score in (
        ("inherited", lambda r: np.asarray(r)),
        ("blend", lambda r: blend(r, flops)),
    ):
        got = {f"tau vs {y}": [ranking.agreement(score(r), t)["tau"] for r in runs]
               for y, t in truths.items()}  # fmt: skip
        for limit, cap in LIMITS.items() if "2400" in truths else ():
            got[f"pick, {limit}"] = [truths["2400"][pick(score(r), flops, cap)] for r in runs]
        out[name] = got
    return out


def table(results: dict, truths: dict[str, list[float]], flops: np.ndarray) -> str:
    """Markdown: per supernet row, seed means of plain and blended figures."""
    cols = list(next(iter(results.values()))["inherited"])
    lines = [
        "| supernet (iterations) | seeds | "
        + " | ".join(f"{c}: inherited / blend" for c in cols)
        + " |",
        "|---|---|" + "---|" * len(cols),
    ]
    for row, got in results.items():
        cells = [
            " / ".join(f"{np.mean(got[k][c]):.{3 if c.startswith('tau') else 2}f}" for k in got)
            for c in cols
        ]
        seeds = len(got["inherited"][cols[0]])
        lines.append(f"| {row} | {seeds} | " + " | ".join(cells) + " |")
    taus = [f"{ranking.agreement(flops, t)['tau']:.3f}" for t in truths.values()]
    largest = [f"{truths['2400'][pick(flops, flops, cap)]:.2f}" for cap in LIMITS.values()]
    lines.append("| FLOPs alone (no training) | - | " + " | ".join(taus + largest) + " |")
    return "\n".join(lines) + "\n"


def held_out() -> str:
    """Markdown: tau of the inherited scores and of their blend on the other sets of 16."""
    lines = [
        "| architectures | supernet (iterations) | seeds | tau: inherited / blend | FLOPs alone |",
        "|---|---|---|---|---|",
    ]
    for name in HELD_OUT:
        stored = json.loads((VARIANTS / name).read_text())
        truth, rows = stored["standalone"], stored["rows"]
        flops = rows[FLOPS][0]["inherited"] if FLOPS in rows else list(range(len(truth)))
        for row, runs in rows.items():
            if len(runs) < 2 or " -" in row:
                continue
            got = judge([r["inherited"] for r in runs], np.asarray(flops), {"1200": truth})
            taus = [np.mean(got[k]["tau vs 1200"]) for k in ("inherited", "blend")]
            lines.append(
                f"| {name} | {row} @ {stored['args']['iters']} | {len(runs)} | "
                f"{taus[0]:.3f} / {taus[1]:.3f} | {ranking.agreement(flops, truth)['tau']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    stored = json.loads(averaging.YARDSTICKS["2400"].read_text())
    truths = {y: averaging._truth(y) for y in averaging.YARDSTICKS}
    flops = np.asarray(stored["rows"][FLOPS][0]["inherited"])
    results = {
        name: judge([r["inherited"] for r in runs], flops, truths)
        for name, runs in stored["rows"].items()
        if len(runs) >= 2 and " -" not in name
    }
    md = (
        "A FLOPs prior (`experiments/flops_prior/run.py`): each architecture scored by the mean "
        "of its inherited-mIoU rank and its FLOPs rank (equal weights, not tuned), against the "
        "inherited score alone. Seed means of Kendall tau against each stand-alone yardstick "
        "(1200 and 2400 iterations) and of the 2400-iteration stand-alone val mIoU of the "
        "architecture each picks (best of the 16: 61.26). The last row ranks by FLOPs alone "
        "and picks the largest allowed architecture.\n\n"
        + table(results, truths, flops)
        + "\nThe same blend on the other sets of 16 architectures (tau against their own "
        "1200-iteration yardsticks, seed means):\n\n" + held_out()
    )
    harness.write("flops-prior", results, md, OUT)


if __name__ == "__main__":
    main()
