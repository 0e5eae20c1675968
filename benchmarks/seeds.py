"""Picks that don't hinge on luck: the whole pipeline over seeds, and the model it hands back.

For each of ``--seeds`` the config runs whole (``raynas resume`` in a subprocess, as
:func:`benchmarks.harness.pipeline` runs it) with that seed for everything random: mmengine's
``randomness.seed``, the supernet's path sampler and the search's searcher. Then its retrain
phase runs once more on the same supernet and search, with the same seeds, with the
``--compare`` retrain options
(default ``top_k=3 scheduler.grace=3``: the best three halved at 750 iterations, against
the shipped best six from 250 iterations on). Per seed: the delivered model's val mIoU (the
retrain phase's pick, made on the selection split), the candidates' selection mIoU at each rung
of its successive halving, the compared retrain's pick, and the pick that inherited mIoU alone
would have made (the search's first candidate) with its val mIoU after the full retrain (in
either run).
Issue 40's acceptance on the quickstart: spread (max - min) of the delivered val mIoU <= 1.5
and mean >= 68.

Run:  python -m benchmarks.seeds [--config configs/quickstart.py] [--seeds 0 1 2 3 4]
      [--compare top_k=2 scheduler.grace=8]  (the retrain options of the second run)
``--no-train-compare``: the compared retrains already in ``--storage`` only.
``--options KEY=VALUE ...``: config options of every run (e.g. a larger search);
``--supernet-from 'seed{seed}-<hash>'``: each seed's supernet taken from that earlier
experiment in ``--storage`` instead of trained again; a donor whose config differs outside
the search's and retrain's ``tune_cfg`` is refused, naming the keys
(:func:`benchmarks.harness.donor_differences`).
Experiments are kept in ``--storage`` (default ``.cache/benchmarks/seeds-<config>``), named by
seed and the hash of the config file (and ``--options``), so a rerun trains only what is
missing (an edited config file is run anew; its ``_base_`` files are not hashed); the tables
are written after every seed.
Writes benchmarks/results/seeds-<config>.{json,md} (``--out NAME``: NAME.{json,md}).
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
from pathlib import Path
from typing import Any

from benchmarks import harness


def seed_options(seed: int) -> dict[str, Any]:
    """The config overrides that seed every random choice of a run."""
    return {"randomness.seed": seed, "custom_hooks.0.sampler.seed": seed,
            "tune_cfg.search.searcher.seed": seed}  # fmt: skip


def _retrain(exp: Path) -> dict[str, Any]:
    return harness.state(exp)["phases"]["retrain"]


def _done(exp: Path) -> bool:
    state = harness.state(exp) if (exp / "pipeline.json").is_file() else {"phases": {}}
    return bool(state["phases"].get("retrain", {}).get("done"))


def _walls(exp: Path) -> dict[str, float]:
    return {k: round(v.get("wall_s", 0.0)) for k, v in harness.state(exp)["phases"].items()}


def finals(exp: Path) -> dict[str, tuple[str, float]]:
    """Architecture -> (name, val mIoU at the end) of every candidate of ``exp``'s retrain that
    trained to the end (two runs name their candidates each in its own order)."""
    from raynas.tune.archive import Archive
    from raynas.tune.storage import Storage

    rows = Archive(Storage(str(exp))).read("retrain").to_pandas()
    val = rows[(rows["split"] == "val") & (rows["iteration"] == rows["iteration"].max())]
    archs = {e["name"]: e["arch"] for e in _retrain(exp)["exports"] if "arch" in e}
    return {archs[p]: (p, float(m)) for p, m in zip(val["path"], val["mIoU"], strict=True)}


def experiment_name(config: Path, seed: int, options: dict[str, Any]) -> str:
    """``seed<N>-<hash>``: the config's own text (and ``options``, where given) in the name, so
    a changed config is a new experiment, not a cached one."""
    text = Path(config).read_bytes() + (repr(sorted(options.items())).encode() if options else b"")
    return f"seed{seed}-{hashlib.sha1(text).hexdigest()[:8]}"


def run_seed(config: Path, storage: Path, seed: int, compare: dict[str, Any],
             train_compare: bool = True, options: dict[str, Any] | None = None,
             supernet_from: str | None = None) -> dict[str, Any]:  # fmt: skip
    """One seed's pipeline (with the config ``options``; its supernet phase taken from the
    experiment ``supernet_from.format(seed=seed)`` in ``storage`` where given), its halving, and
    the same supernet and search retrained with the ``compare`` retrain options (not trained,
    left out, with ``train_compare`` False); the search's own pick at the end from whichever
    run of this seed trained it to the end."""
    options = options or {}
    name = experiment_name(config, seed, options)
    donor = storage / supernet_from.format(seed=seed) if supernet_from else None
    seeded = dict(**seed_options(seed), **options)  # both runs: the seed's own randomness
    exp = harness.pipeline(config, storage, name, donor, None, ("supernet",), **seeded)
    retrain = _retrain(exp)
    exports = [e for e in retrain["exports"] if "arch" in e]
    first = max(exports, key=lambda e: e["search_mIoU"])
    slug = "-".join(f"{k}={v}" for k, v in compare.items()).replace(" ", "")
    other = storage / f"{name}-{slug}"
    if train_compare or _done(other):
        opts = {**seeded, **{f"tune_cfg.retrain.{k}": v for k, v in compare.items()}}
        harness.pipeline(config, storage, other.name, exp, "retrain",
                         ("supernet", "search", "tse"), **opts)  # fmt: skip
    runs = {e: finals(e) for e in storage.glob(f"{name}-*") if _done(e)}
    known = {k: v for ends in [*runs.values(), finals(exp)] for k, v in ends.items()}
    return dict(seed=seed, delivered=retrain["best"]["name"], val=float(retrain["best"]["mIoU"]),
                search_pick=first["name"], search_pick_val=known.get(first["arch"], ("", None))[1],
                **_compared(other, runs.get(other), exports), walls=_walls(exp),
                inherited={e["name"]: e["search_mIoU"] for e in exports},
                flops={e["name"]: e["flops"] for e in exports},
                rungs=retrain.get("halving", {}).get("scores", {}))  # fmt: skip


def _compared(other: Path, theirs: dict | None, exports: list[dict]) -> dict[str, Any]:
    """The compared retrain's pick, its val mIoU and every finished candidate's (``theirs``,
    from :func:`finals`; None: not run), under the first run's names where the first run had
    the architecture."""
    if theirs is None:
        return dict(compare_pick=None, compare_val=None, compare_finals={}, compare_walls={})
    names = {e["arch"]: e["name"] for e in exports}
    named = {a: names.get(a, f"{n} (second run)") for a, (n, _) in theirs.items()}
    best = _retrain(other)["best"]
    pick = next(a for a, (n, _) in theirs.items() if n == best["name"])
    return dict(compare_pick=named[pick], compare_val=float(best["mIoU"]),
                compare_finals={named[a]: v for a, (_, v) in theirs.items()},
                compare_walls=_walls(other))  # fmt: skip


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def summary(values: list[float]) -> dict[str, float]:
    return dict(mean=statistics.fmean(values), spread=max(values) - min(values),
                low=min(values), high=max(values))  # fmt: skip


def table(rows: list[dict[str, Any]], compare: dict[str, Any]) -> str:
    """Markdown: one row per seed, then the spread and mean of every column of scores."""
    head = ["seed", "delivered (val mIoU)", "search's own pick (val mIoU, full retrain)",
            "halving: selection mIoU at the rungs (inherited mIoU)", "wall s"]  # fmt: skip
    head.insert(3, f"retrain with {compare} (val mIoU)")
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        rungs = "; ".join(
            f"{n} ({r['inherited'][n]:.2f}): "
            + ", ".join(f"{v:.2f}@{it}" for it, v in sorted(s.items(), key=lambda x: int(x[0])))
            for n, s in r["rungs"].items()
        )
        cells = [str(r["seed"]), f"{r['delivered']} **{r['val']:.2f}**",
                 f"{r['search_pick']} {_num(r['search_pick_val'])}", rungs,
                 str(sum(r["walls"].values()))]  # fmt: skip
        ends = ", ".join(f"{n} {v:.2f}" for n, v in r["compare_finals"].items())
        picked = f"{r['compare_pick']} **{_num(r['compare_val'])}** (of {ends})"
        cells.insert(3, picked if r["compare_pick"] else "not run")
        lines.append("| " + " | ".join(cells) + " |")
    cols = [
        ("delivered", "val"),
        ("search's own pick", "search_pick_val"),
        (f"retrain with {compare}", "compare_val"),
    ]
    lines.append("")
    for label, key in cols:
        values = [r[key] for r in rows if r[key] is not None]
        if not values:
            continue
        s = summary(values)
        lines.append(f"- {label}: mean **{s['mean']:.2f}**, spread **{s['spread']:.2f}** "
                     f"({s['low']:.2f}-{s['high']:.2f}) over {len(values)} seeds")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    from raynas.config import DictAction

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/quickstart.py"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--storage", type=Path, default=None)
    parser.add_argument("--out", default=None, help="results name (default seeds-<config>)")
    parser.add_argument("--no-train-compare", action="store_true",
                        help="only the compared retrains in --storage")  # fmt: skip
    parser.add_argument("--compare", nargs="+", action=DictAction, metavar="KEY=VALUE",
                        help="retrain options of the second run (default top_k=3 "
                        "scheduler.grace=3)")  # fmt: skip
    parser.add_argument("--options", nargs="+", action=DictAction, default={},
                        metavar="KEY=VALUE", help="config options of every run (cfg-options "
                        "syntax, e.g. tune_cfg.search.num_candidates=48)")  # fmt: skip
    parser.add_argument("--supernet-from", default=None, metavar="NAME",
                        help="take each seed's trained supernet from the experiment NAME in "
                        "--storage ('{seed}' replaced), e.g. 'seed{seed}-aed954f2'")  # fmt: skip
    args = parser.parse_args()
    stem = args.config.stem
    storage = (args.storage or harness.CACHE / f"seeds-{stem}").resolve()
    compare = args.compare or {"top_k": 3, "scheduler.grace": 3}
    rows = []
    for seed in args.seeds:
        rows.append(run_seed(args.config, storage, seed, compare, not args.no_train_compare,
                             args.options, args.supernet_from))  # fmt: skip
        print(f"seed {seed}: delivered {rows[-1]['val']:.2f}, search's own pick "
              f"{_num(rows[-1]['search_pick_val'])}", flush=True)  # fmt: skip
        scores = {"delivered": summary([r["val"] for r in rows])}
        text = table(rows, compare)
        result = dict(config=str(args.config), options=args.options, compare=compare,
                      rows=rows, summary=scores)  # fmt: skip
        harness.write(args.out or f"seeds-{stem}", result, text)


if __name__ == "__main__":
    main()
