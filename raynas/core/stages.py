"""DPS stage scheduler: which training stage a supernet run is in, and when it moves on.

Not to be confused with Ray Tune's *trial* schedulers: this one lives inside one supernet run.
Stage bounds are fractions of the run length (:meth:`StageScheduler.set_run_length`, which the
training hook calls with the runner's ``max_iters``), so a shorter or longer run keeps the
stages' proportions. A stage ends, once it has run ``min_frac`` of the run, when its primary
proxy's ranking has stabilised (Kendall tau between consecutive selection rounds >=
``tau_threshold`` for ``patience`` rounds in a row) or, if ``plateau`` is set, when its
objective has stopped improving (the mean of the round's top-quarter primary scores has not
exceeded the stage's best by ``min_delta`` for ``plateau`` rounds); and regardless when it has
run ``max_frac`` of the run. Every transition is logged with its iteration and reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau

__all__ = ["DEFAULT_STAGES", "Stage", "StageScheduler"]


@dataclass(frozen=True)
class Stage:
    """One DPS stage.

    Attributes:
        name: Stage name.
        objectives: Proxies maximised by the Pareto selection.
        min_frac: Share of the run before the stage may end.
        max_frac: Share of the run after which the stage ends regardless (None: never).
    """

    name: str
    objectives: tuple[str, ...]
    min_frac: float = 0.0
    max_frac: float | None = None

    def __post_init__(self) -> None:
        top = 1.0 if self.max_frac is None else self.max_frac
        if not 0 <= self.min_frac <= top <= 1:
            raise ValueError(
                f"stage {self.name!r}: need 0 <= min_frac ({self.min_frac}) <= max_frac "
                f"({self.max_frac}) <= 1 (shares of the run length)"
            )


DEFAULT_STAGES = (
    Stage("convergence", ("angle", "loss_decrease"), 0.1, 0.3),
    Stage("expressiveness", ("predicted",), 0.1, 0.3),
    Stage("balanced", ("predicted", "ib"), 0.0, None),
)


class StageScheduler:
    """Moves through ``stages`` on ranking stability or iteration bounds.

    Args:
        stages: The stage table.
        tau_threshold: Kendall tau of the primary proxy between consecutive rounds.
        patience: Consecutive stable rounds needed.
        plateau: Rounds without improvement of the objective that end a stage (None: off).
        min_delta: Improvement over the stage's best objective that counts.
    """

    def __init__(
        self,
        stages: Sequence[Stage | Mapping[str, Any]] = DEFAULT_STAGES,
        tau_threshold: float = 0.8,
        patience: int = 2,
        plateau: int | None = None,
        min_delta: float = 0.0,
    ) -> None:
        self.stages = [
            s if isinstance(s, Stage) else Stage(**{**s, "objectives": tuple(s["objectives"])})
            for s in stages
        ]
        if not self.stages:
            raise ValueError("the stage table is empty")
        self.tau_threshold, self.patience = tau_threshold, patience
        self.plateau, self.min_delta = plateau, min_delta
        self.index, self.start, self.streak = 0, 0, 0
        self.best, self.stale = float("-inf"), 0
        self.previous: dict[str, float] = {}
        self.transitions: list[dict[str, Any]] = []
        self.last_tau = float("nan")
        self.total: int | None = None

    def set_run_length(self, total_iters: int) -> None:
        """The run's iterations, which the stages' fractions refer to."""
        self.total = int(total_iters)

    @property
    def stage(self) -> Stage:
        return self.stages[self.index]

    def step(self, iteration: int, primary: Mapping[str, float]) -> bool:
        """Feeds one round's primary-proxy scores (path key -> score); True on a transition."""
        common = [k for k in primary if k in self.previous]
        tau = float("nan")
        if len(common) >= 3:
            tau = kendalltau([self.previous[k] for k in common], [primary[k] for k in common])[0]
        self.last_tau = tau
        self.previous = dict(primary)
        self.streak = self.streak + 1 if tau == tau and tau >= self.tau_threshold else 0
        self._track_objective(primary)
        if self.index == len(self.stages) - 1:
            return False
        reason = self._reason(iteration - self.start, tau)
        if reason is None:
            return False
        self.transitions.append(
            dict(
                iteration=iteration,
                src=self.stage.name,
                dst=self.stages[self.index + 1].name,
                reason=reason,
            )
        )
        self.index, self.start, self.streak, self.previous = self.index + 1, iteration, 0, {}
        self.best, self.stale = float("-inf"), 0
        return True

    def _track_objective(self, primary: Mapping[str, float]) -> None:
        values = np.asarray(list(primary.values()), float)
        values = values[np.isfinite(values)]  # paths without a measurement yet
        if not len(values):
            return
        top = np.sort(values)[::-1]
        level = float(top[: max(1, len(top) // 4)].mean())
        if level > self.best + self.min_delta:
            self.best, self.stale = level, 0
        else:
            self.stale += 1

    def _reason(self, ran: int, tau: float) -> str | None:
        if self.total is None:
            raise RuntimeError("StageScheduler.set_run_length was not called")
        stage, total = self.stage, self.total
        if stage.max_frac is not None and ran >= stage.max_frac * total:
            return f"reached max_frac={stage.max_frac} of {total} iterations"
        if ran < stage.min_frac * total:
            return None
        if self.streak >= self.patience:
            return (
                f"ranking stable: Kendall tau {tau:.3f} >= {self.tau_threshold} for "
                f"{self.streak} rounds"
            )
        if self.plateau is not None and self.stale >= self.plateau:
            return (
                f"objective plateaued: top-quarter mean of {self.stage.objectives[0]} not above "
                f"{self.best:.4g} + {self.min_delta} for {self.stale} rounds"
            )
        return None

    def state_dict(self) -> dict[str, Any]:
        return dict(
            index=self.index,
            start=self.start,
            streak=self.streak,
            best=self.best,
            stale=self.stale,
            previous=[[k, v] for k, v in self.previous.items()],
            transitions=list(self.transitions),
            stages=[asdict(s) for s in self.stages],
        )

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.index, self.start, self.streak = state["index"], state["start"], state["streak"]
        self.best = float(state.get("best", float("-inf")))
        self.stale = int(state.get("stale", 0))
        self.previous = {k: float(v) for k, v in state["previous"]}
        self.transitions = list(state["transitions"])
