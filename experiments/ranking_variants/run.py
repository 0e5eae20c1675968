"""Ranking quality against stand-alone training: does a supernet rank architectures the way
training each from scratch does? (The durable ranking benchmark, judged by the pick the
pipeline delivers, is ``benchmarks/ranking.py``.)

16 architectures stratified over the FLOPs range (fixed seed) are each trained stand-alone
(AdamW recipe, --standalone-iters, val mIoU, each seed of --standalone-seeds; cached). For
each strategy a supernet is trained (AdamW, --iters uniform-equivalent iterations: multi-path
strategies get fewer iterations in proportion to their paths per step, so all cost about the
same wall time, which is measured and reported), and the 16 architectures' inherited mIoU is
measured on the selection split (carved from training; BN recalibrated). Kendall tau, Spearman
rho (scipy) and top-5 overlap against the stand-alone ranking, per seed, with mean and spread.
Scorers that fine-tune each path from the uniform supernet first (raynas.tse, ``--finetunes``):
TSE (a 50-iteration fine-tune's summed training loss) and the selection mIoU after a
200-iteration fine-tune with the lr decayed to 0 (the search's optional re-ranking); and two
rankings without training (more FLOPs, more parameters rank higher): a supernet's ranking is
worth its cost only above them.

Run:  python -m experiments.ranking_variants.run [--iters 1500 --standalone-iters 1500 --seeds 0 1]
(on 2 CPU cores about 4 h: 32 stand-alone trainings, 16 x 2 seeds, and 12 supernets. The
yardstick is the mean over --standalone-seeds, and the table states its own noise: seed 1's
ranking against seed 0's. Shorter stand-alone schedules are no yardstick on synthseg: at 400
iterations all 16 architectures score 16.1-18.2 mIoU, the plateau before the classes separate.)
Writes experiments/ranking_variants/results/ranking.{json,md} and prints the table. Everything
is cached in --cache, so a rerun only trains what is missing. ``--cfg-options`` changes every
config (the supernets' and so the architectures' space), e.g. the space sized to the
128-pixel input:
``--cfg-options "model.backbone.arch_settings.dilations=(1,2)"
"model.backbone.arch_settings.zooms=(1,)" --cache .cache/benchmarks/ranking-input-sized`` (a cache
of its own: cached results are keyed by strategy, seed and iterations only). ``--reuse X.json``
takes the yardstick and the other strategies' rows from an earlier run of the same
architectures and stand-alone schedule (its cache gone), so new strategies join its
table; with another --iters, only its yardstick. ``--rescore X.json ...`` judges the
stored inherited scores of earlier runs of the same architectures by this run's yardstick (for
another stand-alone schedule; rows named "<strategy> @ <supernet iterations>").
The stand-alone yardsticks of the space sized to the 128-pixel input (1200 and 2400
stand-alone iterations, 2 seeds each) are kept in ``benchmarks/data/ranking-input-sized-*.json``;
e.g. the fine-tune re-ranking table (``results/finetune-rank.md``):
``python -m experiments.ranking_variants.run --reuse benchmarks/data/ranking-input-sized-1200.json
--iters 1200 --seeds 0 1 2 --strategies uniform --finetunes tse finetune --out finetune-rank
--cfg-options "model.backbone.arch_settings.dilations=(1,2)"
"model.backbone.arch_settings.zooms=(1,)"``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from mmengine.config import DictAction

from benchmarks import harness

SUPERNET = harness.ROOT / "configs/supernet"
OUT = Path(__file__).resolve().parent / "results"
# strategy -> (config, iteration share of the uniform budget[, sampler overrides])
STRATEGIES: dict[str, tuple] = {
    "uniform": ("segsupernet_uniform_1xb8-2k_synthseg-128x128.py", 1.0),
    "dps": ("segsupernet_dps_1xb8-2k_synthseg-128x128.py", 1.0),
    "pada": ("segsupernet_pada_1xb8-2k_synthseg-128x128.py", 1.0),
    "calr-ms": ("segsupernet_uniform-calr-ms_1xb8-2k_synthseg-128x128.py", 1.0),
    "sandwich": ("segsupernet_uniform-sandwich_1xb8-2k_synthseg-128x128.py", 1 / 3),
    "cream": ("segsupernet_uniform-cream_1xb8-2k_synthseg-128x128.py", 0.8),
    "dps + calr-ms": ("segsupernet_dps-calr-ms_1xb8-2k_synthseg-128x128.py", 1.0),
}
_DPS = STRATEGIES["dps"][0]
_STAGES = [
    ("convergence", ("angle", "loss_decrease"), 0.1, 0.3),
    ("expressiveness", ("predicted",), 0.1, 0.3),
    ("balanced", ("predicted", "ib"), 0.0, None),
]


def _stages(drop: str = "", first_only: bool = False, swap: dict | None = None) -> list[dict]:
    out = []
    for name, objectives, lo, hi in _STAGES:
        objectives = [(swap or {}).get(o, o) for o in objectives if o != drop]
        out.append(dict(name=name, objectives=tuple(objectives[:1] if first_only else objectives),
                        min_frac=lo, max_frac=hi))  # fmt: skip
    return out


# the DPS ablation: each part off in turn
ABLATION = {
    "dps -angle": (_DPS, 1.0, dict(stages=_stages("angle"))),
    "dps -predictor": (_DPS, 1.0, dict(stages=_stages(swap={"predicted": "mIoU"}))),
    "dps -ib": (_DPS, 1.0, dict(stages=_stages("ib"))),
    "dps -pareto": (_DPS, 1.0, dict(stages=_stages(first_only=True))),
    "dps -diversity": (_DPS, 1.0, dict(min_hamming=0)),
    "dps -stages": (
        _DPS,
        1.0,
        dict(stages=[dict(name="balanced", objectives=("predicted", "ib"))]),
    ),
}
STRATEGIES.update(ABLATION)
CFG_OPTIONS: dict[str, Any] = {}  # --cfg-options, applied to every config loaded


def _space_and_table() -> tuple[Any, Any]:
    from raynas.config import load_config, space_and_table

    return space_and_table(load_config(SUPERNET / STRATEGIES["uniform"][0], CFG_OPTIONS))


def architectures(n: int = 16, seed: int = 0) -> list[dict]:
    """``n`` paths at evenly spaced FLOPs quantiles of 2000 samples."""
    space, table = _space_and_table()
    rng = np.random.default_rng(seed)
    paths = [space.canonical(space.sample(rng)) for _ in range(2000)]
    paths.sort(key=lambda a: table(a).flops)
    return [paths[int(q)] for q in np.linspace(0, len(paths) - 1, n)]


def rules_of_thumb(archs: list[dict]) -> dict[str, dict]:
    """Rankings without training (bigger ranks higher): what a supernet has to beat."""
    _, table = _space_and_table()
    costs = [table(a) for a in archs]
    return {
        f"{k} (bigger ranks higher, no training)": dict(
            inherited=[float(getattr(c, k)) for c in costs], train_s=0.0, iters=0
        )
        for k in ("flops", "params")
    }


def _cfg(config: Path, iters: int, work: Path) -> Any:
    from raynas.config import apply_selection_split, load_config

    cfg = load_config(config, CFG_OPTIONS)
    apply_selection_split(cfg)
    harness.apply_recipe(cfg, "adamw", iters)
    cfg.work_dir, cfg.log_level = str(work), "WARNING"
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False, interval=iters)
    return cfg


def seeded_cfg(config: Path, seed: int, iters: int, work: Path) -> Any:
    """``_cfg`` of a supernet whose initial weights and path sampling follow ``seed``."""
    cfg = _cfg(config, iters, work)
    cfg.randomness = dict(seed=seed)
    cfg.custom_hooks[0].sampler.seed = seed
    return cfg


def standalone(i: int, arch: dict, iters: int, cache: Path, seed: int = 0) -> float:
    """Val mIoU of path ``i`` trained alone (training split without the selection split)."""
    from mmengine.runner import Runner

    from raynas.export import subnet_config

    name = f"alone{i}-{iters}" + (f"-s{seed}" if seed else "")
    key = cache / f"{name}.json"
    if key.is_file():
        return json.loads(key.read_text())["mIoU"]
    sup = _cfg(SUPERNET / STRATEGIES["uniform"][0], iters, cache / name)
    cfg = subnet_config(sup, arch)
    cfg.work_dir, cfg.randomness = sup.work_dir, dict(seed=seed)
    runner = Runner.from_cfg(cfg)
    runner.train()
    miou = float(runner.test()["mIoU"])
    key.write_text(json.dumps({"mIoU": miou, "arch": arch}))
    return miou


def supernet(strategy: str, seed: int, iters: int, archs: list[dict], cache: Path) -> dict:
    """Inherited selection-split mIoU of ``archs`` after training ``strategy``'s supernet."""
    from mmengine.runner import Runner

    config, share, *overrides = STRATEGIES[strategy]
    n = max(1, round(iters * share))
    key = cache / f"{strategy.replace(' ', '')}-s{seed}-{n}.json"
    if key.is_file():
        return json.loads(key.read_text())
    cfg = seeded_cfg(SUPERNET / config, seed, n, cache / key.stem)
    cfg.custom_hooks[0].sampler.update(overrides[0] if overrides else {})
    runner = Runner.from_cfg(cfg)
    start = time.time()
    runner.train()
    train_s = time.time() - start
    scores = harness.evaluate_paths(runner, {str(i): a for i, a in enumerate(archs)})
    out = dict(inherited=[scores[str(i)] for i in range(len(archs))], train_s=train_s,
               iters=n, s_per_iter=train_s / n)  # fmt: skip
    key.write_text(json.dumps(out))
    return out


