"""The SSR part of the report: alpha entropy, candidates left and the discretisation gap
(relaxed supernet mIoU against the derived architecture's, inherited weights, BN recalibrated)
over each SSR trial's shrink steps, read from the archive's ``search`` rows."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

from raynas.core.ssr import decision_type

__all__ = ["plot_ssr", "ssr_markdown", "ssr_steps"]

_ENTROPIES = ("entropy_ops", "entropy_depth", "entropy_widths", "entropy_head")


def ssr_steps(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per SSR shrink step: trial, iteration, entropies, candidates, mIoUs."""
    rows = frame[(frame["phase"] == "search") & frame["proxies"].notna()]
    out = []
    for r in rows.itertuples():
        p = json.loads(r.proxies)
        if "candidates_left" not in p:
            continue
        it = p.pop("iter", r.iteration)  # the Runner's iteration (older rows: Tune's report)
        out.append(dict(trial_id=r.trial_id, iteration=int(it), derived_mIoU=r.mIoU,
                        flops=r.flops, final=r.path == "candidate", **p))  # fmt: skip
    cols = ["trial_id", "iteration", "derived_mIoU", "flops", "final"]
    return pd.DataFrame(out, columns=None if out else cols).sort_values(["trial_id", "iteration"])


def plot_ssr(frame: pd.DataFrame, path: str | Path) -> Path | None:
    """Three panels per run of SSR: mean normalised entropy per decision type, candidates left,
    relaxed and derived mIoU (the gap between them is the discretisation gap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raynas.report import _save

    steps = ssr_steps(frame)
    if steps.empty:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=110)
    for n, (trial, t) in enumerate(steps.groupby("trial_id")):
        color = f"C{n % 10}"
        for style, col in zip(("-", "--", ":", "-."), _ENTROPIES):
            if col in t:
                axes[0].plot(t["iteration"], t[col], style, color=color,
                             label=f"{trial} {col[8:]}")  # fmt: skip
        axes[1].plot(t["iteration"], t["candidates_left"], color=color, label=trial)
        axes[2].plot(t["iteration"], t["derived_mIoU"], color=color, label=f"{trial} derived")
        if "relaxed_mIoU" in t:
            axes[2].plot(t["iteration"], t["relaxed_mIoU"], "--", color=color,
                         label=f"{trial} relaxed")  # fmt: skip
    titles = ("alpha entropy (1 uniform, 0 one-hot)", "candidates left",
              "selection mIoU: relaxed vs derived")  # fmt: skip
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    return _save(fig, path)


def ssr_markdown(frame: pd.DataFrame) -> str:
    """The final step of each SSR run: target, cost, candidates, relaxed/derived mIoU."""
    steps = ssr_steps(frame)
    if steps.empty:
        return ""
    lines = ["| trial | target | iterations | rows decided (all by iter) | candidates left | "
             "expected MFLOPs | derived MFLOPs | relaxed mIoU | derived mIoU | gap |",
             "|---" * 10 + "|"]  # fmt: skip
    decisions = []
    for trial, t in steps.groupby("trial_id"):
        r = t.iloc[-1]
        if d := _decisions(trial, r):
            decisions.append(d)
        target = _target(r)
        relaxed = r.get("relaxed_mIoU")
        has_relaxed = relaxed is not None and relaxed == relaxed
        gap = f"{relaxed - r['derived_mIoU']:.2f}" if has_relaxed else "-"
        lines.append(f"| {r['trial_id']} | {target} | {r['iteration']} | {_decided(r)} | "
                     f"{int(r['candidates_left'])} | {r['expected_mflops']:.1f} | "
                     f"{r['flops'] / 1e6:.1f} | {f'{relaxed:.2f}' if has_relaxed else '-'} | "
                     f"{r['derived_mIoU']:.2f} | {gap} |")  # fmt: skip
    return "\n".join(lines + (["", *decisions] if decisions else [])) + "\n"


def _decisions(trial: str, row: pd.Series) -> str:
    """When the rows of one SSR run were decided: per iteration, the rows by decision type."""
    at = row.get("decided_at")
    if not isinstance(at, dict) or not at:
        return ""
    by_iter: dict[int, Counter] = {}
    for label, it in at.items():
        by_iter.setdefault(int(it), Counter())[decision_type(label)] += 1
    steps = "; ".join(f"{it}: " + ", ".join(f"{n} {t}" for t, n in sorted(c.items()))
                      for it, c in sorted(by_iter.items()))  # fmt: skip
    return f"- {trial}: rows decided at iteration {steps}"


def _target(row: pd.Series) -> str:
    """The SSR run's cost target, in its unit ('-': none)."""
    ms, flops = row.get("target_latency_ms"), row.get("target_flops")
    if ms is not None and ms == ms:  # NaN: another trial's key
        return f"{ms:.2f} ms"
    if flops is not None and flops == flops:
        return f"{flops / 1e6:.0f} MFLOPs"
    return "-"


def _decided(row: pd.Series) -> str:
    """'decided/rows (by iteration)' from the step's proxies ('-': an older archive)."""
    rows, at = row.get("rows"), row.get("decided_at")
    if rows is None or rows != rows or not isinstance(at, dict):
        return "-"
    by = f" (by {max(at.values())})" if at and len(at) == int(rows) else ""
    return f"{len(at)}/{int(rows)}{by}"
