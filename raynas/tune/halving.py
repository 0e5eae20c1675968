"""Synchronous successive halving of a fixed set of Tune trials, resumable exactly.

Ray's ``ASHAScheduler`` decides each trial alone when it reaches a rung, against the trials that
reached it before: the first to arrive always continues. With the retrain phase's one or two
concurrent trials that trains the first candidate to the full budget and promotes every later
one that beats those before it, so its cost has no bound below ``k`` full retrains. This
scheduler pauses each trial at a rung until every live trial has reached it, then keeps the
best ``ceil(n / eta)`` of the ``n`` that started the rung (ties: the earlier trial, i.e. the
search's order) and stops the others: a budget fixed in advance (:func:`budget`).

Its decisions (every trial's score at every rung, and who was kept) are written to a store at
each change and read back at its first event, because Tune does not restore a scheduler's state
on ``Tuner.restore`` (it unpickles the scheduler as it was when the run began): a retrain killed
mid-way continues to the same pick.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

__all__ = ["SuccessiveHalving", "budget", "keep", "rungs"]


def rungs(max_t: int, eta: float, grace: int) -> list[int]:
    """The rungs (reports) below ``max_t``: ``grace``, ``grace * eta``, ..."""
    out, r = [], grace
    while r < max_t:
        out.append(int(r))
        r = math.ceil(r * eta)
    return out


def budget(k: int, max_t: int, eta: float, grace: int) -> tuple[int, list[int]]:
    """Reports trained in all (the phase's cost in report intervals) and the trials alive
    past each rung, for ``k`` trials."""
    alive, spent, last, counts = k, 0, 0, []
    for r in rungs(max_t, eta, grace):
        spent += alive * (r - last)
        alive, last = math.ceil(alive / eta), r
        counts.append(alive)
    return spent + alive * (max_t - last), counts


def keep(alive: list[str], scores: Mapping[str, float], eta: float,
         sign: float = 1.0) -> list[str]:  # fmt: skip
    """The best ``ceil(len(alive) / eta)`` of ``alive`` by ``scores`` (``sign`` -1: smaller is
    better); a tie goes to the earlier in ``alive``; one without a score is not kept."""
    ranked = sorted((t for t in alive if t in scores),
                    key=lambda t: (-sign * scores[t], alive.index(t)))  # fmt: skip
    return ranked[: math.ceil(len(alive) / eta)]


class SuccessiveHalving(FIFOScheduler):
    """Successive halving at fixed rungs (``training_iteration`` counts of reports).

    Args:
        trials: How many trials take part (Tune adds them one by one; the first rung waits
            for all).
        max_t: Reports of a full training.
        eta: Reduction factor: ``ceil(n / eta)`` of ``n`` trials continue at each rung.
        grace: The first rung.
        metric: The reported score, larger is better with ``mode='max'``.
        mode: ``'max'`` or ``'min'``.
        store: Keeps the state: ``write(json_text)`` after each change, ``read()`` (the text,
            or None) at the first event; None: kept in memory only.
        only: Which trials take part (the others run to the end first, e.g. baselines).
        max_running: Trials running at once (Tune's ``max_concurrent_trials`` must stay
            unset: it counts paused trials, and the first rung waits for every trial).
    """

    def __init__(
        self,
        trials: int,
        max_t: int,
        eta: float = 3,
        grace: int = 1,
        metric: str = "mIoU",
        mode: str = "max",
        store: Any = None,
        only: Callable[[Trial], bool] | None = None,
        max_running: int | None = None,
    ) -> None:
        super().__init__()
        self._only = only
        self.rungs, self.eta, self.max_t, self.grace = rungs(max_t, eta, grace), eta, max_t, grace
        self._score_metric, self._sign = metric, 1.0 if mode == "max" else -1.0
        self._store, self._loaded = store, store is None
        self.scores: dict[str, dict[str, float]] = {str(r): {} for r in self.rungs}
        self.kept: dict[str, list[str]] = {}
        self.order: list[str] = []
        self._trials: dict[str, Trial] = {}
        self._others: list[str] = []
        self.trials, self.max_running = trials, max_running

    def load(self, text: str) -> SuccessiveHalving:
        """Takes up the decisions of an interrupted run (the JSON :meth:`state` wrote)."""
        state = json.loads(text)
        self.scores.update(state["scores"])
        self.kept, self.order = state["kept"], state["order"]
        return self

    def state(self) -> dict[str, Any]:
        return dict(rungs=self.rungs, eta=self.eta, max_t=self.max_t, trials=self.trials,
                    order=self.order,
                    scores=self.scores, kept=self.kept)  # fmt: skip

    def _persist(self) -> None:
        if self._store is not None:
            self._store.write(json.dumps(self.state()))

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        if not self._loaded:  # a restored run: its decisions so far
            text, self._loaded = self._store.read(), True
            if text:
                self.load(text)
        self._trials[trial.trial_id] = trial
        if self._only is not None and not self._only(trial):
            self._others.append(trial.trial_id)
        elif trial.trial_id not in self.order:
            self.order.append(trial.trial_id)
            self._persist()

    def _alive(self, rung: int) -> list[str] | None:
        """Trials that started ``rung``: kept at the rung before (all at the first); None
        while the rung before is undecided."""
        i = self.rungs.index(rung)
        if i == 0:
            return self.order if len(self.order) >= self.trials else None
        return self.kept.get(str(self.rungs[i - 1]))

    def _decide(self, tune_controller: Any, rung: int) -> list[str] | None:
        """The rung's keepers once every trial that started it has a score there."""
        key = str(rung)
        if key in self.kept:
            return self.kept[key]
        alive = self._alive(rung)
        if alive is None:
            return None
        waiting = [t for t in alive if t not in self.scores[key]
                   and not self._finished_early(t)]  # fmt: skip
        if waiting:
            return None
        self.kept[key] = keep(alive, self.scores[key], self.eta, self._sign)
        self._persist()
        for trial_id in alive:
            trial = self._trials.get(trial_id)
            if trial_id not in self.kept[key] and trial and trial.status == Trial.PAUSED:
                tune_controller.stop_trial(trial)
        return self.kept[key]

    def _finished_early(self, trial_id: str) -> bool:
        trial = self._trials.get(trial_id)
        return trial is not None and trial.status in (Trial.ERROR, Trial.TERMINATED)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        it = int(result.get("training_iteration", 0))
        if trial.trial_id in self._others:
            return TrialScheduler.CONTINUE
        if it not in self.rungs or self._score_metric not in result:
            return TrialScheduler.CONTINUE
        self.scores[str(it)].setdefault(trial.trial_id, float(result[self._score_metric]))
        self._persist()
        kept = self._decide(tune_controller, it)
        if kept is None:
            return TrialScheduler.PAUSE
        return TrialScheduler.CONTINUE if trial.trial_id in kept else TrialScheduler.STOP

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        for rung in self.rungs:  # a trial gone early may complete a rung the others wait on
            if self._decide(tune_controller, rung) is None:
                break

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self.on_trial_remove(tune_controller, trial)

    def _standing(self, trial: Trial) -> str:
        """``'run'``, ``'wait'`` (at an undecided rung: a restored trial resumes at its last
        report) or ``'dropped'`` (not kept at a decided rung), for a pending or paused trial."""
        last = int((trial.last_result or {}).get("training_iteration", 0))
        for rung in self.rungs:
            if last >= rung:
                kept = self.kept.get(str(rung))
                if kept is None:
                    return "wait"
                if trial.trial_id not in kept:
                    return "dropped"
        return "run"

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        running = sum(t.status == Trial.RUNNING for t in self._trials.values())
        if self.max_running is not None and running >= self.max_running:
            return None
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial_id in [*self.order, *self._others]:
                trial = self._trials.get(trial_id)
                if trial is None or trial.status != status:
                    continue
                standing = "run" if trial_id in self._others else self._standing(trial)
                if standing == "run":
                    return trial
                if standing == "dropped":
                    tune_controller.stop_trial(trial)
        return None

    def debug_string(self) -> str:
        kept = {r: len(v) for r, v in self.kept.items()}
        return f"SuccessiveHalving: rungs {self.rungs}, kept per rung {kept}"
