"""What a pipeline phase is: one step that runs (usually as one Tune experiment), reads its
results and returns its entry of ``pipeline.json``."""

from __future__ import annotations

import abc
from typing import Any, Protocol

from raynas.tune.factories import build_trial_scheduler

__all__ = ["Phase", "PipelineView", "TunePhase"]


class PipelineView(Protocol):
    """What a phase uses of the pipeline (``raynas.tune.pipeline.Pipeline``)."""

    cfg: Any
    cfg_text: str
    opts: dict[str, dict[str, Any]]
    storage: Any

    def phase(self, name: str) -> dict[str, Any]: ...

    def save(self) -> None: ...

    def uri(self, path: str) -> str: ...

    def tune(
        self, phase: str, trainable: Any, param_space: dict, total: int,
        iters: int | None = None, **tune_config: Any,
    ) -> Any: ...  # fmt: skip


class Phase(abc.ABC):
    """One step of the pipeline.

    Args:
        pipeline: The experiment (its config, options, storage and state).

    Attributes:
        name: The phase's name: its key in ``tune_cfg``, ``pipeline.json`` and its folder.
    """

    name = "phase"

    def __init__(self, pipeline: PipelineView) -> None:
        self.pipeline = pipeline
        self.opts: dict[str, Any] = pipeline.opts.get(self.name, {})

    @property
    def enabled(self) -> bool:
        """False for an optional phase the config switches off (it neither runs nor prints)."""
        return True

    @abc.abstractmethod
    def run(self) -> dict[str, Any]:
        """Runs the phase (continuing an interrupted run); returns its ``pipeline.json`` entry."""


class TunePhase(Phase):
    """A phase that is one Tune experiment, ``STORAGE/NAME/<phase>/``, which
    ``tune.Tuner.restore(...).get_results()`` reads like any other."""

    @abc.abstractmethod
    def trainable(self) -> Any:
        """The function trainable, with its parameters and resources."""

    @abc.abstractmethod
    def param_space(self) -> dict[str, Any]:
        """What Tune samples per trial."""

    @abc.abstractmethod
    def total(self) -> int:
        """How many trials the phase runs (for progress and completeness)."""

    def iters(self) -> int | None:
        """Training iterations per trial (for progress), None for evaluation trials."""
        return None

    def budget(self) -> int | None:
        """Iterations the whole phase trains (for progress) where its scheduler stops trials
        by a plan fixed in advance; None: ``iters() * total()``."""
        return None

    def tune_config(self) -> dict[str, Any]:
        """``tune.TuneConfig`` arguments (searcher, scheduler, samples, concurrency); the
        scheduler is the phase's ``scheduler`` option, FIFO without one."""
        return dict(
            max_concurrent_trials=self.opts.get("max_concurrent", 1),
            scheduler=build_trial_scheduler(self.opts.get("scheduler")),
        )

    @abc.abstractmethod
    def results(self, grid: Any) -> dict[str, Any]:
        """The phase's ``pipeline.json`` entry from Tune's ``ResultGrid``."""

    def run(self) -> dict[str, Any]:
        grid = self.pipeline.tune(
            self.name,
            self.trainable(),
            self.param_space(),
            self.total(),
            self.iters(),
            self.budget(),
            **self.tune_config(),
        )
        return self.results(grid)
