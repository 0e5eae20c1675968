"""The Optuna searchers that the search phase builds survive Tune's pickling."""

from __future__ import annotations

import pytest
from ray import cloudpickle, tune

from raynas.tune.factories import build_searcher

SPACE = {"depth": tune.choice([1, 2, 3]), "width": tune.choice([16, 24, 32, 48])}


def _trial(searcher, trial_id: str) -> dict:
    params = searcher.suggest(trial_id)
    result = {"mIoU": params["depth"] * params["width"], "flops": params["width"]}
    searcher.on_trial_complete(trial_id, result)
    return params


@pytest.mark.parametrize("kind", ["nsga2", "tpe", "random"])
def test_searcher_pickles_and_goes_on_where_it_was(kind: str) -> None:
    """Tune pickles the searcher into its experiment state at the start of a phase (optuna
    5.1's NSGA-II holds a lock that could not be); a copy suggests what the original would."""
    searcher = build_searcher(
        dict(type=kind, seed=3, **({"population_size": 4} if kind == "nsga2" else {})),
        ["mIoU", "flops"],
        ["max", "min"],
    )
    searcher.set_search_properties(None, None, SPACE)
    first = [_trial(searcher, f"t{i}") for i in range(10)]
    copy = cloudpickle.loads(cloudpickle.dumps(searcher))
    nxt = [_trial(s, f"n{i}") for s in (searcher, copy) for i in range(4)]
    assert nxt[:4] == nxt[4:]
    assert all(p["depth"] in (1, 2, 3) and p["width"] in (16, 24, 32, 48) for p in first + nxt)
    assert len(copy._ot_study.trials) == 14