# key -> (row name, fine-tune iterations, lr, lr schedule, score): scorers that fine-tune
# each path from the seed's uniform supernet first (raynas.tse)
FINETUNES = {
    "tse": ("TSE (uniform + 50-iter fine-tune)", 50, 1e-3, "constant", "tse"),
    "finetune": ("fine-tune mIoU (uniform + 200-iter poly fine-tune)", 200, 1e-3, "poly", "mIoU"),
}


def finetuned(kind: str, iters: int, seed: int, archs: list[dict], cache: Path) -> dict:
    """Scores of ``archs`` after a short fine-tune from the uniform supernet of ``seed``: TSE's
    summed loss (lower ranks higher) or the selection-split mIoU at the fine-tune's end."""
    from raynas.tse import tse_score

    _, steps, lr, schedule, score = FINETUNES[kind]
    work = cache / f"uniform-s{seed}-{iters}"
    cfg = _cfg(SUPERNET / STRATEGIES["uniform"][0], iters, work)

    def one(arch: dict) -> dict:
        start = time.time()
        out = tse_score(cfg, work / f"iter_{iters}.pth", arch, steps, lr, schedule=schedule,
                        evaluate=score == "mIoU")  # fmt: skip
        return dict(out, s=time.time() - start)

    folder = f"finetune-s{seed}-{iters}-{steps}-{lr:g}-{schedule}"
    runs = [
        harness.cached(f"{folder}/{i}", lambda a=a: one(a), cache) for i, a in enumerate(archs)
    ]
    scores = [r["mIoU"] if score == "mIoU" else -r["tse"] for r in runs]
    return dict(inherited=scores, train_s=float(sum(r["s"] for r in runs)), iters=steps)


