"""Training recipes: why inherited accuracy and the pipeline's retrain trail stand-alone training.

For each recipe (the previous default SGD lr 0.05 + poly, and AdamW lr 2e-3, wd 1e-4, poly,
grad clip 5, with a linear warm-up), on the embedded dataset (val mIoU, full val set):
- a uniform supernet trained for --supernet-iters; the largest, a mid-size and the smallest
  path's inherited mIoU (BN recalibrated);
- the largest and the mid-size path trained stand-alone from scratch for the same iterations;
  inherited / stand-alone is the fraction the issue asks about (goals: 90% largest, 80% mid);
- the mid-size path retrained --retrain-iters from its inherited weights (the pipeline's
  retrain), against the same path from scratch for supernet + retrain iterations.
Every training is cached in --cache (by recipe, model and iterations) and reused.

With ``--experiment EXP`` (a ``raynas run`` folder) the fractions of that run's own supernet
instead: its largest and mid-size path exported as the pipeline exports a found model (BN
recalibrated on 16 training batches), val mIoU, against the same path trained from scratch with
the run's retrain config stretched to the supernet's iterations (the supernet's recipe: AdamW,
warm-up, poly, clip 5).

Run:  python -m experiments.recipes.run [--supernet-iters 1500 --retrain-iters 1000]
      python -m experiments.recipes.run --experiment runs/quickstart runs/realtime [--cached-only]
Writes experiments/recipes/results/recipes.{json,md} (recipes-pipeline.{json,md} with
--experiment, where
a run keeps the rows of the runs measured before it) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import RECIPES, ROOT, apply_recipe

OUT = Path(__file__).resolve().parent / "results"
SUPERNET = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


def _runner(cfg: Any, work: Path) -> Any:
    from mmengine.runner import Runner

    cfg.work_dir = str(work)
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", by_epoch=False,
                                        interval=cfg.train_cfg.max_iters)  # fmt: skip
    cfg.log_level = "WARNING"
    return Runner.from_cfg(cfg)


def mid_path(space: Any, table: Any) -> dict:
    """The sampled path (fixed seed) closest to the middle of the FLOPs range."""
    rng = np.random.default_rng(0)
    lo, hi = (table(space.extreme(b)).flops for b in (False, True))
    paths = [space.canonical(space.sample(rng)) for _ in range(200)]
    return min(paths, key=lambda a: abs(table(a).flops - (lo + hi) / 2))


def supernet(recipe: str, iters: int, paths: dict, cache: Path) -> dict[str, float]:
    """Inherited val mIoU of ``paths`` after training a uniform supernet."""
    from raynas.config import load_config

    key = cache / f"supernet-{recipe}-{iters}.json"
    if key.is_file():
        return json.loads(key.read_text())
    cfg = load_config(SUPERNET)
    apply_recipe(cfg, recipe, iters)
    cfg.val_cfg.calib_batches = 8
    runner = _runner(cfg, cache / f"supernet-{recipe}-{iters}")
    start = time.time()
    runner.train()
    from benchmarks.harness import evaluate_paths as evaluate

    result = {**evaluate(runner, paths), "train_s": time.time() - start}
    key.write_text(json.dumps(result))
    return result


def standalone(recipe: str, arch: dict, name: str, iters: int, cache: Path,
               init: Path | None = None, tag: str = "") -> float:  # fmt: skip
    """Val mIoU of one path trained as a plain mmseg model (from ``init`` or scratch)."""
    from raynas.config import load_config
    from raynas.export import subnet_config

    tag = f"{name}-{recipe}-{iters}-{'inherit' if init else 'scratch'}" + (
        f"-from-{tag}" if tag and tag != f"{recipe}-1500" else ""
    )
    key = cache / f"{tag}.json"
    if key.is_file():
        return json.loads(key.read_text())["mIoU"]
    sup_cfg = load_config(SUPERNET)
    cfg = subnet_config(sup_cfg, arch)
    apply_recipe(cfg, recipe, iters)
    if init:
        cfg.load_from = str(init)
    runner = _runner(cfg, cache / tag)
    runner.train()
    miou = float(runner.val_loop.run()["mIoU"])
    key.write_text(json.dumps({"mIoU": miou}))
    return miou


def export_mid(recipe: str, iters: int, arch: dict, cache: Path) -> Path:
    from raynas.config import load_config
    from raynas.export import export_subnet

    out = cache / f"mid-export-{recipe}-{iters}"
    if not (out / "subnet.pth").is_file():
        ckpt = cache / f"supernet-{recipe}-{iters}" / f"iter_{iters}.pth"
        export_subnet(load_config(SUPERNET), ckpt, arch, out, calib_batches=8)
    return out / "subnet.pth"


def pipeline_fractions(exp: Path, cache: Path, cached_only: bool = False) -> dict[str, Any]:
    """Inherited and stand-alone val mIoU of the largest and mid path of ``exp``'s supernet
    (with ``cached_only``, of the paths whose stand-alone training is cached)."""
    import yaml
    from mmengine.runner import Runner

    from benchmarks.vs_mmseg import cached, found_models, train
    from experiments.ceiling.run import path_config
    from raynas.config import load_config, space_and_table
    from raynas.export import export_subnet
    from raynas.tune.trial import scale_schedule

    exp_cfg = load_config(exp / "config.py")
    iters = int(exp_cfg.tune_cfg.supernet.iters)
    retrain_cfg = load_config(found_models(exp)[0]["config"])
    arch_yaml = next((exp / "subnets").glob("*/arch.yaml"))
    ckpt = yaml.safe_load(arch_yaml.read_text())["provenance"]["supernet_checkpoint"]
    ckpt = str(exp / "supernet" / ckpt.split("/supernet/", 1)[1])  # the run folder may have moved
    space, table = space_and_table(exp_cfg)
    out: dict[str, Any] = dict(supernet_iters=iters, supernet_checkpoint=ckpt)
    for name, arch in {"largest": space.extreme(True), "mid": mid_path(space, table)}.items():
        tag, cfg = f"{exp.name}-{name}", path_config(retrain_cfg, exp_cfg.model, arch)
        if cached_only and not cached(f"{tag}-scratch", iters, cache).is_file():
            continue
        key = cache / f"{tag}-inherited.json"
        if not key.is_file():
            export_subnet(exp_cfg, ckpt, arch, cache / f"{tag}-export")
            test = copy.deepcopy(cfg)
            test.load_from = str(cache / f"{tag}-export" / "subnet.pth")
            test.work_dir, test.log_level = str(cache / f"{tag}-inherited"), "WARNING"
            key.write_text(json.dumps({"mIoU": float(Runner.from_cfg(test).test()["mIoU"])}))
        scale_schedule(cfg, iters)
        alone = train(f"{tag}-scratch", cfg, iters, cache)["val_mIoU"]
        inherited = json.loads(key.read_text())["mIoU"]
        out[name] = dict(inherited=inherited, standalone=alone, fraction=inherited / alone,
                         mflops=table(arch).flops / 1e6)  # fmt: skip
        print(exp.name, name, json.dumps(out[name]), flush=True)
    return out


def write_pipeline(rows: dict[str, dict]) -> None:
    """Writes ``rows`` (run name -> fractions) beside the runs measured before."""
    OUT.mkdir(parents=True, exist_ok=True)
    saved = OUT / "recipes-pipeline.json"
    rows = {**(json.loads(saved.read_text()) if saved.is_file() else {}), **rows}
    saved.write_text(json.dumps(rows, indent=2))
    lines = [
        "inherited (the run's supernet, exported with BN recalibrated) / stand-alone (from "
        "scratch, the run's retrain recipe stretched to the supernet's iterations); val mIoU on "
        "synthseg (300 images), one seed per row (the run's)",
        "",
        "| run | supernet iterations | path (MFLOPs) | inherited | stand-alone | "
        "fraction (goal) |",
        "|---|---|---|---|---|---|",
    ]
    for run, v in rows.items():
        for path, goal in (("largest", "90%"), ("mid", "80%")):
            if path not in v:
                continue
            p = v[path]
            lines.append(f"| {run} | {v['supernet_iters']} | {path} ({p['mflops']:.1f}) | "
                         f"{p['inherited']:.2f} | {p['standalone']:.2f} | "
                         f"{p['fraction']:.0%} ({goal}) |")  # fmt: skip
    md = "\n".join(lines) + "\n"
    (OUT / "recipes-pipeline.md").write_text(md)
    print(md)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", type=Path, nargs="+",
                    help="raynas run folders: the fractions of their own supernets")  # fmt: skip
    ap.add_argument("--cached-only", action="store_true",
                    help="with --experiment: the paths whose trainings are cached")  # fmt: skip
    ap.add_argument("--supernet-iters", type=int, default=1500)
    ap.add_argument("--retrain-iters", type=int, default=1000)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES))
    ap.add_argument("--cache", type=Path, default=Path("/tmp/raynas-recipes"))
    args = ap.parse_args()
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401
    from raynas.config import load_config, space_and_table

    init_default_scope("mmseg")
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.experiment:
        write_pipeline({e.name: pipeline_fractions(e, args.cache, args.cached_only)
                        for e in args.experiment})  # fmt: skip
        return
    space, table = space_and_table(load_config(SUPERNET))
    paths = {"largest": space.extreme(True), "mid": mid_path(space, table),
             "smallest": space.extreme(False)}  # fmt: skip
    n, r = args.supernet_iters, args.retrain_iters
    rows = {}
    for recipe in args.recipes:
        start = time.time()
        base, ns = (
            RECIPES[recipe].get("base", recipe),
            round(n * RECIPES[recipe].get("iters_scale", 1)),
        )
        inherited = supernet(recipe, ns, paths, args.cache)
        alone = {p: standalone(base, paths[p], p, n, args.cache) for p in ("largest", "mid")}
        init = export_mid(recipe, ns, paths["mid"], args.cache)
        retrained = standalone(base, paths["mid"], "mid", r, args.cache, init=init,
                               tag=f"{recipe}-{ns}")  # fmt: skip
        scratch = standalone("adamw", paths["mid"], "mid", n + r, args.cache)
        rows[recipe] = dict(
            inherited=inherited, standalone=alone, retrain_inherit=retrained,
            scratch_plain_same_total=scratch, wall_s=time.time() - start,
            fraction={p: inherited[p] / alone[p] for p in alone}, supernet_iters=ns,
        )  # fmt: skip
        print(recipe, json.dumps(rows[recipe]), flush=True)
    flops = {p: table(a).flops / 1e6 for p, a in paths.items()}
    write(rows, flops, n, r)


def write(rows: dict, flops: dict, n: int, r: int) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "recipes.json").write_text(json.dumps(dict(rows=rows, mflops=flops, supernet_iters=n,
                                                      retrain_iters=r), indent=2))  # fmt: skip
    lines = [
        f"supernet {n} iterations, retrain {r}; val mIoU on synthseg (300 images); MFLOPs "
        + ", ".join(f"{p} {v:.1f}" for p, v in flops.items()),
        "",
        "| recipe | supernet iters (s) | inherited largest / mid / smallest | "
        "stand-alone largest / mid | inherited / stand-alone (largest, mid) | "
        "mid retrained from inherited | mid from scratch, AdamW, same total iterations |",
        "|---|---|---|---|---|---|---|",
    ]
    for recipe, v in rows.items():
        inh, alone, frac = v["inherited"], v["standalone"], v["fraction"]
        lines.append(
            f"| {recipe} | {v.get('supernet_iters', n)} ({inh.get('train_s', float('nan')):.0f}) "
            f"| {inh['largest']:.2f} / {inh['mid']:.2f} / {inh['smallest']:.2f} | "
            f"{alone['largest']:.2f} / {alone['mid']:.2f} | {frac['largest']:.0%}, "
            f"{frac['mid']:.0%} | {v['retrain_inherit']:.2f} | "
            f"{v['scratch_plain_same_total']:.2f} |"
        )
    md = "\n".join(lines) + "\n"
    (OUT / "recipes.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
