"""Which shared dimension keeps inherited accuracy low: dilation and zoom sharing one kernel?

Every layer's dilation (1, 2, 4, 8) and zoom (1/2 or full resolution) choices use the same
weights. This trains the uniform AdamW supernet of ``recipes.py`` on the space with dilation
and zoom fixed to 1, and with dilation {1, 2} (zoom kept), depth, width, operator and head
still searched, and evaluates the same
paths (largest, mid and smallest of ``recipes.py``, projected to dilation 1 / zoom 1) in it and
in the full-space supernet of ``recipes.py`` (same recipe, same iterations, its cached
checkpoint). Inherited val mIoU, BN recalibrated.

Also the supernet trained on one fixed path (no sampler) against that path stand-alone: the
supernet's own machinery (elastic layers, BN recalibration, evaluation) should lose nothing.

Run:  python -m experiments.sharing.run [--iters 1500]   (after recipes.py, whose cache it reads)
Writes experiments/sharing/results/sharing.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "results"


def project(arch: dict) -> dict:
    return {k: 1 if k.endswith((".dilation", ".zoom")) else v for k, v in arch.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1500)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/raynas-recipes"))
    args = ap.parse_args()
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import mmseg_plugins  # noqa: F401
    from raynas.config import load_config, space_and_table

    init_default_scope("mmseg")
    from benchmarks import harness as recipes
    from benchmarks.harness import evaluate_paths as evaluate

    space, table = space_and_table(load_config(recipes.SUPERNET))
    paths = {"largest": space.extreme(True), "mid": recipes.mid_path(space, table),
             "smallest": space.extreme(False)}  # fmt: skip
    paths = {k: project(v) for k, v in paths.items()}
    rows = {}
    variants = (("full space", None), ("dilation, zoom fixed to 1", ((1,), (1,))),
                ("dilation {1, 2}, zoom {1/2, 1}", ((1, 2), (2, 1))),
                ("dilation {1, 2, 4, 8}, zoom fixed to 1", ((1, 2, 4, 8), (1,))))  # fmt: skip
    for name, fixed in variants:
        tag = ("full" if fixed is None else "fixed" if fixed[0] == (1,)
               else "d12" if fixed[0] == (1, 2) else "z1")  # fmt: skip
        key = args.cache / f"sharing-{tag}-{args.iters}.json"
        if key.is_file():
            rows[name] = json.loads(key.read_text())
            continue
        cfg = load_config(recipes.SUPERNET)
        recipes.apply_recipe(cfg, "adamw", args.iters)
        cfg.val_cfg.calib_batches = 8
        if fixed:
            cfg.model.backbone.arch_settings.dilations = fixed[0]
            cfg.model.backbone.arch_settings.zooms = fixed[1]
        work = args.cache / f"sharing-{tag}-{args.iters}"
        runner = recipes._runner(cfg, work)
        start = time.time()
        if fixed:
            runner.train()
        else:
            ckpt = args.cache / f"supernet-adamw-{args.iters}" / f"iter_{args.iters}.pth"
            load_checkpoint(runner.model, str(ckpt), map_location="cpu", logger="silent")
        rows[name] = {**evaluate(runner, paths), "train_s": time.time() - start}
        key.write_text(json.dumps(rows[name]))
        print(name, rows[name], flush=True)
    old = args.cache / f"sharing-separate-{args.iters}.json"  # an option removed since
    if old.is_file():
        name = "default space, separate weights per dilation and zoom (at commit 4b7b04b)"
        rows[name] = json.loads(old.read_text())
    one = one_path(space.extreme(True), args.iters, args.cache)
    write(rows, args.iters, {k: table(v).flops / 1e6 for k, v in paths.items()}, one)


def one_path(arch: dict, iters: int, cache: Path) -> dict[str, float]:
    """The supernet trained on ``arch`` only (no sampler), against ``arch`` trained
    stand-alone: do the supernet's elastic layers, BN recalibration and evaluation lose
    anything by themselves?"""
    from benchmarks import harness as recipes
    from benchmarks.harness import evaluate_paths as evaluate
    from mmseg_plugins import set_arch
    from raynas.config import load_config

    key = cache / f"sharing-onepath-{iters}.json"
    if not key.is_file():
        cfg = load_config(recipes.SUPERNET)
        recipes.apply_recipe(cfg, "adamw", iters)
        cfg.custom_hooks = []
        runner = recipes._runner(cfg, cache / f"sharing-onepath-{iters}")
        set_arch(runner.model, arch)
        start = time.time()
        runner.train()
        out = dict(inherited=evaluate(runner, {"largest": arch})["largest"],
                   train_s=time.time() - start)  # fmt: skip
        key.write_text(json.dumps(out))
    out = json.loads(key.read_text())
    alone = recipes.standalone("adamw", arch, "largest", iters, cache)
    return {**out, "standalone": alone}


def write(rows: dict, iters: int, flops: dict, one: dict) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    result = dict(rows=rows, iters=iters, one_path=one)
    (OUT / "sharing.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"uniform supernet, AdamW, {iters} iterations; inherited val mIoU (synthseg, BN "
        "recalibrated) of the same paths with dilation 1 and zoom 1 (MFLOPs "
        + ", ".join(f"{k} {v:.1f}" for k, v in flops.items())
        + ")",
        "",
        "| supernet space | largest | mid | smallest |",
        "|---|---|---|---|",
    ]
    lines += [f"| {k} | {v['largest']:.2f} | {v['mid']:.2f} | {v['smallest']:.2f} |"
              for k, v in rows.items()]  # fmt: skip
    lines += ["", f"The supernet trained on one fixed path (the largest, no sampler), {iters} "
              f"iterations: inherited {one['inherited']:.2f} val mIoU; the same path trained "
              f"stand-alone: {one['standalone']:.2f}."]  # fmt: skip
    md = "\n".join(lines) + "\n"
    (OUT / "sharing.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
