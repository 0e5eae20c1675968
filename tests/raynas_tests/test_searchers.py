"""The Optuna searchers that the search phase builds: they survive Tune's pickling, and
concurrent trials finishing in another order do not change what they propose."""

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
    assert len(copy.searcher._ot_study.trials) == 14


def _search(searcher, finish_newest: bool, trials: int = 16, concurrent: int = 2) -> list:
    """Proposals of a search run as Tune runs it: a free slot asks the searcher at once (None:
    not yet), and of the running trials the newest (or the oldest) finishes first."""
    running, proposed = [], []
    while len(proposed) < trials or running:
        while len(running) < concurrent and len(proposed) < trials:
            params = searcher.suggest(f"t{len(proposed)}")
            if params is None:
                break
            running.append((f"t{len(proposed)}", params))
            proposed.append(params)
        trial_id, params = running.pop(-1 if finish_newest else 0)
        result = {"mIoU": params["depth"] * params["width"] % 37, "flops": params["width"]}
        searcher.on_trial_complete(trial_id, result)
    return proposed


def test_the_order_trials_finish_in_does_not_change_the_candidates() -> None:
    """Two trials at a time: the search's candidates are the same whichever of them finishes
    first (the fresh-clone quickstart and the benchmark's run of seed 0 once differed in one
    candidate, and so in the pick); a searcher told of each trial as it ends proposes others."""
    runs = {}
    for batched in (True, False):
        for newest in (True, False):
            cfg = dict(type="nsga2", seed=0, population_size=4)
            searcher = build_searcher(cfg, ["mIoU", "flops"], ["max", "min"], None, 2)
            if not batched:
                searcher = searcher.searcher  # Tune's own limiter: results as trials end
            searcher.set_search_properties(None, None, SPACE)
            runs[batched, newest] = _search(searcher, newest)
    assert len(runs[True, True]) == 16
    assert runs[True, True] == runs[True, False]
    assert runs[False, True] != runs[False, False]
