"""What every benchmark shares: paths, seeds, the machine header, cached runs, results files.

Run benchmarks from the repository root as modules (``python -m benchmarks.vs_mmseg``), so that
they import each other and :mod:`benchmarks.harness` as a package (no path manipulation).

- ``RESULTS`` (``benchmarks/results/``): each benchmark's current table, ``NAME.json`` and
  ``NAME.md``, both headed by the date, the machine and the command (:func:`write`); no
  benchmark reads another's results.
- ``DATA`` (``benchmarks/data/``): frozen inputs kept in git (stand-alone yardsticks, recorded
  accuracies), which no benchmark overwrites.
- ``CACHE`` (``$RAYNAS_BENCH_CACHE``, default ``.cache/benchmarks/``): stand-alone trainings
  and other long computations (:func:`cached`), so that a rerun redoes only what changed.
"""

from __future__ import annotations

import datetime
import importlib.metadata as metadata
import json
import os
import platform
import random
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = [
    "CACHE",
    "DATA",
    "RECIPES",
    "RESULTS",
    "ROOT",
    "apply_recipe",
    "cached",
    "evaluate_paths",
    "machine",
    "pipeline",
    "saved_tensor_mb",
    "seed_everything",
    "state",
    "write",
]

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DATA = ROOT / "benchmarks" / "data"
CACHE = Path(os.environ.get("RAYNAS_BENCH_CACHE", ROOT / ".cache" / "benchmarks"))


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                             capture_output=True, text=True, check=True)  # fmt: skip
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """Date, CPU, cores, GPU, Python, torch and the OpenMMLab stack of this run."""
    import torch

    stack = "onedl" if _version("onedl-mmcv") else "upstream"
    mm = {
        d: _version(d)
        for d in (
            ("onedl-mmcv", "onedl-mmengine", "onedl-mmsegmentation")
            if stack == "onedl"
            else ("mmcv", "mmengine", "mmsegmentation")
        )
    }
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return dict(
        date=datetime.date.today().isoformat(), cpu=_cpu(), cores=os.cpu_count(), gpu=gpu,
        python=platform.python_version(), torch=torch.__version__,
        numpy=_version("numpy"), stack=stack, **mm,
        commit=_commit(),
    )  # fmt: skip


def _command() -> str:
    module = sys.modules["__main__"].__spec__
    head = f"python -m {module.name}" if module else f"python {sys.argv[0]}"
    return " ".join([head, *map(shlex.quote, sys.argv[1:])])


def header(info: dict[str, Any], command: str) -> str:
    """The markdown line that heads every results table."""
    where = f"{info['cores']} cores, {info['cpu']}" + (f", {info['gpu']}" if info["gpu"] else "")
    return (f"Measured {info['date']} on {where}; Python {info['python']}, torch {info['torch']}, "
            f"{info['stack']} OpenMMLab stack; commit {info['commit']}.  \n"
            f"Command: `{command}`")  # fmt: skip


def write(name: str, result: dict[str, Any], markdown: str, out: Path = RESULTS) -> Path:
    """Writes ``out/name.json`` (``result`` with the machine and command) and ``out/name.md``
    (the header, then ``markdown``); prints the markdown. Returns the markdown file."""
    info, command = machine(), _command()
    out.mkdir(parents=True, exist_ok=True)
    doc = dict(result, machine=info, command=command)
    (out / f"{name}.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    text = f"{header(info, command)}\n\n{markdown.rstrip()}\n"
    path = out / f"{name}.md"
    path.write_text(text)
    print(text, flush=True)
    return path


def cached(key: str, make: Callable[[], dict[str, Any]], cache: Path = CACHE) -> dict[str, Any]:
    """``make()``'s result, computed once and kept as ``cache/key.json``."""
    path = cache / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, default=str))
    return result


def saved_tensor_mb(step: Callable[[], Any]) -> float:
    """MiB of the distinct tensor storages autograd saves for backward while ``step()`` runs
    (:func:`raynas.memory.saved_bytes`)."""
    from raynas.memory import saved_bytes

    return saved_bytes(step) / 2**20


