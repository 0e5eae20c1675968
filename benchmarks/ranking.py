"""Ranking judged by the pick: which scorer hands back the model the pipeline delivers best?

The yardstick is what the pipeline does with a pick. The search's own top 12 candidates (by
inherited selection mIoU, one per network) of an experiment of the shipped config are each
retrained exactly as its retrain phase retrains (the shipped retrain config: from the
supernet's weights, its iterations, resources and concurrency), every one to the full budget,
for each of ``--seeds`` (``randomness.seed``); a candidate's yardstick is its mean val mIoU at
the end. The yardstick's own noise is a row of the table: seed 1's retrain against seed 0's.

Scorers of the 12 (none reads val; ``_scores``):
- inherited mIoU with the experiment's supernet (uniform sampling: the search's own score) and
  with a DPS supernet of the same space and iterations (``--dps``);
- the fine-tune re-rank: the pipeline's TSE phase (``tune_cfg.search.tse``: 200 iterations,
  poly lr, the selection mIoU at the end);
- the shipped successive halving, replayed from each yardstick run's own selection-split
  scores at the rungs (the top 6 by inherited mIoU; eta 3: 2 kept at 250 iterations, 1 at 750):
  a pick, not a ranking; and the full retrain's selection mIoU (what picking after retraining
  all 12 would choose);
- training-free metrics at initialisation (:mod:`raynas.core.zero_cost`: grad_norm, snip,
  synflow, NASWOT) and their combination per architecture in the spirit of PO-NAS: for each
  candidate a ridge regression of inherited mIoU on the standardised metrics (log FLOPs and log
  params among them), fitted on the other searched candidates (all 24, not only the top 12)
  weighted by their closeness in the space (:func:`raynas.core.zero_cost.local_fit`);
- FLOPs (more ranks higher): the floor a scorer must clear.

For each: Kendall tau and Spearman rho against the yardstick, **top-1 regret** (the yardstick
of the scorer's pick below the best of the 12) and top-3 recall (of the yardstick's top 3).

Run:  python -m benchmarks.ranking --space quickstart [--donor runs/quickstart]
      python -m benchmarks.ranking --space realtime --donor runs/realtime --no-dps
(``--donor``: a finished experiment of the shipped config whose supernet and search are used;
default: one run here. On 2 CPU cores the quickstart part took 47 minutes with a donor (two
yardsticks of 12 retrains, 20 minutes each; a 2-minute DPS supernet; a 4-minute fine-tune), the
realtime part 76 (yardsticks of 36 and 33 minutes, a 5-minute fine-tune; its DPS supernet,
7200 iterations, left out with ``--no-dps``). Those times are from the quickstart's
1200-iteration supernet and 2000-iteration retrain; with its 3600 and 4000 now, expect about
twice: run ``--seeds 0`` and ``--seeds 1`` apart, then both. Pipelines are kept in
``--storage``, so a rerun only trains what is missing; the pick policies replay successive
halving on the yardstick's own rung scores, nothing more is trained.)
Writes benchmarks/results/ranking-<space>.{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import harness

CONFIGS = {"quickstart": "configs/quickstart.py", "realtime": "configs/realtime.py"}
TOP = 12
FINETUNE = dict(candidates=TOP, iters=200, schedule="poly", score="mIoU")
METRICS = ("grad_norm", "snip", "synflow", "naswot")
INHERITED = "inherited mIoU (uniform supernet; the search's score)"
COMBINED = "training-free: combined per architecture (PO-NAS style)"
FLOPS = "FLOPs (more is better)"
# pick policies replayed on the yardstick: the pool's order, then (k, eta, first rung in
# reports; None: every one of the k to the end); the first is the shipped halving
POOLS = {"inherited": INHERITED, "training-free combined": COMBINED, "FLOPs": FLOPS}
SCHEDULES = [(6, 3, 1), (6, 6, 1), (4, 4, 2), (3, 3, 3), (2, 2, None), (1, 1, None)]


def _yard_options(cfg: Any, seed: int) -> dict[str, Any]:
    """Every candidate trained to the end: successive halving whose first rung is the last
    report (the search's best ``TOP`` by inherited mIoU, as the shipped halving ranks them)."""
    retrain = cfg.tune_cfg.retrain
    reports = retrain.iters // retrain.report_interval
    halving = dict(type="successive_halving", eta=3, grace=reports)
    return {"randomness.seed": seed, "tune_cfg.retrain.top_k": TOP,
            "tune_cfg.retrain.scheduler": halving}  # fmt: skip


def yardstick(config: Path, storage: Path, donor: Path, seed: int) -> dict[str, dict]:
    """arch -> the retrain of seed ``seed``: inherited score, FLOPs, val mIoU at the end and
    the selection mIoU at each report."""
    from raynas.config import load_config
    from raynas.tune.archive import Archive
    from raynas.tune.storage import Storage

    options = _yard_options(load_config(config), seed)
    exp = harness.pipeline(config, storage, f"yard-s{seed}", donor, "retrain",
                           ("supernet", "search", "tse"), ("randomness.seed",),
                           **options)  # fmt: skip
    rows = Archive(Storage(str(exp))).read("retrain").to_pandas()
    out = {}
    for e in harness.state(exp)["phases"]["retrain"]["exports"]:
        if "arch" not in e:
            continue
        mine = rows[rows["path"] == e["name"]]
        sel = mine[mine["split"] == "selection"].sort_values("iteration")
        out[e["arch"]] = dict(name=e["name"], inherited=e["search_mIoU"], flops=e["flops"],
                              val=float(mine[mine["split"] == "val"]["mIoU"].iloc[-1]),
                              curve=[float(v) for v in sel["mIoU"]])  # fmt: skip
    return out


def replay(runs: dict[str, dict], order: dict[str, float], k: int, eta: int,
           grace: int | None) -> str:  # fmt: skip
    """The pick of successive halving over the best ``k`` of ``order`` (``grace`` None: no
    rung, all ``k`` to the end), replayed on full retrains' selection scores at the rungs;
    ties go to the earlier candidate, as in :mod:`raynas.tune.halving`."""
    from raynas.tune.halving import keep, rungs

    reports = len(next(iter(runs.values()))["curve"])
    alive = sorted(runs, key=lambda a: -order[a])[:k]
    for rung in rungs(reports, eta, grace or reports):
        alive = keep(alive, {a: runs[a]["curve"][rung - 1] for a in alive}, eta)
    return max(alive, key=lambda a: runs[a]["curve"][-1])


def policies(runs: dict[int, dict], scores: dict[str, dict], yard: dict[str, float]) -> list:
    """Each pick policy's cost (full retrains) and top-1 regret per seed."""
    from raynas.tune.halving import budget

    first = next(iter(runs.values()))
    reports = len(next(iter(first.values()))["curve"])
    out = []
    for pool, (k, eta, grace) in itertools.product(POOLS, SCHEDULES):
        order = scores[POOLS[pool]]
        picks = [replay(r, order, k, eta, grace) for r in runs.values()]
        spent = budget(k, reports, eta, grace or reports)[0] / reports
        out.append(dict(pool=pool, k=k, eta=eta, grace=grace, cost=spent,
                        regret=[max(yard.values()) - yard[a] for a in picks]))  # fmt: skip
    return out


def dps_inherited(config: Path, storage: Path, archs: list[str]) -> dict[str, float]:
    """Each arch's inherited selection mIoU with a DPS supernet of the same space and
    iterations, scored as the search scores."""
    from mmengine.config import Config

    from raynas.tune.phases.search import _Evaluator
    from raynas.tune.pipeline import Pipeline
    from raynas.tune.trial import trial_config

    dps = Config.fromfile(
        harness.ROOT / "configs/supernet/segsupernet_dps_1xb8-2k_synthseg-128x128.py"
    )
    exp = harness.pipeline(config, storage, "dps", until="supernet",
                           custom_hooks=[h.to_dict() for h in dps.custom_hooks])  # fmt: skip
    pipe, sup = Pipeline(exp), harness.state(exp)["phases"]["supernet"]
    opts = pipe.opts["search"]
    ev = _Evaluator(trial_config(pipe.cfg_text, sup.get("cfg_options")), sup["checkpoint"], opts)
    return {a: ev.miou(json.loads(a), opts.get("calib_batches", 4)) for a in archs}


def finetune(config: Path, storage: Path, donor: Path) -> dict[str, float]:
    """The pipeline's fine-tune re-rank of the top ``TOP`` (its TSE phase)."""
    exp = harness.pipeline(config, storage, "finetune", donor, "tse", ("supernet", "search"),
                           ("tune_cfg.search.tse",),
                           **{"tune_cfg.search.tse": FINETUNE})  # fmt: skip
    return {s["arch"]: s["finetune_mIoU"] for s in harness.state(exp)["phases"]["tse"]["scores"]}


def training_free(config: Path, donor: Path, cache: Path) -> dict[str, dict[str, float]]:
    """grad_norm, snip, synflow and NASWOT of every searched candidate at initialisation, its
    FLOPs and params, and the per-architecture fit of inherited mIoU on them (log scales)."""
    from raynas.config import load_config
    from raynas.core.zero_cost import local_fit
    from raynas.training_free import training_free_scores
    from raynas.tune.archive import Archive
    from raynas.tune.storage import Storage

    frame = Archive(Storage(str(donor))).read("search").to_pandas()
    frame = frame[frame["feasible"].astype(bool)].drop_duplicates("arch")

    make = lambda: training_free_scores(load_config(config), list(frame["arch"]))  # noqa: E731
    raw = harness.cached("training-free", make, cache)
    raw = {a: {**raw[a], "flops": f, "params": p}
           for a, f, p in zip(frame["arch"], frame["flops"], frame["params"])}  # fmt: skip
    keys = [*METRICS, "flops", "params"]
    table = np.array([[raw[a][k] for k in keys] for a in frame["arch"]], float)
    logged = [i for i, k in enumerate(keys) if k != "naswot"]  # NASWOT is a log already
    table[:, logged] = np.log(np.maximum(table[:, logged], 1e-30))
    low = np.nanmin(np.where(np.isfinite(table), table, np.nan), axis=0)
    table = np.where(np.isfinite(table), table, low)  # a singular NASWOT kernel: the lowest
    encodings = np.stack([np.asarray(e, float) for e in frame["encoding"]])
    fitted = local_fit(table, frame["mIoU"].to_numpy(float), encodings)
    return {a: {**raw[a], "combined": float(f)} for a, f in zip(frame["arch"], fitted)}


def agreement(score: dict[str, float], yard: dict[str, float]) -> dict[str, float]:
    """Kendall tau, Spearman rho, top-1 regret and top-3 recall of ``score`` against ``yard``
    (over the archs both have)."""
    from scipy.stats import kendalltau, spearmanr

    archs = [a for a in yard if a in score]
    s, y = np.array([score[a] for a in archs]), np.array([yard[a] for a in archs])
    top = lambda v: set(np.argsort(-v, kind="stable")[:3])  # noqa: E731
    return dict(tau=float(kendalltau(s, y)[0]), rho=float(spearmanr(s, y)[0]),
                regret=float(y.max() - y[int(np.argmax(s))]),
                recall=len(top(s) & top(y)) / 3, n=len(archs))  # fmt: skip


def pick_row(name: str, arch: str, yard: dict[str, float]) -> dict[str, Any]:
    return dict(scorer=name, regret=max(yard.values()) - yard[arch], n=len(yard))


def table(rows: list[dict[str, Any]]) -> str:
    cell = lambda r, k, f: format(r[k], f) if k in r else "-"  # noqa: E731
    lines = ["| scorer | Kendall tau | Spearman rho | top-1 regret (mIoU) | top-3 recall |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in rows:
        lines.append(f"| {r['scorer']} | {cell(r, 'tau', '.2f')} | {cell(r, 'rho', '.2f')} | "
                     f"{cell(r, 'regret', '.2f')} | {cell(r, 'recall', '.2f')} |")  # fmt: skip
    return "\n".join(lines)


def _scores(config: Path, storage: Path, donor: Path, first: dict[str, dict],
            dps: bool) -> dict[str, dict[str, float]]:  # fmt: skip
    """scorer -> arch -> score (higher is better) for the yardstick's archs."""
    scores = {INHERITED: {a: r["inherited"] for a, r in first.items()}}
    if dps:
        scores["inherited mIoU (DPS supernet)"] = dps_inherited(config, storage, list(first))
    scores["fine-tune re-rank (200 iterations)"] = finetune(config, storage, donor)
    free = training_free(config, donor, storage)
    for key in (*METRICS, "combined"):
        name = COMBINED if key == "combined" else f"training-free: {key}"
        scores[name] = {a: free[a][key] for a in first}
    scores[FLOPS] = {a: float(r["flops"]) for a, r in first.items()}
    return scores


def _retrain_rows(runs: dict[int, dict], scores: dict, yard: dict[str, float]) -> list[dict]:
    """The shipped halving's pick and the full retrains' own order, per seed; the yardstick's
    noise (seed against seed)."""
    rows = []
    for s, run in runs.items():
        shipped = replay(run, scores[INHERITED], *SCHEDULES[0])
        rows.append(pick_row(f"successive halving, shipped (seed {s})", shipped, yard))
        own = {a: r["curve"][-1] for a, r in run.items()}
        rows.append(dict(scorer=f"all 12 retrained, picked on selection (seed {s}; half the "
                                "yardstick)", **agreement(own, yard)))  # fmt: skip
    if len(runs) > 1:
        (s0, r0), (s1, r1) = list(runs.items())[:2]
        noise = agreement({a: r["val"] for a, r in r0.items()},
                          {a: r["val"] for a, r in r1.items()})  # fmt: skip
        rows.append(dict(scorer=f"yardstick noise: seed {s0} against seed {s1}", **noise))
    return rows


def evaluate(space: str, storage: Path, donor: Path | None, seeds: list[int],
             dps: bool) -> dict[str, Any]:  # fmt: skip
    """Every scorer's row against the mean yardstick of ``seeds``, and the yardstick's own."""
    config = harness.ROOT / CONFIGS[space]
    donor = donor or harness.pipeline(config, storage, "donor", until="search")
    runs = {s: yardstick(config, storage, donor, s) for s in seeds}
    yard = {a: float(np.mean([runs[s][a]["val"] for s in seeds])) for a in runs[seeds[0]]}
    scores = _scores(config, storage, donor, runs[seeds[0]], dps)
    rows = [dict(scorer=k, **agreement(v, yard)) for k, v in scores.items()]
    return dict(space=space, donor=str(donor), seeds=seeds, yardstick=yard,
                rows=rows + _retrain_rows(runs, scores, yard),
                policies=policies(runs, scores, yard), runs={str(s): runs[s] for s in seeds},
                scores=scores)  # fmt: skip


def policy_table(policies: list[dict[str, Any]]) -> str:
    lines = ["| pool (top k by) | k | eta | first rung (reports) | cost (full retrains) | "
             "top-1 regret per seed |", "| --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for p in policies:
        rung = p["grace"] or "none: all k to the end"
        regret = ", ".join(f"{r:.2f}" for r in p["regret"])
        lines.append(f"| {p['pool']} | {p['k']} | {p['eta']} | {rung} | {p['cost']:.2f} | "
                     f"{regret} |")  # fmt: skip
    return "\n".join(lines)


def write(result: dict[str, Any]) -> None:
    yard = result["yardstick"]
    runs = result["runs"][str(result["seeds"][0])]
    lines = [f"Space `{result['space']}` ({CONFIGS[result['space']]}), donor experiment "
             f"`{result['donor']}`: its search's top {len(yard)} by inherited mIoU, each "
             f"retrained as its retrain phase retrains (every one to the full budget), seeds "
             f"{result['seeds']}; yardstick = mean val mIoU ({min(yard.values()):.2f}-"
             f"{max(yard.values()):.2f}). Top-1 regret: the yardstick of the scorer's pick below "
             f"the best of the {len(yard)}.", "", table(result["rows"]), "",
             "Pick policies replayed on the yardstick's retrains (each seed's selection-split "
             "scores at the rungs; the first row is the shipped successive halving):", "",
             policy_table(result["policies"]), "",
             "| candidate | MFLOPs | inherited | yardstick (mean val) | per seed |",
             "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for a in sorted(yard, key=lambda a: -runs[a]["inherited"]):
        seeds = ", ".join(f"{result['runs'][str(s)][a]['val']:.2f}" for s in result["seeds"])
        lines.append(f"| {runs[a]['name']} | {runs[a]['flops'] / 1e6:.1f} | "
                     f"{runs[a]['inherited']:.2f} | {yard[a]:.2f} | {seeds} |")  # fmt: skip
    harness.write(f"ranking-{result['space']}", result, "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--space", choices=sorted(CONFIGS), default="quickstart")
    parser.add_argument("--donor", type=Path, help="a finished experiment of the shipped config")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--dps", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--storage", type=Path, help="default: the cache's ranking-<space>")
    args = parser.parse_args()
    storage = (args.storage or harness.CACHE / f"ranking-{args.space}").resolve()
    donor = args.donor.resolve() if args.donor else None
    write(evaluate(args.space, storage, donor, args.seeds, args.dps))


if __name__ == "__main__":
    main()
