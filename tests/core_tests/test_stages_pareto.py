"""Stage scheduler on synthetic metric streams; Pareto and crowding on hand-checked arrays."""

from __future__ import annotations

import numpy as np
import pytest

from raynas.core.dps import select_diverse
from raynas.core.pareto import crowding_distance, non_dominated_fronts, pareto_mask
from raynas.core.stages import Stage, StageScheduler

STAGES = [Stage("a", ("x",), 0.1, 0.4), Stage("b", ("y",), 0.1, 0.3), Stage("c", ("z",))]


def _sched(total: int = 1000, **kw) -> StageScheduler:
    sched = StageScheduler(STAGES, **kw)
    sched.set_run_length(total)
    return sched


def _stream(kind: str, n: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    base = np.arange(n, dtype=float)
    values = base if kind == "stable" else rng.permutation(n).astype(float)
    return {f"p{i}": float(v) for i, v in enumerate(values)}


def test_stable_rankings_move_on_after_min_iters_and_patience() -> None:
    sched = _sched(tau_threshold=0.9, patience=2)
    moves = [it for it in range(50, 1001, 50) if sched.step(it, _stream("stable", 10, it))]
    # rounds at 50, 100, 150: tau defined from the 2nd round; streak 2 at 150 (>= min 100)
    assert moves[0] == 150 and sched.transitions[0]["reason"].startswith("ranking stable")
    assert sched.transitions[0]["src"] == "a" and sched.transitions[0]["dst"] == "b"
    assert moves[1] == 300 and sched.stage.name == "c"  # 150 -> 300: fresh history in stage b


def test_unstable_rankings_move_on_at_max_iters() -> None:
    sched = _sched(tau_threshold=0.9, patience=2)
    moves = [it for it in range(50, 1001, 50) if sched.step(it, _stream("random", 10, it))]
    assert moves == [400, 700]
    assert all("max_frac" in t["reason"] for t in sched.transitions)


def test_stage_bounds_scale_with_the_run_length() -> None:
    """The same stage table over a run twice as long moves on twice as late."""
    for total, expected in ((1000, [400, 700]), (2000, [800, 1400])):
        sched = _sched(total, tau_threshold=0.9, patience=2)
        moves = [it for it in range(50, 2001, 50) if sched.step(it, _stream("random", 10, it))]
        assert moves == expected, total


def test_stage_fractions_are_checked() -> None:
    with pytest.raises(ValueError, match="min_frac"):
        Stage("a", ("x",), 0.5, 0.2)


def test_a_plateaued_objective_moves_on_and_an_improving_one_does_not() -> None:
    flat = _sched(tau_threshold=0.9, patience=2, plateau=3)
    moves = [it for it in range(50, 1001, 50) if flat.step(it, _stream("random", 10, it))]
    # best set at 50, then 3 rounds without improvement; stage b: fresh best at 250
    assert moves == [200, 400]
    assert all(t["reason"].startswith("objective plateaued") for t in flat.transitions)

    # paths without a measurement yet (NaN) neither hide nor fake a plateau
    gappy = _sched(tau_threshold=0.9, patience=2, plateau=3)
    moves = [
        it
        for it in range(50, 1001, 50)
        if gappy.step(it, {**_stream("random", 10, it), "new": float("nan")})
    ]
    assert moves == [200, 400]

    rising = _sched(tau_threshold=0.9, patience=2, plateau=3, min_delta=0.5)
    moves = [
        it
        for it in range(50, 1001, 50)
        if rising.step(it, {k: v + it / 50 for k, v in _stream("random", 10, it).items()})
    ]
    assert moves == [400, 700]  # improves by 1 > min_delta every round: only max_iters


def test_scheduler_state_round_trip() -> None:
    a = _sched(tau_threshold=0.9, patience=2)
    for it in (50, 100):
        a.step(it, _stream("stable", 8, 0))
    b = _sched(tau_threshold=0.9, patience=2)
    b.load_state_dict(a.state_dict())
    assert a.step(150, _stream("stable", 8, 0)) == b.step(150, _stream("stable", 8, 0)) is True
    c, d = (_sched(tau_threshold=0.9, patience=5, plateau=2) for _ in range(2))
    for it in (50, 100):
        c.step(it, _stream("random", 8, it))
    d.load_state_dict(c.state_dict())
    assert d.stale == c.stale == 1
    assert c.step(150, _stream("random", 8, 150)) == d.step(150, _stream("random", 8, 150)) is True


def test_pareto_fronts_and_crowding_by_hand() -> None:
    pts = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [5, 5], [2, 2]], float)
    assert pareto_mask(pts).tolist() == [True, False, False, True, False, True]
    fronts = non_dominated_fronts(pts)
    assert [sorted(f.tolist()) for f in fronts] == [[0, 3, 5], [1], [2], [4]]  # (2,3) < (3,4)
    front = np.array([[0, 4], [1, 2], [2, 1], [4, 0]], float)
    cd = crowding_distance(front)
    assert np.isinf(cd[0]) and np.isinf(cd[3])
    # interior: sum over objectives of (next - previous) / span
    assert cd[1] == pytest.approx((2 - 0) / 4 + (4 - 1) / 4)
    assert cd[2] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)


def test_select_diverse_respects_fronts_and_hamming() -> None:
    objectives = np.array([[0, 3], [1, 2], [2, 1], [3, 0], [3, 3]], float)
    codes = np.array([[0, 0, 0], [0, 0, 1], [1, 1, 1], [2, 2, 2], [0, 1, 2]])
    assert select_diverse(objectives, codes, 3, 0)[:2] == [0, 3]  # extremes first
    chosen = select_diverse(objectives, codes, 3, 2)
    assert 1 not in chosen[:2]  # row 1 is 1 step from row 0: not taken while others qualify
    pairs = [(codes[a] != codes[b]).sum() for a in chosen for b in chosen if a < b]
    assert min(pairs) >= 2