def seed_everything(seed: int) -> None:
    """Seeds Python, numpy and torch (CPU and CUDA)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---- the training recipes of the benchmarks (and the experiments) ---------------------------
RECIPES: dict[str, dict[str, Any]] = {
    "sgd": dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9, weight_decay=4e-5), warmup=0),
    "adamw": dict(
        optimizer=dict(type="AdamW", lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4),
        warmup=100,
    ),
}
# supernet-only variants: AdamW plus a distiller, at the wall time of 1500 uniform iterations
# (sandwich: 3 paths per step, measured ~3x the time per iteration; cream ~1.3x once active)
RECIPES["adamw+sandwich"] = dict(RECIPES["adamw"], base="adamw", iters_scale=1 / 3,
                                 distill=dict(type="sandwich"))  # fmt: skip
RECIPES["adamw+cream"] = dict(RECIPES["adamw"], base="adamw", iters_scale=0.8,
                              distill=dict(type="cream"))  # fmt: skip


def apply_recipe(cfg: Any, recipe: str, iters: int) -> None:
    """Optimizer, clip 5, poly decay to 0 over ``iters`` (after a linear warm-up)."""
    spec = RECIPES[recipe]
    cfg.optim_wrapper = dict(type="OptimWrapper", optimizer=dict(spec["optimizer"]),
                             clip_grad=dict(max_norm=5.0))  # fmt: skip
    warm = min(spec["warmup"], iters // 5)  # short runs keep a proportionate warm-up
    scheds = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=warm, end=iters, by_epoch=False)]
    if warm:
        scheds.insert(0, dict(type="LinearLR", start_factor=0.01, begin=0, end=warm,
                              by_epoch=False))  # fmt: skip
    cfg.param_scheduler = scheds
    cfg.train_cfg.max_iters = iters
    cfg.train_cfg.val_interval = iters
    if spec.get("distill"):
        cfg.custom_hooks[0].distill = dict(spec["distill"])


def evaluate_paths(runner: Any, paths: dict[str, dict]) -> dict[str, float]:
    """Inherited val-loader mIoU of each named path of ``runner``'s supernet (BN recalibrated
    on 8 training batches)."""
    from mmengine.evaluator import Evaluator

    from mmseg_plugins.bn_calib import calibration_loader
    from mmseg_plugins.path_eval import evaluate_path

    calib = calibration_loader(runner.train_dataloader.dataset, 8)
    evaluator = Evaluator(runner.cfg.val_evaluator)
    evaluator.dataset_meta = runner.val_dataloader.dataset.metainfo
    size = len(runner.val_dataloader.dataset)
    return {
        name: float(
            evaluate_path(runner.model, arch, calib, 8, runner.val_dataloader, evaluator, size)[
                "mIoU"
            ]
        )
        for name, arch in paths.items()
    }


def state(exp: Path) -> dict[str, Any]:
    """An experiment's ``pipeline.json``."""
    return json.loads((exp / "pipeline.json").read_text())


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> leaf value of nested dicts (lists are leaves)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        out.update(_flat(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def donor_differences(exp: Path, donor: Path, adopt: tuple[str, ...],
                      may_differ: tuple[str, ...] = ()) -> list[str]:  # fmt: skip
    """The config keys at which ``donor`` ran otherwise than ``exp`` would, leaving out the
    ``tune_cfg`` of the phases ``exp`` runs itself (those not in ``adopt``) and the keys under
    ``may_differ`` (dotted); each as ``key: donor value -> exp value``."""
    from mmengine.config import Config

    mine, theirs = (_flat(Config.fromfile(str(e / "config.py")).to_dict()) for e in (exp, donor))
    own = {k.split(".")[1] for k in (*mine, *theirs) if k.startswith("tune_cfg.")} - set(adopt)
    skip = tuple(f"tune_cfg.{p}." for p in own) + tuple(f"{m}." for m in may_differ)
    keys = sorted(k for k in {*mine, *theirs} if not f"{k}.".startswith(skip))
    return [f"{k}: {theirs.get(k, '(unset)')!r} -> {mine.get(k, '(unset)')!r}"
            for k in keys if mine.get(k, "(unset)") != theirs.get(k, "(unset)")]  # fmt: skip


def _check_donor(exp: Path, donor: Path, adopt: tuple[str, ...],
                 may_differ: tuple[str, ...]) -> None:  # fmt: skip
    """Removes the new experiment ``exp`` and raises ValueError where ``donor`` trained its
    ``adopt`` phases under another config (:func:`donor_differences`)."""
    differ = donor_differences(exp, donor, adopt, may_differ)
    if differ:
        shutil.rmtree(exp)
        raise ValueError(
            f"donor {donor} ran its {', '.join(adopt)} phase(s) under another config than "
            f"{exp.name}: {'; '.join(differ[:5])}{' ...' if len(differ) > 5 else ''}. Take "
            "the phases from an experiment made with the same config and options "
            "(--supernet-from, --donor), or train them anew."
        )


def pipeline(config: Path, storage: Path, name: str, donor: Path | None = None,
             until: str | None = None, adopt: tuple[str, ...] = ("supernet",),
             may_differ: tuple[str, ...] = (), **options: Any) -> Path:  # fmt: skip
    """An experiment run (``raynas resume``, in a subprocess) to ``until``; with a ``donor``
    experiment, its finished ``adopt`` phases (and their archive files) are taken over, not
    rerun, once :func:`donor_differences` finds the donor's config the same outside the other
    phases' ``tune_cfg`` and ``may_differ`` (ValueError otherwise)."""
    from raynas.tune.pipeline import Pipeline

    exp = storage / name
    if not (exp / "pipeline.json").is_file():
        Pipeline.create(config, str(storage), name, options)
        if donor is not None:
            _check_donor(exp, donor, adopt, may_differ)
            phases, given = state(exp), state(donor)["phases"]
            for phase in adopt:
                phases["phases"][phase] = given[phase]
                for file in (donor / "archive").glob(f"{phase}-*.parquet"):
                    (exp / "archive").mkdir(exist_ok=True)
                    shutil.copy(file, exp / "archive" / file.name)
            (exp / "pipeline.json").write_text(json.dumps(phases, indent=2))
    if not state(exp)["phases"].get(until or "report", {}).get("done"):
        cmd = [sys.executable, "-m", "raynas.cli", "resume", str(exp), "--quiet"]
        subprocess.run(cmd + (["--until", until] if until else []), check=True, cwd=ROOT)
    return exp
