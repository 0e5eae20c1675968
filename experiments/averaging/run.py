"""Weight averaging: does averaging the supernet's late weights make it rank better?

The uniform supernet of ``ranking.py`` (the space sized to the 128-pixel input, AdamW, --iters)
is trained once per seed, keeping snapshots of its weights at every eighth of the run from the
half on; its 16 architectures' inherited selection-split mIoU (BN recalibrated) is then
measured with each of these weights in turn:
- ``final``: the weights at the end (what ``ranking.py`` measures);
- ``swa 2`` / ``swa 3`` / ``swa 5``: the mean of the snapshots at 3/4 and 1; at 1/2, 3/4 and 1;
  at 4/8, 5/8, ..., 1 of the run;
- ``swa every iteration``: mmengine's ``StochasticWeightAverage`` from the half on (the mean
  of every iteration's weights);
- ``ema``: mmengine's ``ExponentialMovingAverage``, momentum 6 / --iters.
The two averaged models are updated by a hook of this file, not by mmengine's ``EMAHook``:
``EMAHook`` swaps its average into the model around validation, which mmengine runs at the
end of training whatever ``val_interval`` says, and two of them on one runner swap in turn and
leave the weights permuted (the model ends with the SWA, the SWA hook with the EMA, the EMA hook
with the final weights; the figures before this fix were read that way).
Kendall tau, Spearman rho and top-5 overlap (``ranking.agreement``) against the stored
yardsticks of ``ranking.py``'s runs of the same 16 architectures (1200 and 2400 stand-alone
iterations), per seed and the mean.

Run:  python -m experiments.averaging.run [--iters 1200 --seeds 0 1 2]
(a 1200-iteration seed takes about 6 min on 2 cores, a 7200-iteration one about 17 min).
Cached per seed and run length in --cache; writes
experiments/averaging/results/averaging.{json,md}
(rows of other run lengths already there are kept) and prints the table.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import DATA
from experiments.ranking_variants import run as ranking

OUT = Path(__file__).resolve().parent / "results"
SPACE = {
    "model.backbone.arch_settings.dilations": (1, 2),
    "model.backbone.arch_settings.zooms": (1,),
}
YARDSTICKS = {y: DATA / f"ranking-input-sized-{y}.json" for y in ("1200", "2400")}
VARIANTS = ("final", "swa 2", "swa 3", "swa 5", "swa every iteration", "ema")


def _snapshots(at: list[int]) -> Any:
    from mmengine.hooks import Hook

    class Snapshots(Hook):
        def __init__(self) -> None:
            self.taken: dict[int, dict] = {}

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if runner.iter + 1 in at:
                self.taken[runner.iter + 1] = copy.deepcopy(runner.model.state_dict())

    return Snapshots()


def _averaged(kind: type, begin: int, **kwargs: Any) -> Any:
    """A hook keeping mmengine's averaged model ``kind`` of the weights from iteration
    ``begin`` on (as ``EMAHook`` would, without swapping it into the model)."""
    from mmengine.hooks import Hook

    class Averaged(Hook):
        def before_train(self, runner) -> None:
            self.model = kind(runner.model, **kwargs)

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            if runner.iter + 1 >= begin:
                self.model.update_parameters(runner.model)

    return Averaged()


def _mean(states: list[dict]) -> dict:
    return {k: sum(s[k] for s in states) / len(states) if v.is_floating_point() else v
            for k, v in states[-1].items()}  # fmt: skip


def weights(seed: int, iters: int, cache: Path) -> tuple[Any, dict[str, dict]]:
    """Trains the uniform supernet of ``seed``; its runner and each variant's weights."""
    from mmengine.model import ExponentialMovingAverage, StochasticWeightAverage
    from mmengine.runner import Runner

    cfg = ranking.seeded_cfg(ranking.SUPERNET / ranking.STRATEGIES["uniform"][0], seed, iters,
                             cache / f"uniform-s{seed}-{iters}")  # fmt: skip
    runner = Runner.from_cfg(cfg)
    eighth = iters // 8
    snaps = _snapshots([k * eighth for k in range(4, 8)] + [iters])
    swa = _averaged(StochasticWeightAverage, iters // 2)
    ema = _averaged(ExponentialMovingAverage, 0, momentum=6 / iters)
    for hook in (snaps, swa, ema):
        runner.register_hook(hook)
    runner.train()
    s = snaps.taken
    return runner, {
        "final": s[iters],
        "swa 2": _mean([s[6 * eighth], s[iters]]),
        "swa 3": _mean([s[4 * eighth], s[6 * eighth], s[iters]]),
        "swa 5": _mean([s[k * eighth] for k in range(4, 8)] + [s[iters]]),
        "swa every iteration": swa.model.module.state_dict(),
        "ema": ema.model.module.state_dict(),
    }


def scores(seed: int, iters: int, archs: list[dict], cache: Path) -> dict[str, list[float]]:
    """Each variant's inherited selection-split mIoU of ``archs`` (cached)."""
    from benchmarks.harness import evaluate_paths as evaluate

    key = cache / f"averaging-s{seed}-{iters}.json"
    if key.is_file():
        return json.loads(key.read_text())
    runner, variants = weights(seed, iters, cache)
    out = {}
    for name, state in variants.items():
        runner.model.load_state_dict(state)
        got = evaluate(runner, {str(i): a for i, a in enumerate(archs)})
        out[name] = [got[str(i)] for i in range(len(archs))]
        print(seed, name, ranking.agreement(out[name], _truth("1200")), flush=True)
    key.write_text(json.dumps(out))
    return out


@functools.cache
def _truth(yardstick: str) -> list[float]:
    return json.loads(YARDSTICKS[yardstick].read_text())["standalone"]


def table(
    rows: dict[str, dict[str, list[list[float]]]],
    variants: tuple = VARIANTS,
    first: str = "supernet iterations",
) -> str:
    """Markdown: per setting (``first``, e.g. the run length) and each of its ``variants``, tau
    per seed and the mean against each yardstick."""
    lines = [
        f"| {first} | weights | seeds | " + " | ".join(
            f"tau vs {y}-iteration yardstick (per seed) | mean" for y in YARDSTICKS) + " |",
        "|---|---|---|" + "---|---|" * len(YARDSTICKS),
    ]  # fmt: skip
    for setting, got in rows.items():
        for name in variants:
            runs = got.get(name)
            if not runs:
                continue
            cells = []
            for y in YARDSTICKS:
                taus = [ranking.agreement(r, _truth(y))["tau"] for r in runs]
                cells.append(" / ".join(f"{t:.2f}" for t in taus) + f" | {np.mean(taus):.3f}")
            lines.append(f"| {setting} | {name} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1200)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/raynas-averaging"))
    args = ap.parse_args()
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401

    init_default_scope("mmseg")
    ranking.CFG_OPTIONS.update(SPACE)
    args.cache.mkdir(parents=True, exist_ok=True)
    archs = ranking.architectures(16)
    path = OUT / "averaging.json"
    rows = json.loads(path.read_text()) if path.is_file() else {}
    runs = [scores(s, args.iters, archs, args.cache) for s in args.seeds]
    rows[str(args.iters)] = {v: [r[v] for r in runs if v in r] for v in VARIANTS}
    path.write_text(json.dumps(rows, indent=1))
    md = (
        "Uniform supernet (the space sized to the 128-pixel input, AdamW), 16 architectures of "
        "`ranking.py`; Kendall tau of the inherited selection-split mIoU against stand-alone "
        "val mIoU (the mean of 2 seeds), per supernet seed and the mean over seeds. The "
        "7200-iteration rows come from the script's first version (one EMAHook, for 'swa every "
        "iteration'; no 'swa 2' or 'ema').\n\n" + table(rows)
    )
    (OUT / "averaging.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
