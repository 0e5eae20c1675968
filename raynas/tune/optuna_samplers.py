"""Optuna samplers that Ray Tune can save.

Tune pickles its searcher, with the Optuna study and its sampler, into the experiment state
when a phase starts and at each experiment checkpoint. From optuna 5.1 the genetic samplers
(NSGA-II) hold a ``threading.Lock`` (``_thread_lock``), which cannot be pickled, so a search
with optuna's own ``NSGAIISampler`` fails before its first trial. The sampler here is
optuna's, pickled without the lock and given a new one when loaded.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

__all__ = ["NSGAIISampler"]


class NSGAIISampler(optuna.samplers.NSGAIISampler):
    """optuna's NSGA-II sampler, picklable with any optuna version.

    The class keeps optuna's name: optuna's genetic samplers key the generation of each trial
    by their class name, so a study sampled by either class reads the same.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()
