"""SSR on the embedded dataset: the discretisation gap, SSR against NSGA-II, cost per step.

1. **Discretisation gap**: from one trained supernet, SSR searches (``SSRHook`` on the Runner,
   the SSR quickstart's options) with the SSR loss on and off (all loss weights 0); at the end,
   the relaxed supernet's selection-split mIoU against the derived architecture's (inherited
   weights, BN recalibrated). The paper's claim: the SSR loss closes the gap.
2. **SSR against NSGA-II at equal search wall time**: ``configs/quickstart.py`` (NSGA-II) runs
   whole; ``configs/ssr_quickstart.py`` runs on the *same* supernet (its supernet phase is the
   NSGA-II experiment's, copied into its state) with the same retraining; a second NSGA-II run
   on that supernet gets as many candidates as fit in SSR's search time (at the first run's
   measured wall time per candidate). Compared: the retrained found
   models' val mIoU, FLOPs and CPU latency (batch 1, measured here).
3. **Cost**: seconds per iteration of each shrink step (the search speeds up as candidates
   go), and the activation memory saved for backward by one relaxed training step (all
   candidates) against single-path steps (bytes of the tensors autograd keeps, counted
   exactly with saved-tensor hooks; the peak of a step's memory on a GPU follows them).

Run:  python -m benchmarks.ssr [--storage .cache/benchmarks/ssr]   (about 40 min on 2 CPU cores)
Writes benchmarks/results/ssr.{json,md} and prints the tables. Pipelines are kept in
--storage, so a rerun reuses them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import harness

ROOT = harness.ROOT


def _raynas(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "raynas.cli", *args, "--quiet"], check=True, cwd=ROOT)


def _state(exp: Path) -> dict[str, Any]:
    return json.loads((exp / "pipeline.json").read_text())


def _create(config: str, storage: Path, name: str, donor: Path | None, **options: Any) -> Path:
    """A new experiment (with ``donor``'s finished supernet phase, if given)."""
    from raynas.tune.pipeline import Pipeline

    exp = storage / name
    if not (exp / "pipeline.json").is_file():
        Pipeline.create(ROOT / "configs" / config, str(storage), name,
                        {f"tune_cfg.{k}": v for k, v in options.items()})  # fmt: skip
        if donor is not None:
            state = _state(exp)
            state["phases"]["supernet"] = _state(donor)["phases"]["supernet"]
            (exp / "pipeline.json").write_text(json.dumps(state, indent=2))
    if not _state(exp)["phases"].get("report", {}).get("done"):
        _raynas("resume", str(exp))
    return exp


def pipelines(storage: Path, equal_time: bool = True) -> dict[str, Path]:
    """NSGA-II's and SSR's quickstarts on one supernet, at about equal search wall time."""
    donor = _create("quickstart.py", storage, "supernet", None,  # the NSGA-II quickstart
                    **{"supernet.iters": 1500, "supernet.report_interval": 500})  # fmt: skip
    ssr = _create(
        "ssr_quickstart.py",
        storage,
        "ssr",
        donor,
        **{"supernet.iters": 1500, "retrain.iters": 2000, "retrain.report_interval": 1000},
    )
    if not equal_time:
        return {"NSGA-II (24 candidates)": donor, "SSR": ssr}
    wall, donor_search = (_state(e)["phases"]["search"] for e in (ssr, donor))
    per_candidate = donor_search["wall_s"] / donor_search["evaluated"]  # measured, same machine
    n = max(24, round(wall["wall_s"] / per_candidate))
    nsga = _create("quickstart.py", storage, "nsga2", donor, **{"search.num_candidates": n})
    return {"NSGA-II (24 candidates)": donor, f"NSGA-II ({n} candidates)": nsga, "SSR": ssr}


def found(exp: Path) -> list[dict[str, Any]]:
    """The retrained found models: val mIoU, FLOPs, params and CPU latency (batch 1)."""
    import pandas as pd

    from raynas.baselines import model_cost
    from raynas.config import load_config

    frame = pd.read_parquet(exp / "archive")
    final = frame[(frame.phase == "retrain") & (frame.split == "val")]
    out = []
    for r in final.sort_values("iteration").groupby("path").tail(1).itertuples():
        cfg = load_config(exp / "subnets" / r.path / "subnet.py")
        cost = model_cost(cfg.model, tuple(cfg.model.data_preprocessor.size))
        out.append(dict(name=r.path, val_mIoU=float(r.mIoU), **cost))
    return out


def compare(storage: Path, equal_time: bool) -> dict[str, Any]:
    rows = {}
    for name, exp in pipelines(storage, equal_time).items():
        state = _state(exp)["phases"]
        rows[name] = dict(search_s=state["search"]["wall_s"], models=found(exp),
                          best=state["retrain"]["best"]["mIoU"])  # fmt: skip
    return rows


def _ssr_runner(exp: Path, work: Path, ssr: dict[str, Any], loss_on: bool) -> dict[str, Any]:
    """An SSR search on the experiment's supernet through the Runner; relaxed vs derived."""
    from mmengine.runner import Runner

    from mmseg_plugins.checkpoint import CKPT_NAME
    from raynas.config import apply_selection_split, config_from_text
    from raynas.tune.phases.ssr import ssr_hook

    key = work.with_suffix(".json")
    if key.is_file():
        return json.loads(key.read_text())
    cfg = config_from_text((exp / "config.py").read_text())
    apply_selection_split(cfg)
    cfg.work_dir, cfg.log_level = str(work), "WARNING"
    cfg.train_cfg = dict(type="IterBasedTrainLoop", max_iters=ssr["iters"],
                         val_interval=ssr["shrink_interval"])  # fmt: skip
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=10**6)
    weights = ssr["loss_weights"] if loss_on else {k: 0.0 for k in ssr["loss_weights"]}
    cfg.custom_hooks = [ssr_hook({**ssr, "loss_weights": weights})]
    ckpt = _state(exp)["phases"]["supernet"]["checkpoint"]
    cfg.load_from = str(Path(ckpt) / CKPT_NAME)
    runner = Runner.from_cfg(cfg)
    metrics: list[dict] = []
    runner.register_hook(_Metrics(metrics), "LOWEST")
    start = time.time()
    runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == "SSRHook")
    out = dict(loss_on=loss_on, sample_k=ssr.get("sample_k", 0),
               seconds=time.time() - start, history=hook.history,
               relaxed_mIoU=[m["relaxed"] for m in metrics],
               derived_mIoU=[m["derived/mIoU"] for m in metrics], **hook.summary())  # fmt: skip
    key.write_text(json.dumps(out, default=float))
    return out