def _prior(path: Path, args: Any, same: tuple[str, ...], option: str) -> dict:
    """An earlier results file; refuses one whose ``same`` arguments differ from this run's."""
    prior = json.loads(path.read_text())
    now = json.loads(json.dumps(vars(args), default=str))
    diff = [k for k in same if prior["args"].get(k) != now[k]]
    if diff:
        raise SystemExit(f"{option} {path}: {diff} differ from this run's; rerun without {option}")
    return prior


def reuse(path: Path, args: Any) -> tuple[list[float], list[dict], dict[str, list[dict]]]:
    """Yardstick, its noise and rows of an earlier results file; refuses one whose
    architectures, stand-alone schedule or --cfg-options differ from this run's. With another
    supernet budget (--iters) only the yardstick is taken: its rows would not compare."""
    same = ("archs", "standalone_iters", "standalone_seeds", "cfg_options")
    prior = _prior(path, args, same, "--reuse")
    if prior["args"]["iters"] != args.iters:
        print(f"--reuse {path}: --iters {prior['args']['iters']} there: yardstick only")
        return prior["standalone"], prior["args"]["yardstick"], {}
    return prior["standalone"], prior["args"]["yardstick"], prior["rows"]


def rescore(paths: list[Path], args: Any) -> dict[str, list[dict]]:
    """The supernet rows of earlier results files of the same architectures, named
    ``"<strategy> @ <iters>"``, to be judged by this run's yardstick: their inherited scores do
    not depend on the stand-alone schedule. A later file's row replaces an earlier one of the
    same name."""
    rows: dict[str, list[dict]] = {}
    for path in paths:
        prior = _prior(path, args, ("archs", "cfg_options"), "--rescore")
        for name, runs in prior["rows"].items():
            if runs[0]["iters"]:  # the rules of thumb are recomputed anyway
                rows[f"{name} @ {prior['args']['iters']}"] = runs
    return rows


