"""Pipeline report from the results archive: Pareto plot (PNG) and markdown tables."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from raynas.core.pareto import crowding_distance, pareto_mask

__all__ = [
    "majority_miou",
    "pareto_front",
    "plot_pareto",
    "plot_vs_baselines",
    "select_top_k",
    "summary_markdown",
    "vs_baselines_markdown",
]


def pareto_front(frame: pd.DataFrame) -> pd.DataFrame:
    """Feasible rows not dominated in (max mIoU, min FLOPs), sorted by FLOPs."""
    ok = frame[frame["feasible"] & frame["mIoU"].notna()]
    if ok.empty:
        return ok
    mask = pareto_mask(np.stack([-ok["mIoU"].to_numpy(), ok["flops"].to_numpy()], 1))
    return ok[mask].sort_values("flops")


def select_top_k(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """``k`` Pareto rows spread over the cost range (crowding distance; the best mIoU first),
    one per architecture, or per function when the frame has a ``function`` column (paths
    that differ only in degenerate choices compute the same network)."""
    front = pareto_front(frame)
    front = front.drop_duplicates("function" if "function" in front else "arch")
    if len(front) <= k:
        return front.sort_values("mIoU", ascending=False)
    points = np.stack([-front["mIoU"].to_numpy(), front["flops"].to_numpy()], 1)
    order = np.lexsort((-front["mIoU"].to_numpy(), -crowding_distance(points)))
    return front.iloc[order[:k]].sort_values("mIoU", ascending=False)


def select_best_k(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """The ``k`` feasible rows of highest ``mIoU``, one per architecture (or per function
    when the frame has a ``function`` column): the candidates successive halving retrains."""
    feasible = frame[frame["feasible"].astype(bool)] if "feasible" in frame else frame
    ranked = feasible.sort_values("mIoU", ascending=False, kind="stable")
    return ranked.drop_duplicates("function" if "function" in ranked else "arch").head(k)


def majority_miou(ann_dir: str | Path, num_classes: int) -> float:
    """mIoU (%) of predicting the most frequent class everywhere (a trivial baseline)."""
    import cv2

    counts = np.zeros(num_classes, np.int64)
    for f in sorted(Path(ann_dir).glob("*.png")):
        lbl = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
        counts += np.bincount(lbl[lbl < num_classes].ravel(), minlength=num_classes)
    present = counts > 0
    iou = np.zeros(num_classes)
    top = counts.argmax()
    iou[top] = counts[top] / counts.sum()  # IoU of the majority class; the others are 0
    return float(iou[present].mean() * 100)


def plot_pareto(frame: pd.DataFrame, path: str | Path, baselines: dict[str, float]) -> Path:
    """Scatter of every evaluated path (MFLOPs vs mIoU), Pareto front, retrained subnets."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    search = frame[(frame["phase"] == "search") & frame["feasible"]]
    ax.scatter(
        search["flops"] / 1e6,
        search["mIoU"],
        s=14,
        alpha=0.5,
        label="search candidates (inherited weights)",
    )
    front = pareto_front(search)
    if not front.empty:
        ax.plot(front["flops"] / 1e6, front["mIoU"], "-o", ms=4, color="C1", label="Pareto front")
    sup = frame[frame["phase"] == "supernet"].sort_values("iteration").groupby("path").tail(1)
    ax.scatter(
        sup["flops"] / 1e6, sup["mIoU"], marker="s", color="C2", label="supernet largest/smallest"
    )
    retrain = frame[(frame["phase"] == "retrain") & ~frame["path"].str.startswith("baseline:")]
    final = retrain.sort_values("iteration").groupby("trial_id").tail(1)
    ax.scatter(
        final["flops"] / 1e6,
        final["mIoU"],
        marker="*",
        s=140,
        color="C3",
        label="retrained subnets",
    )
    for name, value in baselines.items():
        ax.axhline(value, ls="--", lw=1, color="gray")
        ax.text(ax.get_xlim()[0], value, f" {name} {value:.1f}", va="bottom", fontsize=8)
    ax.set_xlabel("MFLOPs per image")
    ax.set_ylabel("mIoU (%): search on the selection split, retrained on val")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt_row(r: Any) -> str:
    params = f"{r.params / 1e3:.1f}" if r.params == r.params and r.params is not None else "-"
    miou = f"{r.mIoU:.2f}" if r.mIoU == r.mIoU and r.mIoU is not None else "-"
    split = getattr(r, "split", None) or "val"
    return (
        f"| {r.phase} | {r.path} | {miou} | {split} | {r.flops / 1e6:.2f} | {params} | "
        f"{r.trial_id} |"
    )


