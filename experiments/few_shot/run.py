"""Few-shot supernets: does splitting the supernet by one choice make it rank better?

Few-shot NAS (Zhao et al., ICML 2021) splits a one-shot supernet into sub-supernets, one per
choice of an operation, each initialised from the trained parent, so that paths which differ in
that choice stop sharing (and fighting over) the same weights. Here the uniform supernet of
``ranking.py`` (the space sized to the 128-pixel input, AdamW, --iters) is trained for the
first ``--at`` share of its iterations; then it is split by ``--split`` (default ``head.fusion``:
which stage outputs the shared head fuses, 3 choices): one copy per choice, each trained from
the parent's weights for an equal share of the remaining iterations with its paths restricted
to that choice. The copies' learning rate continues the parent's: it starts where the parent's
poly decay stood and decays to 0 over the copy's share. Total iterations equal the uniform
supernet's, so the cost is the same. Each of the 16 architectures is scored by the copy of its
own choice (inherited selection-split mIoU, BN recalibrated). A control, ``no split``, trains
the parent on for the same remaining iterations without restriction (same learning-rate curve),
so a change of schedule is not mistaken for the split's effect. Kendall tau against the stored
yardsticks of ``ranking.py``'s runs of the same 16 architectures (``averaging.table``).

``--split`` takes a label that is always active (the paper splits by the first layer's
operation: ``--split backbone.stage0.layer0.op``).

Run from the repository root:
  python -m experiments.few_shot.run [--iters 1200 --at 0.5 --seeds 0 1 2 --split head.fusion]
(a 1200-iteration seed takes about 6 min on 2 cores, 4 once the control is cached). Cached in
--cache (the parent and the control per seed and run length, the
copies also per split); writes experiments/few_shot/results/few-shot.{json,md} (rows of
other settings
are kept) and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from experiments.averaging import run as averaging
from experiments.ranking_variants import run as ranking

OUT = Path(__file__).resolve().parent / "results"
UNIFORM = ranking.SUPERNET / ranking.STRATEGIES["uniform"][0]
VARIANTS = ("uniform (averaging.json 'final')", "no split", "few-shot")


def _hook(runner: Any) -> Any:
    from mmseg_plugins import PathSamplingHook

    return next(h for h in runner.hooks if isinstance(h, PathSamplingHook))


def parent(seed: int, iters: int, stop: int, work: Path) -> tuple[Path, float]:
    """Trains the uniform supernet on ``iters``' schedule up to ``stop``; its checkpoint and
    the learning rate it stopped at."""
    from mmengine.runner import Runner

    cfg = ranking.seeded_cfg(UNIFORM, seed, iters, work)
    cfg.train_cfg.max_iters = stop  # the schedule still decays to 0 at ``iters``
    cfg.default_hooks.checkpoint.interval = stop
    ckpt = work / f"iter_{stop}.pth"
    lr_file = work / "lr.json"
    if not (ckpt.is_file() and lr_file.is_file()):
        runner = Runner.from_cfg(cfg)
        runner.train()
        lr_file.write_text(json.dumps(runner.optim_wrapper.optimizer.param_groups[0]["lr"]))
    return ckpt, json.loads(lr_file.read_text())


def child(seed: int, ckpt: Path, lr: float, iters: int, only: tuple | None, work: Path) -> Any:
    """A copy of the parent at ``ckpt`` trained ``iters`` more iterations (learning rate ``lr``
    decaying to 0), its paths restricted to ``only`` = ``(label, choice)``; its runner."""
    from mmengine.runner import Runner

    from mmseg_plugins.arch import search_space, unwrap
    from raynas.core.sampler import UniformSampler
    from raynas.core.space import SearchSpace

    cfg = ranking._cfg(UNIFORM, iters, work)
    cfg.optim_wrapper.optimizer.lr = lr
    cfg.param_scheduler = [dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=iters,
                                by_epoch=False)]  # fmt: skip
    cfg.load_from, cfg.randomness = str(ckpt), dict(seed=seed)
    runner = Runner.from_cfg(cfg)
    space = search_space(unwrap(runner.model))
    if only is not None:
        label, choice = only
        if space.conditions.get(label):
            raise SystemExit(f"--split {label}: a conditional label; split by one always active")
        space = SearchSpace({**space.choices, label: (choice,)}, space.conditions)
    _hook(runner)._sampler = UniformSampler(space, seed=seed)
    runner.train()
    if only is not None and _hook(runner).current[only[0]] != only[1]:
        raise RuntimeError(f"the copy for {only} trained other paths")
    return runner


def _few_shot(seed: int, args: Any, archs: list[dict], ckpt: Path, lr: float, rest: int) -> list:
    """Each architecture's score from the copy of its own choice of ``args.split``; the copies
    share the ``rest`` iterations."""
    from benchmarks.harness import evaluate_paths as evaluate

    space, _ = ranking._space_and_table()
    choices = space.choices[args.split]
    out = [0.0] * len(archs)
    for choice in choices:
        work = args.cache / f"child-s{seed}-{args.iters}-{args.at}-{args.split}-{choice}"
        runner = child(seed, ckpt, lr, rest // len(choices), (args.split, choice), work)
        mine = {str(i): a for i, a in enumerate(archs) if a[args.split] == choice}
        for i, miou in evaluate(runner, mine).items():
            out[int(i)] = miou
    return out


def _no_split(seed: int, args: Any, archs: list[dict], ckpt: Path, lr: float, rest: int) -> list:
    """The control: the parent trained on unrestricted for the ``rest`` iterations."""
    from benchmarks.harness import evaluate_paths as evaluate

    work = args.cache / f"child-s{seed}-{args.iters}-{args.at}-all"
    got = evaluate(
        child(seed, ckpt, lr, rest, None, work), {str(i): a for i, a in enumerate(archs)}
    )
    return [got[str(i)] for i in range(len(archs))]


def scores(seed: int, args: Any, archs: list[dict]) -> dict[str, list[float]]:
    """Inherited selection-split mIoU of ``archs``: few-shot and the no-split control, each
    cached (the control does not depend on the split)."""
    base, stop = f"s{seed}-{args.iters}-{args.at}", round(args.iters * args.at)
    out = {}
    for name, tag, make in (("few-shot", f"{base}-{args.split}", _few_shot),
                            ("no split", base, _no_split)):  # fmt: skip
        key = args.cache / f"{name.replace(' ', '-')}-{tag}.json"
        if not key.is_file():
            ckpt, lr = parent(
                seed, args.iters, stop, args.cache / f"parent-s{seed}-{args.iters}-{stop}"
            )
            key.write_text(json.dumps(make(seed, args, archs, ckpt, lr, args.iters - stop)))
        out[name] = json.loads(key.read_text())
        print(seed, name, ranking.agreement(out[name], averaging._truth("1200")), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=1200)
    ap.add_argument("--at", type=float, default=0.5, help="share of --iters before the split")
    ap.add_argument("--split", default="head.fusion", help="the label whose choices split")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/raynas-few-shot"))
    args = ap.parse_args()
    from mmengine.registry import init_default_scope

    import mmseg_plugins  # noqa: F401

    init_default_scope("mmseg")
    ranking.CFG_OPTIONS.update(averaging.SPACE)
    args.cache.mkdir(parents=True, exist_ok=True)
    archs = ranking.architectures(16)
    path = OUT / "few-shot.json"
    rows = json.loads(path.read_text()) if path.is_file() else {}
    runs = [scores(s, args, archs) for s in args.seeds]
    prior = json.loads((averaging.OUT / "averaging.json").read_text()).get(str(args.iters), {})
    rows[f"{args.iters}, {args.split} at {args.at}"] = {
        VARIANTS[0]: prior.get("final", []),
        **{v: [r[v] for r in runs] for v in ("no split", "few-shot")},
    }
    path.write_text(json.dumps(rows, indent=1))
    md = (
        "Few-shot supernets (`experiments/few_shot/run.py`): the uniform supernet of the "
        "input-sized space trained to the split, then one copy per choice of the split label "
        "trained on its share of the remaining iterations; 'no split' trains on unrestricted for "
        "the same iterations and learning-rate curve; the uniform row is the plain supernet of "
        "the same seeds (`averaging.json`). Kendall tau of inherited selection-split mIoU against "
        "stand-alone val mIoU (mean of 2 seeds), per seed and the mean over seeds.\n\n"
        + averaging.table(rows, VARIANTS, "supernet iterations, split")
    )
    (OUT / "few-shot.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