def agreement(scores: list[float], truth: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    top = set(np.argsort(truth)[-5:]) & set(np.argsort(scores)[-5:])
    return dict(tau=float(kendalltau(scores, truth)[0]), rho=float(spearmanr(scores, truth)[0]),
                top5=len(top) / 5, top1=float(truth[int(np.argmax(scores))]))  # fmt: skip


def agreement_cells(runs: list[dict]) -> list[str]:
    """'mean (min-max)' over ``runs`` of each ``agreement`` measure: tau, rho, top-5, top-1."""
    cells = []
    for m in ("tau", "rho", "top5", "top1"):
        v = [r[m] for r in runs]
        cells.append(f"{np.mean(v):.2f} ({min(v):.2f}-{max(v):.2f})")
    return cells


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--standalone-iters", type=int, default=1500)
    supernet_seeds = "supernet seeds (none: only the rows of --rescore and --reuse)"
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help=supernet_seeds)
    ap.add_argument("--archs", type=int, default=16)
    seeds_help = "stand-alone seeds per architecture; the yardstick is their mean"
    ap.add_argument("--standalone-seeds", type=int, nargs="+", default=[0, 1], help=seeds_help)
    main_set = [k for k in STRATEGIES if k not in ABLATION]
    ap.add_argument("--strategies", nargs="+", default=main_set,
                    help=f"also: {list(ABLATION)} (the DPS ablation)")  # fmt: skip
    ap.add_argument("--ablation-seeds", type=int, nargs="*", default=[0],
                    help="seeds on which the whole DPS ablation also runs")  # fmt: skip
    ap.add_argument("--cache", type=Path, default=harness.CACHE / "ranking")
    ap.add_argument("--out", default="ranking", help="results/<out>.{json,md}")
    ap.add_argument("--finetunes", nargs="*", choices=list(FINETUNES), default=["tse"],
                    help="scorers that fine-tune each path from the uniform supernet")  # fmt: skip
    ap.add_argument(
        "--reuse",
        type=Path,
        help="an earlier results JSON: its yardstick and its "
        "rows of strategies not run now (same architectures and schedules)",
    )
    rescore_help = "earlier results JSONs whose supernet rows this yardstick judges again"
    ap.add_argument("--rescore", type=Path, nargs="+", default=[], help=rescore_help)
    options_help = "key=value overrides of every config (use a --cache of their own)"
    ap.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, help=options_help)
    args = ap.parse_args()
    CFG_OPTIONS.update(args.cfg_options)
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401

    init_default_scope("mmseg")
    args.cache.mkdir(parents=True, exist_ok=True)
    archs = architectures(args.archs)
    rows: dict[str, list[dict]] = {}
    if args.reuse:
        truth, args.yardstick, rows = reuse(args.reuse, args)
    else:
        runs = [[standalone(i, a, args.standalone_iters, args.cache, s)
                 for i, a in enumerate(archs)] for s in args.standalone_seeds]  # fmt: skip
        truth = list(np.mean(runs, axis=0))  # the yardstick: mean over stand-alone seeds
        print("stand-alone", [[round(t, 2) for t in r] for r in runs], flush=True)
        args.yardstick = [agreement(r, runs[0]) for r in runs[1:]]  # its own noise
    ran: set[str] = set()  # strategies run now: their reused rows, if any, are replaced

    def add(name: str, result: dict) -> None:
        if name not in ran:
            ran.add(name)
            rows[name] = []
        rows[name].append({**result, **agreement(result["inherited"], truth)})
        print(name, json.dumps(rows[name][-1]), flush=True)

    for name, result in rules_of_thumb(archs).items():
        add(name, result)
    for name, runs in rescore(args.rescore, args).items():
        for result in runs:
            add(name, result)
    for seed in args.seeds:
        ablation = list(ABLATION) if seed in args.ablation_seeds else []
        for strategy in dict.fromkeys(args.strategies + ablation):
            add(strategy, supernet(strategy, seed, args.iters, archs, args.cache))
        if "uniform" in args.strategies:
            for kind in args.finetunes:
                add(FINETUNES[kind][0], finetuned(kind, args.iters, seed, archs, args.cache))
        write(rows, truth, args)  # after every seed, so a long run leaves partial tables
    if not args.seeds:
        write(rows, truth, args)