class _Metrics:
    """Records the relaxed and the derived mIoU of every validation (a Runner hook)."""

    def __new__(cls, out: list[dict]):
        from mmengine.hooks import Hook

        class _Hook(Hook):
            def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
                relaxed = runner.message_hub.get_scalar("strategy/relaxed_mIoU").current()
                out.append({**(metrics or {}), "relaxed": float(relaxed)})

        return _Hook()


def gap(exp: Path, work: Path, target: float, lr: float) -> list[dict[str, Any]]:
    """SSR with the loss on and off (all candidates), and on with 2 candidates drawn per row,
    from the SSR experiment's supernet and options."""
    from raynas.config import config_from_text
    from raynas.tune.options import resolve_tune_cfg

    cfg = config_from_text((exp / "config.py").read_text())
    ssr = {**resolve_tune_cfg(cfg.tune_cfg)["search"]["ssr"], "target_flops": target}
    ssr["arch_optimizer"] = {**ssr["arch_optimizer"], "lr": lr}
    runs = [_ssr_runner(exp, work / f"gap-{'on' if on else 'off'}", ssr, on) for on in (1, 0)]
    return [*runs, _ssr_runner(exp, work / "gap-on-k2", {**ssr, "sample_k": 2}, True)]


def step_cost(exp: Path, steps: int = 3) -> dict[str, dict[str, float]]:
    """MB of tensors saved for backward and median seconds of forward + backward, one training
    step each (batch 8, 128x128, one thread)."""
    import statistics

    import numpy as np
    import torch

    from mmseg_plugins.arch import search_space, set_arch, set_relaxed
    from raynas.config import config_from_text
    from raynas.core.ssr import ArchWeights
    from raynas.export import build_supernet

    torch.set_num_threads(1)
    model = build_supernet(config_from_text((exp / "config.py").read_text())).train()
    space, x = search_space(model), torch.randn(8, 3, 128, 128)

    def step() -> float:
        start = time.perf_counter()
        model.decode_head(model.backbone(x)).sum().backward()
        model.zero_grad(set_to_none=True)
        return time.perf_counter() - start

    def measure() -> dict[str, float]:
        mb = harness.saved_tensor_mb(step)  # also the warm-up
        return dict(mb=mb, s=statistics.median(step() for _ in range(steps)))

    out = {}
    for name, arch in (
        ("largest path", space.extreme(True)),
        ("smallest path", space.extreme(False)),
        ("random path", space.canonical(space.sample(np.random.default_rng(0)))),
    ):
        set_arch(model, arch)
        out[name] = measure()
    weights = ArchWeights(space)
    set_relaxed(model, weights)
    out["relaxed, all candidates"] = measure()
    set_relaxed(model, weights.sample(2, torch.Generator().manual_seed(0)))
    out["relaxed, 2 drawn per row (sample_k=2)"] = measure()
    set_relaxed(model, weights)
    with torch.no_grad():
        for label in weights.rows:
            if label.endswith((".dilation", ".zoom")):
                weights.mask(label).zero_()
                weights.mask(label)[0] = True
    out["relaxed, dilation and zoom decided"] = measure()
    set_relaxed(model, None)
    return out


