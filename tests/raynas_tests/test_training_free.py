"""Training-free scores of real mmseg subnets built from the quickstart's space."""

from __future__ import annotations

import json
import math
from pathlib import Path

from raynas.config import load_config, space_and_table
from raynas.training_free import training_free_scores

QUICK = Path(__file__).resolve().parents[2] / "configs" / "quickstart.py"


def test_scores_are_finite_repeatable_and_grow_with_the_network() -> None:
    cfg = load_config(QUICK)
    space, _ = space_and_table(cfg)
    small, large = (json.dumps(dict(space.extreme(b))) for b in (False, True))
    scores = training_free_scores(cfg, [small, large, small], images=4)
    assert set(scores) == {small, large}
    again = training_free_scores(cfg, [small], images=4)[small]
    for key in ("grad_norm", "snip", "synflow", "naswot"):
        assert math.isfinite(scores[small][key]) and scores[small][key] > 0, key
        assert again[key] == scores[small][key], key  # same seed, same batch, same network
    assert scores[large]["synflow"] > scores[small]["synflow"]  # more (positive) weights
