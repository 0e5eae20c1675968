"""Driver-side Tune callbacks: the results archive and a progress line."""

from __future__ import annotations

import time
from typing import Any

from ray.tune import Callback

from raynas.tune.archive import Archive, decode_rows

__all__ = ["ArchiveCallback", "ProgressCallback"]


class ArchiveCallback(Callback):
    """Appends every reported evaluation (``archive_rows``) to the Parquet archive."""

    def __init__(self, experiment_uri: str, phase: str) -> None:
        self.experiment_uri, self.phase = experiment_uri, phase

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        rows = decode_rows(result.get("archive_rows"))
        if rows:
            Archive(self.experiment_uri).write(
                self.phase, trial.trial_id, int(result["training_iteration"]), rows
            )


class ProgressCallback(Callback):
    """Prints phase, trials done/running, best so far, elapsed and estimated time.

    Args:
        phase: Phase name.
        total: Trials of the phase.
        iters: Training iterations per trial, for phases whose trials report an ``iter``:
            progress and ETA then count iterations, not only finished trials.
        budget: Iterations the whole phase trains, where a scheduler stops trials early by a
            plan fixed in advance (successive halving); default ``iters * total``.
        metric: Metric to show the best of.
        every_s: Minimum seconds between lines.
    """

    def __init__(
        self,
        phase: str,
        total: int,
        iters: int | None = None,
        metric: str = "mIoU",
        every_s: float = 10.0,
        budget: int | None = None,
    ) -> None:
        self.phase, self.total, self.iters = phase, total, iters
        self.budget = budget or (iters or 0) * total
        self.metric, self.every_s = metric, every_s
        self.start = time.time()
        self.last = 0.0
        self.best: float | None = None
        self.best_info = ""
        self.progress: dict[str, int] = {}

    def on_trial_result(
        self, iteration: int, trials: list, trial: Any, result: dict, **info: Any
    ) -> None:
        if "iter" in result:
            self.progress[trial.trial_id] = int(result["iter"])
        value = result.get(self.metric)
        if value is not None and (self.best is None or value > self.best):
            self.best = float(value)
            flops = result.get("flops")
            self.best_info = f" ({flops / 1e6:.1f} MFLOPs)" if flops else ""
        self._print(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._print(trials, force=True)

    def _print(self, trials: list, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        done = sum(t.status == "TERMINATED" for t in trials)
        running = sum(t.status == "RUNNING" for t in trials)
        errored = sum(t.status == "ERROR" for t in trials)
        elapsed = now - self.start
        fraction = done / self.total
        iters = ""
        if self.iters:
            # a trial stopped early counts the iterations it trained
            finished = {t.trial_id for t in trials if t.status == "TERMINATED"}
            units = sum(self.progress.values()) + self.iters * len(finished - set(self.progress))
            fraction = min(units / self.budget, 1.0)
            iters = f", iter {units}/{self.budget}"
        eta = elapsed / fraction * (1 - fraction) if fraction else float("nan")
        best = f"{self.best:.2f}{self.best_info}" if self.best is not None else "-"
        print(
            f"[raynas] {self.phase}: {done}/{self.total} trials done, {running} running"
            + (f", {errored} errored" if errored else "")
            + iters
            + f", best {self.metric} {best}, elapsed {_fmt(elapsed)}, eta {_fmt(eta)}",
            flush=True,
        )


def _fmt(seconds: float) -> str:
    if seconds != seconds:  # nan
        return "?"
    m, s = divmod(int(seconds), 60)
    return f"{m}:{s:02d}"