def write(result: dict[str, Any]) -> None:
    lines = ["## 1. Discretisation gap (selection-split mIoU at the end of the search; "
             f"alpha lr {result['gap_lr']})", "",
             "| SSR loss | iterations run | candidates left | relaxed mIoU | derived mIoU | gap |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for g in result["gap"]:
        its = g["history"][-1]["iter"] if g["history"] else 0
        k = f", {g['sample_k']} drawn per row" if g.get("sample_k") else ""
        lines.append(f"| {'on' if g['loss_on'] else 'off'}{k} | {its} | "
                     f"{int(g['candidates_left'])}"
                     f" | {g['relaxed_mIoU'][-1]:.2f} | {g['derived_mIoU'][-1]:.2f} | "
                     f"{g['relaxed_mIoU'][-1] - g['derived_mIoU'][-1]:.2f} |")  # fmt: skip
    lines += ["", "## 2. SSR against NSGA-II (same supernet, same retraining)", "",
              "| search | search wall s | model | val mIoU | MFLOPs | CPU latency ms |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in result["compare"].items():
        for m in r["models"]:
            lines.append(f"| {name} | {r['search_s']:.0f} | {m['name']} | {m['val_mIoU']:.2f} | "
                         f"{m['flops'] / 1e6:.1f} | {m['latency_ms']:.2f} |")  # fmt: skip
    lines += [
        "",
        "## 3. Cost",
        "",
        "Seconds per SSR iteration (weight + alpha step) between shrink steps (SSR loss on; "
        "all candidates, then 2 drawn per row):",
        "",
        "| candidates per row | shrink step at iter | candidates left | s/iteration |",
        "|---|---|---|---|",
    ]
    for g in result["gap"]:
        for h in g["history"] if g["loss_on"] else []:
            lines.append(f"| {g.get('sample_k') or 'all'} | {h['iter']} | "
                         f"{h['candidates_left']} | {h['s_per_iter']:.2f} |")  # fmt: skip
    lines += ["", "One training step, forward + backward (batch 8, 128x128, one thread): the "
              "tensors saved for backward and the median time:", "",
              "| step | MB | s |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {k} | {v['mb']:.0f} | {v['s']:.2f} |" for k, v in result["memory"].items()]
    harness.write("ssr", json.loads(json.dumps(result, default=float)), "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", type=Path, default=harness.CACHE / "ssr")
    ap.add_argument("--target-flops", type=float, default=50e6)
    ap.add_argument("--gap-lr", type=float, default=0.5, help="alpha's lr in part 1")
    ap.add_argument(
        "--no-equal-time",
        action="store_true",
        help="skip the NSGA-II run given SSR's search time (compare with the 24)",
    )
    args = ap.parse_args()
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401

    init_default_scope("mmseg")
    args.storage.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = dict(compare=compare(args.storage, not args.no_equal_time))
    result["gap_lr"] = args.gap_lr
    result["gap"] = gap(args.storage / "ssr", args.storage, args.target_flops, args.gap_lr)
    result["memory"] = step_cost(args.storage / "ssr")
    write(result)


if __name__ == "__main__":
    main()
