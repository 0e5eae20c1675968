"""Tune's FIFO trial scheduler, choosing among the trials not yet finished."""

from __future__ import annotations

from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler

__all__ = ["LiveFIFOScheduler"]


class LiveFIFOScheduler(FIFOScheduler):
    """``FIFOScheduler`` that keeps the unfinished trials in the order Tune added them.

    Tune's ``FIFOScheduler.choose_trial_to_run`` scans every trial of the run on each
    controller step, so a search's driver time per candidate grows with the number of
    candidates already evaluated (``benchmarks/scale.py``). This one scans only trials not yet
    finished: the same choice (the first pending trial, else the first paused one, in the order
    Tune added or re-queued them), at a cost set by the concurrency, not the run's length.
    """

    def __init__(self) -> None:
        super().__init__()
        self._live: dict[Trial, None] = {}

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        self._live.pop(trial, None)  # a re-queued trial goes to the end, as in Tune's list
        self._live[trial] = None

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._live.pop(trial, None)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        self._live.pop(trial, None)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        for trial in [t for t in self._live if t.is_finished()]:
            del self._live[trial]  # errored or stopped without a completion callback
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in self._live:
                if trial.status == status:
                    return trial
        return None

    @property
    def live_trials(self) -> int:
        """How many trials the scheduler chooses among (for tests and benchmarks)."""
        return len(self._live)
