"""Does a short fine-tune of each path rank architectures better than its inherited mIoU?

The ranking benchmark's 16 architectures (``ranking.architectures``) are scored from the
uniform supernet of each seed in three ways: inherited mIoU on the selection split (the
search's score), the selection-split mIoU after a ``--steps``-iteration fine-tune from the
inherited weights (AdamW at ``--lr``, decayed to 0 over the fine-tune: a short retrain,
``raynas.tse.tse_score(..., schedule='poly', evaluate=True)``) and the same fine-tune's summed
training loss (TSE's score). Each is judged by Kendall tau, Spearman rho, top-5 overlap and the
stand-alone mIoU of its top-1 against every ``--yardsticks`` file (the stand-alone rankings
stored by ``ranking.py`` runs of the same architectures), per seed with mean and spread.

Run (the space sized to the 128-pixel input, as ``ranking-input-sized*.md``):
  python benchmarks/finetune_rank.py --cfg-options \
    "model.backbone.arch_settings.dilations=(1,2)" "model.backbone.arch_settings.zooms=(1,)"
(about 6 min per seed on 2 cores for the fine-tunes, plus 3 min per supernet not in --cache;
every supernet and every fine-tune is cached.) Writes benchmarks/results/finetune-rank.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import ranking
from mmengine.config import DictAction

YARDSTICKS = [
    ranking.OUT / "ranking-input-sized.json",
    ranking.OUT / "ranking-input-sized-2400.json",
]


def finetuned(seed: int, args: Any, archs: list[dict]) -> list[dict]:
    """Fine-tune mIoU, summed loss and seconds of each arch, from the seed's uniform supernet."""
    from raynas.tse import tse_score

    work = args.cache / f"uniform-s{seed}-{args.iters}"
    cfg = ranking._cfg(ranking.SUPERNET / ranking.STRATEGIES["uniform"][0], args.iters, work)
    folder = args.cache / f"finetune-s{seed}-{args.iters}-{args.steps}-{args.lr:g}"
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, arch in enumerate(archs):
        key = folder / f"{i}.json"
        if not key.is_file():
            start = time.time()
            score = tse_score(cfg, work / f"iter_{args.iters}.pth", arch, args.steps, args.lr,
                              schedule="poly", evaluate=True)  # fmt: skip
            key.write_text(json.dumps(dict(mIoU=score["mIoU"], tse=score["tse"],
                                           s=time.time() - start)))  # fmt: skip
        out.append(json.loads(key.read_text()))
        print(f"seed {seed} arch {i}", out[-1], flush=True)
    return out


def yardstick(path: Path, args: Any) -> list[float]:
    """The stand-alone ranking stored in ``path``, refused if its space is not this run's."""
    prior, now = json.loads(path.read_text()), json.loads(json.dumps(args.cfg_options))
    if prior["args"].get("cfg_options", {}) != now or prior["args"]["archs"] != 16:
        raise SystemExit(
            f"{path}: its --cfg-options {prior['args'].get('cfg_options')} or architecture count "
            f"are not this run's {args.cfg_options}, 16: its architectures differ"
        )
    return prior["standalone"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1200, help="supernet iterations")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200, help="fine-tune iterations per path")
    ap.add_argument("--lr", type=float, default=1e-3, help="fine-tune lr, decayed to 0")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/raynas-ranking-input-sized"))
    ap.add_argument("--yardsticks", type=Path, nargs="+", default=YARDSTICKS)
    ap.add_argument("--out", default="finetune-rank", help="results/<out>.{json,md}")
    options_help = "key=value overrides of every config, as the yardsticks' ranking.py runs"
    ap.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, help=options_help)
    args = ap.parse_args()
    ranking.CFG_OPTIONS.update(args.cfg_options)
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401

    init_default_scope("mmseg")
    args.cache.mkdir(parents=True, exist_ok=True)
    archs = ranking.architectures(16)
    truths = {p.stem: yardstick(p, args) for p in args.yardsticks}
    scores: dict[str, list[list[float]]] = {"inherited": [], "fine-tune mIoU": [],
                                            "fine-tune summed loss (TSE)": []}  # fmt: skip
    cost = []
    for seed in args.seeds:
        sup = ranking.supernet("uniform", seed, args.iters, archs, args.cache)
        runs = finetuned(seed, args, archs)
        scores["inherited"].append(sup["inherited"])
        scores["fine-tune mIoU"].append([r["mIoU"] for r in runs])
        scores["fine-tune summed loss (TSE)"].append([-r["tse"] for r in runs])
        cost.append(
            dict(supernet_s=sup["train_s"], finetune_s=float(np.mean([r["s"] for r in runs])))
        )
    rows = {
        name: {t: [ranking.agreement(s, truth) for s in runs] for t, truth in truths.items()}
        for name, runs in scores.items()
    }
    write(dict(rows=rows, scores=scores, cost=cost, args=vars(args)), args)


def write(result: dict, args: Any) -> None:
    ranking.OUT.mkdir(parents=True, exist_ok=True)
    (ranking.OUT / f"{args.out}.json").write_text(json.dumps(result, indent=2, default=str))
    cost = result["cost"]
    lines = [
        f"16 architectures of ranking.py, uniform supernets of {args.iters} iterations, seeds "
        f"{args.seeds}; fine-tune: {args.steps} iterations, AdamW lr {args.lr:g} decayed to 0, "
        "selection-split mIoU at its end. Mean (min-max over seeds). Cost: supernet "
        f"{np.mean([c['supernet_s'] for c in cost]):.0f} s, fine-tune and evaluation "
        f"{np.mean([c['finetune_s'] for c in cost]):.1f} s per architecture (2 CPU cores).",
        *(
            [f"Every config changed by --cfg-options {args.cfg_options}."]
            if args.cfg_options
            else []
        ),
        "",
        "| score | yardstick | Kendall tau | Spearman rho | top-5 overlap | stand-alone mIoU "
        "of its top-1 | tau per seed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by_truth in result["rows"].items():
        for truth, runs in by_truth.items():
            cells = ranking.agreement_cells(runs)
            per_seed = " / ".join(f"{r['tau']:.2f}" for r in runs)
            lines.append(f"| {name} | {truth} | " + " | ".join(cells) + f" | {per_seed} |")
    md = "\n".join(lines) + "\n"
    (ranking.OUT / f"{args.out}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
