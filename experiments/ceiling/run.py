"""The search space's ceiling, before and after the head's 1/4 detail branch (``head.detail``).

Paths of the experiment's space are trained from scratch as plain mmseg models with exactly
the experiment's retrain config (optimizer, schedule, iterations; the schedule mmseg's models
get in ``vs_mmseg.py``): the largest path (largest dilation everywhere), the same with
dilation 1 everywhere (``largest-d1``), and the experiment's found subnets, each without
and with the detail branch (``backbone.stem_out=True``, ``decode_head.details=(0, 1)``). Val
mIoU, MFLOPs and CPU latency (batch 1, 1 thread, every model measured back to back in this
process) go in one table with mmseg's real-time models as ``vs_mmseg.py`` trained them (their
cached results in --baselines). Trainings are cached in --cache.

With ``--inherit EXP`` (an experiment that searched the branch) the paths with the branch are
also retrained as the pipeline retrains a found model: exported from EXP's supernet, trained
from those weights with EXP's retrain config (``inherit-`` rows).

Run:  python -m experiments.ceiling.run --experiment runs/quickstart [--inherit runs/quickstart-2]
Writes experiments/ceiling/results/ceiling.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import yaml

OUT = Path(__file__).resolve().parent / "results"


def with_detail(model: Any) -> Any:
    """A supernet model config whose space adds ``head.detail`` (0 or 1)."""
    model = copy.deepcopy(model)
    model.backbone.stem_out = True
    model.decode_head.details = (0, 1)
    stem = (model.backbone.get("arch_settings") or {}).get("stem_channels", (16, 32))
    model.decode_head.detail_channels = int(stem[-1])
    return model


def path_config(retrain_cfg: Any, supernet_model: Any, arch: dict) -> Any:
    """The retrain config with the static model of ``arch`` in ``supernet_model``'s space."""
    from mmseg.registry import MODELS

    from mmseg_plugins.arch import path_widths, search_space, subnet_model_cfg

    supernet = MODELS.build(copy.deepcopy(supernet_model))
    arch = search_space(supernet).validate(arch)
    cfg = copy.deepcopy(retrain_cfg)
    cfg.model = subnet_model_cfg(supernet_model, arch, path_widths(supernet, arch))
    cfg.pop("load_from", None)
    return cfg


def variants(exp: Path, supernet_model: Any) -> list[tuple[str, Any, dict]]:
    """(name, supernet model config, arch) of every path to train."""
    from mmseg.registry import MODELS

    from mmseg_plugins.arch import search_space

    largest = search_space(MODELS.build(copy.deepcopy(supernet_model))).extreme(True)
    # the largest path takes the largest dilation (8) everywhere: at 128x128 that spans the
    # 1/8 map and passes the 1/16 and 1/32 ones; the same capacity with dilation 1 throughout
    plain = {k: 1 if k.endswith(".dilation") else v for k, v in largest.items()}
    dirs = [d for d in sorted((exp / "subnets").iterdir()) if (d / "arch.yaml").is_file()]
    found = {d.name: yaml.safe_load((d / "arch.yaml").read_text())["arch"] for d in dirs}
    out = []
    for name, arch in {"largest": largest, "largest-d1": plain, **found}.items():
        out.append((name, supernet_model, arch))
        out.append((f"{name}+detail", with_detail(supernet_model), {**arch, "head.detail": 1}))
    return out


def inherited(name: str, exp: Path, arch: dict, iters: int, cache: Path) -> tuple[dict, Any]:
    """``arch`` retrained as the pipeline retrains a found model: exported from ``exp``'s
    supernet (BN recalibrated), then trained from those weights with ``exp``'s retrain config."""
    from benchmarks.vs_mmseg import found_models, train
    from raynas.config import load_config
    from raynas.export import export_subnet

    found = Path(found_models(exp)[0]["config"])
    out = cache / f"inherit-{name}-export"
    if not (out / "subnet.py").is_file():
        provenance = yaml.safe_load((found.parent / "arch.yaml").read_text())["provenance"]
        export_subnet(load_config(exp / "config.py"), provenance["supernet_checkpoint"], arch, out)
    cfg = load_config(found)
    cfg.model, cfg.load_from = load_config(out / "subnet.py").model, str(out / "subnet.pth")
    return dict(train(f"inherit-{name}", cfg, iters, cache), arch=arch), cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", type=Path, required=True)
    ap.add_argument("--iters", type=int, help="default: the experiment's retrain iterations")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/raynas-ceiling"))
    only = "train only these paths (e.g. largest largest+detail), to split the work; no table"
    ap.add_argument("--only", nargs="+", help=only)
    inherit = (
        "an experiment whose space has head.detail (a quickstart run): its paths with the "
        "branch are also retrained from its supernet's weights with its retrain config"
    )
    ap.add_argument("--inherit", type=Path, help=inherit)
    ap.add_argument("--baselines", type=Path, default=Path("/tmp/raynas-vs-mmseg"),
                    help="vs_mmseg.py's cache: mmseg models on the same schedule")  # fmt: skip
    args = ap.parse_args()
    import torch
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401
    from benchmarks.vs_mmseg import found_models, train
    from raynas.baselines import baseline_config, model_cost
    from raynas.config import load_config

    init_default_scope("mmseg")
    torch.set_num_threads(1)
    args.cache.mkdir(parents=True, exist_ok=True)
    exp_cfg = load_config(args.experiment / "config.py")
    retrain_cfg = load_config(found_models(args.experiment)[0]["config"])
    iters = args.iters or exp_cfg.tune_cfg.retrain.iters
    size = tuple(retrain_cfg.model.data_preprocessor.size)
    trained = []
    for name, model, arch in variants(args.experiment, exp_cfg.model):
        if args.only and name not in args.only:
            continue
        cfg = path_config(retrain_cfg, model, arch)
        trained.append((dict(train(name, cfg, iters, args.cache), arch=arch), cfg))
        if args.inherit and name.endswith("+detail"):
            trained.append(inherited(name, args.inherit, arch, iters, args.cache))
        print(json.dumps(trained[-1][0]), flush=True)
    if args.only:
        return
    for path in sorted(args.baselines.glob(f"*-{iters}.json")):
        result = json.loads(path.read_text())
        cfg = baseline_config(result["name"], retrain_cfg)
        trained.append((dict(result, name=f"mmseg {result['name']}"), cfg))
    rows = []  # costs measured after all training, back to back, so latencies compare
    for result, cfg in trained:
        ckpt = result["checkpoint"] if not result["name"].startswith("mmseg") else None
        rows.append({**result, **model_cost(cfg.model, size, ckpt)})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "arch"}), flush=True)
    write(rows, iters, size)


def write(rows: list[dict], iters: int, size: tuple) -> None:
    from benchmarks.vs_mmseg import cost_table

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "ceiling.json").write_text(json.dumps(dict(rows=rows, iters=iters), indent=2))
    md = cost_table(rows, f"synthseg val mIoU after {iters} iterations from scratch of the "
                    "experiment's retrain config; CPU latency batch 1 at "
                    f"{size[0]}x{size[1]}, 1 thread, measured in one process")  # fmt: skip
    (OUT / "ceiling.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