def write(rows: dict, truth: list[float], args: Any) -> None:
    result = dict(rows=rows, standalone=truth, args=vars(args))
    lines = [
        f"{len(truth)} architectures stratified by FLOPs; stand-alone: AdamW "
        f"{args.standalone_iters} iterations, val mIoU {min(truth):.1f}-{max(truth):.1f}; "
        f"supernets: AdamW, {args.iters} uniform-equivalent iterations, seeds 0, 1, ... (the "
        "seeds column counts them); "
        "inherited mIoU on the selection split. Mean (min-max over seeds). The best "
        f"stand-alone mIoU of the {len(truth)} is {max(truth):.2f}.",
        *[
            f"The yardstick's own noise: stand-alone seed {s} against seed "
            f"{args.standalone_seeds[0]}: Kendall tau {y['tau']:.2f}, "
            f"Spearman rho {y['rho']:.2f}, "
            f"top-5 overlap {y['top5']:.2f} (the yardstick is the mean over seeds "
            f"{args.standalone_seeds})."
            for s, y in zip(args.standalone_seeds[1:], args.yardstick)
        ],
        *(
            [
                "Rows '<strategy> @ N': the inherited scores stored by earlier runs with "
                f"N-iteration supernets ({', '.join(Path(p).name for p in args.rescore)}), "
                "judged by this yardstick."
            ]
            if args.rescore
            else []
        ),
        *(
            [f"Every config changed by --cfg-options {args.cfg_options}."]
            if args.cfg_options
            else []
        ),
        "",
        "| strategy | seeds | Kendall tau | Spearman rho | top-5 overlap | stand-alone mIoU "
        "of its top-1 | iterations | s/iteration |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in rows.items():
        cells = agreement_cells(runs)
        s_it = np.mean([r["train_s"] / max(r["iters"], 1) for r in runs])
        lines.append(
            f"| {name} | {len(runs)} | "
            + " | ".join(cells)
            + f" | {runs[0]['iters']} | {s_it:.2f} |"
        )
    result = json.loads(json.dumps(result, default=str))
    harness.write(args.out, result, "\n".join(lines), OUT)


if __name__ == "__main__":
    main()