def summary_markdown(
    frame: pd.DataFrame, baselines: dict[str, float], best: dict[str, Any] | None
) -> str:
    """Markdown tables: retrained subnets, the search Pareto front, baselines."""
    head = (
        "| phase | path | mIoU | measured on | MFLOPs | params k | trial |\n"
        "|---|---|---|---|---|---|---|"
    )
    lines = ["# raynas report", ""]
    if best:
        lines += [
            f"Best subnet: **{best['name']}**, val mIoU **{best['mIoU']:.2f}**, "
            f"{best['flops'] / 1e6:.2f} MFLOPs; config `{best['config']}`, checkpoint "
            f"`{best['checkpoint']}`. Chosen on the selection split"
            + (f" (mIoU {best['selection_mIoU']:.2f})" if "selection_mIoU" in best else "")
            + "; the validation set only reports."
            + (f" ONNX: {best['onnx']}." if best.get("onnx") else ""),
            "",
        ]
    lines += ["## Baselines", "", "| baseline | mIoU |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in baselines.items()]
    retrain = frame[frame["phase"] == "retrain"].sort_values("iteration")
    final = retrain.groupby("trial_id").tail(1).sort_values("mIoU", ascending=False)
    lines += ["", "## Retrained subnets", "", head] + [_fmt_row(r) for r in final.itertuples()]
    search = frame[frame["phase"] == "search"]
    lines += ["", f"## Search Pareto front ({len(search)} candidates evaluated)", "", head]
    lines += [_fmt_row(r) for r in pareto_front(search).itertuples()]
    sup = frame[frame["phase"] == "supernet"].sort_values("iteration").groupby("path").tail(1)
    lines += ["", "## Supernet (last validation)", "", head] + [
        _fmt_row(r) for r in sup.itertuples()
    ]
    return "\n".join(lines) + "\n"


def plot_vs_baselines(rows: list[dict[str, Any]], path: str | Path, size: tuple) -> Path:
    """Val mIoU against CPU latency: the retrained found models (stars) and the baselines.

    Args:
        rows: ``name``, ``mIoU``, ``latency_ms`` and ``baseline`` (bool) per model.
        path: The PNG to write.
        size: Input size the latency was measured at.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for r in rows:
        found = not r["baseline"]
        ax.scatter(r["latency_ms"], r["mIoU"], marker="*" if found else "o",
                   s=140 if found else 50, color="C3" if found else "C0")  # fmt: skip
        ax.annotate(r["name"], (r["latency_ms"], r["mIoU"]), fontsize=8)
    ax.set_xlabel(f"CPU latency ms (batch 1, {size[0]}x{size[1]}, measured in one process)")
    ax.set_ylabel("val mIoU (%), same training config and schedule")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def vs_baselines_markdown(rows: list[dict[str, Any]]) -> str:
    """The found models against the baselines, by latency; says which baselines are beaten
    (a found model with higher val mIoU at lower or equal latency)."""
    lines = ["| model | val mIoU | latency ms | MFLOPs | params k | beaten by |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    found = [r for r in rows if not r["baseline"]]
    for r in sorted(rows, key=lambda r: r["latency_ms"]):
        beaters = [f["name"] for f in found if r["baseline"] and f["mIoU"] > r["mIoU"]
                   and f["latency_ms"] <= r["latency_ms"]]  # fmt: skip
        beaten = (", ".join(beaters) or "none") if r["baseline"] else ""
        lines.append(f"| {r['name']} | {r['mIoU']:.2f} | {r['latency_ms']:.2f} | "
                     f"{r['flops'] / 1e6:.1f} | {r['params'] / 1e3:.0f} | {beaten} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def halving_markdown(halving: dict[str, Any], exports: list[dict[str, Any]]) -> str:
    """Successive halving in the retrain phase: every candidate's selection mIoU at each
    report (rungs marked), how far it trained, its search score, and both picks."""
    scores = {n: {int(k): v for k, v in s.items()} for n, s in halving["scores"].items()}
    reports = sorted({i for s in scores.values() for i in s})
    rungs = set(halving["rungs"])
    head = [f"{i}{' (rung)' if i in rungs else ''}" for i in reports]
    lines = ["| candidate | search mIoU | " + " | ".join(head) + " | trained |",
             "|---" * (len(head) + 3) + "|"]  # fmt: skip
    search = {e["name"]: e.get("search_mIoU") for e in exports if not e.get("baseline")}
    for name in search:
        row = scores.get(name, {})
        cells = [f"{row[i]:.2f}" if i in row else "" for i in reports]
        lines.append(f"| {name} | {search[name]:.2f} | " + " | ".join(cells)
                     + f" | {max(row, default=0)} |")  # fmt: skip
    final = {n: s[max(s)] for n, s in scores.items() if s and max(s) == max(reports)}
    pick = max(final, key=final.get) if final else None
    first = halving["search_pick"]
    at = max(scores.get(first) or {0: 0.0})
    lines += ["", f"Rungs at iterations {sorted(rungs)}, the best 1/{halving['eta']:g} kept at "
              f"each; {halving['budget_iters']} iterations trained in all. The halving picks "
              f"**{pick}**; the search's order alone would have picked **{first}** (selection "
              f"mIoU {(scores.get(first) or {0: 0.0})[at]:.2f} at iteration {at})."]  # fmt: skip
    return "\n".join(lines) + "\n"


def deploy_markdown(rows: list[dict], size: tuple) -> str:
    """Eager against ONNX Runtime latency, 1 and 2 threads, and whether the order changes."""
    from scipy.stats import kendalltau

    keys = list(rows[0]["deploy_ms"])
    lines = [f"Deployment latency, ms (batch 1, {size[0]}x{size[1]}, median of 50 runs after "
             "10; PyTorch eager and ONNX Runtime's CPU provider, same process)", "",
             "| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]  # fmt: skip
    for r in sorted(rows, key=lambda r: r["deploy_ms"]["onnxruntime_1t"]):
        lines.append(f"| {r['name']} | " + " | ".join(f"{r['deploy_ms'][k]:.2f}" for k in keys)
                     + " |")  # fmt: skip
    lines.append("")
    for t in sorted({k.split("_")[1] for k in keys}):
        eager = [r["deploy_ms"][f"torch_{t}"] for r in rows]
        ort = [r["deploy_ms"][f"onnxruntime_{t}"] for r in rows]
        order = lambda xs: [rows[i]["name"] for i in sorted(range(len(xs)), key=xs.__getitem__)]  # noqa: E731
        same = "the same" if order(eager) == order(ort) else "a different"
        ratio = statistics.median(o / e for o, e in zip(ort, eager, strict=True))
        lines.append(f"- {t[:-1]} thread(s): Kendall tau {kendalltau(eager, ort)[0]:.2f} between "
                     f"the backends' latency orders ({same} order); ONNX Runtime / eager median "
                     f"{ratio:.2f}")  # fmt: skip
    return "\n".join(lines) + "\n"
