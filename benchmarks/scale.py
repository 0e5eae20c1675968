"""How the orchestration scales with the number of candidates and of concurrent trials.

1. **Archive**: N evaluations written as the pipeline writes them (one Parquet file each,
   atomically), the whole archive read back, then compacted into one file (as the pipeline
   does when a phase is done) and read again, for N = 1,000 and 10,000.
2. **Searcher**: Ray's ``OptunaSearch`` with NSGA-II on the default space, driven without Tune
   (suggest, then complete with a cost model's result), time per suggestion as its history
   grows to 10,000 trials.
3. **Tune on a simulated cluster** (``ray.init`` with fake CPUs; each trial a cost model that
   reports one archive row, as a search candidate does): driver CPU seconds per candidate and
   the latency from a trial's result to its archive row, for 1,000 and 10,000 candidates at
   1, 8 and 64 concurrent trials (``TUNE_GLOBAL_CHECKPOINT_S`` and the FIFO scheduler as the
   pipeline sets them; ``--tune-fifo`` for Tune's own ``FIFOScheduler``).

Run:  python -m benchmarks.scale [--archive 1000 10000 --searcher 10000 --tune 1000 10000
                                  --concurrent 1 8 64]
(``--archive``, ``--searcher 0`` or ``--concurrent`` with no values skips a part; the parts not
run keep their figures from the last run.)
Writes benchmarks/results/scale.{json,md} and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from typing import Any

import numpy as np

from benchmarks import harness

CONFIG = harness.ROOT / "configs" / "quickstart.py"
PARTS = harness.CACHE / "scale-parts.json"  # every part's latest figures, for partial reruns


def _space() -> tuple[Any, Any]:
    from raynas.config import load_config, space_and_table

    return space_and_table(load_config(CONFIG))


def _row(space: Any, table: Any, arch: dict, miou: float) -> dict:
    from raynas.tune.trial import archive_row

    return archive_row(arch, "candidate", miou, table(arch), space, "selection")


def archive(n: int) -> dict[str, float]:
    from raynas.tune.archive import Archive

    space, table = _space()
    rng = np.random.default_rng(0)
    rows = [_row(space, table, space.canonical(space.sample(rng)), 10.0) for _ in range(n)]
    with tempfile.TemporaryDirectory() as d:
        store = Archive(d)
        start = time.perf_counter()
        for i, row in enumerate(rows):
            store.write("search", f"t{i:05d}", 1, [row])
        write_s = time.perf_counter() - start
        start = time.perf_counter()
        scanned = store.read()
        read_s = time.perf_counter() - start
        start = time.perf_counter()
        store.compact("search")  # what the pipeline does when the phase is done
        compact_s = time.perf_counter() - start
        start = time.perf_counter()
        compacted = store.read()
        read_compacted_s = time.perf_counter() - start
    assert scanned.num_rows == compacted.num_rows == n
    return dict(n=n, write_ms_per_row=1e3 * write_s / n, read_s=read_s, compact_s=compact_s,
                read_compacted_s=read_compacted_s)  # fmt: skip


def searcher(n: int) -> list[dict[str, float]]:
    from ray import tune

    from raynas.tune.factories import build_searcher

    space, table = _space()
    search = build_searcher(dict(type="nsga2", population_size=8, seed=0), ["mIoU", "flops"],
                            ["max", "min"])  # fmt: skip
    search.set_search_properties(
        None, None, {"arch": {k: tune.choice(list(v)) for k, v in space.choices.items()}}
    )
    out, start, every = [], time.perf_counter(), max(1, n // 10)
    for i in range(1, n + 1):
        config = search.suggest(f"t{i}")
        arch = space.canonical(space.validate(config["arch"]))
        flops = table(arch).flops
        search.on_trial_complete(f"t{i}", {"mIoU": 50 - flops / 1e7, "flops": flops})
        if i % every == 0:
            out.append(
                dict(history=i, ms_per_suggestion=1e3 * (time.perf_counter() - start) / every)
            )
            start = time.perf_counter()
    return out


def _candidate(config: dict) -> None:
    """A cost-model search candidate: one report with its archive row."""
    from ray import tune

    from raynas.tune.archive import encode_rows

    now = time.time()
    row = dict(path="candidate", mIoU=config["x"], split="selection", proxies={"sent": now})
    tune.report({"mIoU": float(config["x"]), "compute_end": now,
                 "archive_rows": encode_rows([row])})  # fmt: skip


def tune_run(n: int, concurrent: int, tune_fifo: bool = False) -> dict[str, Any]:
    """``n`` cost-model candidates through Tune at ``concurrent`` trials (fake CPUs), with
    raynas's FIFO scheduler or (``tune_fifo``) Tune's."""
    import ray
    from ray import tune
    from ray.tune.schedulers import FIFOScheduler

    from raynas.tune.archive import Archive
    from raynas.tune.callbacks import ArchiveCallback
    from raynas.tune.factories import build_trial_scheduler

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "10")  # as the pipeline does
    scheduler = FIFOScheduler() if tune_fifo else build_trial_scheduler(None)
    ray.init(
        address="local",
        num_cpus=max(concurrent, 2),
        include_dashboard=False,
        logging_level="ERROR",
    )
    try:
        with tempfile.TemporaryDirectory() as d:
            tuner = tune.Tuner(
                tune.with_resources(_candidate, {"cpu": 1}),
                param_space={"x": tune.uniform(0, 1)},
                tune_config=tune.TuneConfig(num_samples=n, max_concurrent_trials=concurrent,
                                            reuse_actors=True,
                                            scheduler=scheduler),
                run_config=tune.RunConfig(name="search", storage_path=d, verbose=0,
                                          callbacks=[ArchiveCallback(d, "search")]),
            )  # fmt: skip
            cpu0, start = _cpu(), time.perf_counter()
            tuner.fit()
            wall, cpu = time.perf_counter() - start, _cpu() - cpu0
            frame = Archive(d).read().to_pandas()
    finally:
        ray.shutdown()
    sent = frame["proxies"].map(lambda p: json.loads(p)["sent"])
    lag = (frame["timestamp"] - sent).to_numpy()
    return dict(candidates=n, concurrent=concurrent, scheduler=type(scheduler).__name__,
                rows=len(frame), wall_s=wall,
                candidates_per_s=n / wall, driver_cpu_ms_per_candidate=1e3 * cpu / n,
                row_latency_ms_median=1e3 * float(np.median(lag)),
                row_latency_ms_p99=1e3 * float(np.percentile(lag, 99)))  # fmt: skip


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write(result: dict[str, Any]) -> None:
    PARTS.parent.mkdir(parents=True, exist_ok=True)
    PARTS.write_text(json.dumps(result, indent=2))
    lines = ["## Archive (one Parquet file per evaluation; one per phase once it is done)", "",
             "| evaluations | write ms/row | read all s (one file each) | compact s | "
             "read all s (compacted) |", "|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {a['n']} | {a['write_ms_per_row']:.2f} | {a['read_s']:.2f} | "
              f"{a.get('compact_s', float('nan')):.2f} | "
              f"{a.get('read_compacted_s', float('nan')):.3f} |"
              for a in result["archive"]]  # fmt: skip
    lines += ["", "## Searcher (OptunaSearch, NSGA-II, population 8)", "",
              "| history | ms/suggestion (+ completion) |", "|---|---|"]  # fmt: skip
    lines += [f"| {s['history']} | {s['ms_per_suggestion']:.1f} |" for s in result["searcher"]]
    lines += ["", "## Tune, cost-model candidates on fake CPUs", "",
              "| candidates | concurrent | scheduler | candidates/s | driver CPU ms/candidate | "
              "result -> archive row ms (median / p99) |",
              "|---|---|---|---|---|---|"]  # fmt: skip
    lines += [f"| {t['candidates']} | {t['concurrent']} | "
              f"{t['scheduler']} | {t['candidates_per_s']:.1f} | "
              f"{t['driver_cpu_ms_per_candidate']:.1f} | {t['row_latency_ms_median']:.0f} / "
              f"{t['row_latency_ms_p99']:.0f} |" for t in result["tune"]]  # fmt: skip
    harness.write("scale", result, "\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archive", type=int, nargs="*", default=[1000, 10000])
    ap.add_argument("--searcher", type=int, default=10000)
    ap.add_argument("--tune", type=int, nargs="*", default=[1000, 10000],
                    help="candidates per Tune run")  # fmt: skip
    ap.add_argument("--concurrent", type=int, nargs="*", default=[1, 8, 64])
    ap.add_argument("--tune-fifo", action="store_true", help="Tune's FIFOScheduler (before)")
    args = ap.parse_args()
    # parts not run this time keep their figures from this machine's cache (each part fits in
    # ~90 min)
    old = json.loads(PARTS.read_text()) if PARTS.is_file() else {}
    result: dict[str, Any] = dict(
        archive=[] if args.archive else old.get("archive", []),
        searcher=old.get("searcher", []),
        tune=old.get("tune", []),
    )
    for n in args.archive:
        result["archive"].append(archive(n))
        print(result["archive"][-1], flush=True)
    if args.searcher:
        result["searcher"] = searcher(args.searcher)
        print(result["searcher"], flush=True)

    def key(t: dict) -> tuple:
        return t["candidates"], t["concurrent"], t["scheduler"]

    for n in args.tune:
        for c in args.concurrent:
            run = tune_run(n, c, args.tune_fifo)
            result["tune"] = [t for t in result["tune"] if key(t) != key(run)] + [run]
            result["tune"].sort(key=key)
            PARTS.parent.mkdir(parents=True, exist_ok=True)
            PARTS.write_text(json.dumps(result, indent=2))  # a long run keeps what it measured
            print(run, flush=True)
    write(result)


if __name__ == "__main__":
    main()
