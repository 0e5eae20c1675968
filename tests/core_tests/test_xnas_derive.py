"""XNAS's exponentiated-gradient step and wipeout, and the derivation of an architecture under
a cost target (the most probable path within the band, not the argmax)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _weights import random_weights

from raynas.core.complexity import PathComplexity
from raynas.core.errors import InvalidValueError
from raynas.core.seg_space import BackboneSettings, HeadSettings, build_space
from raynas.core.ssr import ArchWeights, check_settings
from raynas.core.ssr_derive import band_distance, derive_under_cost, shrink_under_cost
from raynas.core.xnas import LeafWeights, XNASOptimizer, xnas_lr

SPACE = build_space(BackboneSettings(), HeadSettings())
TABLE = PathComplexity(BackboneSettings(), HeadSettings(), 2, (128, 128))
LABEL = "backbone.stage0.layer0.op"


def _flops(arch) -> float:
    return TABLE(arch).flops


def test_the_learning_rate_is_the_regret_bounds() -> None:
    assert xnas_lr(2.0, 3, 100) == pytest.approx(math.sqrt(2 * math.log(3) / 100) / 2.0)
    weights = ArchWeights(SPACE, link="exp")
    widest = max(len(SPACE.choices[k]) for k in weights.rows)
    assert XNASOptimizer(weights, 50, 1.0).lr == pytest.approx(xnas_lr(1.0, widest, 50))
    with pytest.raises(ValueError, match="link='exp'"):
        XNASOptimizer(ArchWeights(SPACE), 50, 1.0)


def test_an_eg_step_multiplies_the_weights_by_the_clipped_rewards() -> None:
    weights = ArchWeights(SPACE, link="exp").double()
    opt = XNASOptimizer(weights, steps=100, bound=1.0, lr=0.1)
    grads = {k: torch.zeros(len(SPACE.choices[k]), dtype=torch.float64) for k in weights.rows}
    grads[LABEL] = torch.tensor([3.0, -0.5, 0.0], dtype=torch.float64)  # rewards -1, 0.5, 0
    assert opt.step(grads) == {}  # far from the end: nobody can be written off yet
    v = torch.exp(torch.tensor([-0.1, 0.05, 0.0], dtype=torch.float64))
    assert torch.allclose(weights.probs(LABEL), v / v.sum())


def test_wipeout_removes_who_cannot_catch_up_and_decides_every_row_by_the_budget() -> None:
    """Losses favour the last candidate of every row: it wins everywhere; a candidate is wiped
    out exactly when it trails by more than 2 lr bound (T - t); at T every row is decided."""
    weights = ArchWeights(SPACE, link="exp").double()
    steps, opt = 30, XNASOptimizer(weights, steps=30, bound=1.0)
    decided_at = {}
    for t in range(1, steps + 1):
        leaves = LeafWeights(weights)
        loss = sum((leaf * torch.linspace(1.0, 0.0, len(leaf), dtype=leaf.dtype)).sum()
                   for leaf in leaves.tensors())  # fmt: skip
        grads = torch.autograd.grad(loss, leaves.tensors())
        opt.step(dict(zip(weights.rows, grads)))
        for label in weights.decided_rows():
            decided_at.setdefault(label, t)
        for label in weights.rows:  # what is left could still catch the best
            a = weights.alpha[label.replace(".", "__")][weights.mask(label)]
            assert float(a.max() - a.min()) <= 2 * opt.lr * (steps - t) + 1e-9
    assert weights.decided and len(decided_at) == len(weights.rows)
    assert min(decided_at.values()) < steps  # the gaps grow linearly: rows go before the end
    arch = weights.derive()
    assert all(arch[k] == SPACE.choices[k][-1] for k in weights.rows)


def _peaked(seed: int) -> ArchWeights:
    return random_weights(SPACE, seed, 3.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_derived_path_is_the_most_probable_one_within_the_band(seed: int) -> None:
    weights = _peaked(seed)
    argmax = _flops(weights.derive())
    low, high = SPACE.cost_range(_flops)
    # a target the argmax misses by far, on the side the space allows
    target = max(low * 1.5, argmax * 0.5) if argmax > (low + high) / 2 else argmax * 1.6
    assert band_distance(argmax, target, 0.05) > 0
    arch, info = derive_under_cost(weights, _flops, target, 0.05)
    assert info["within"] and abs(_flops(arch) / target - 1) <= 0.05, info
    assert info["argmax_cost"] == pytest.approx(argmax) and SPACE.contains(arch)

    def logp(a) -> float:
        return sum(math.log(float(weights.probs(k)[SPACE.choices[k].index(a[k])]))
                   for k in weights.rows if SPACE.is_active(a, k))  # fmt: skip

    rng = np.random.default_rng(seed)  # better than the feasible paths drawn at random
    drawn = [SPACE.canonical(SPACE.sample(rng)) for _ in range(3000)]
    feasible = [a for a in drawn if band_distance(_flops(a), target, 0.05) == 0]
    assert feasible and logp(arch) >= max(map(logp, feasible))


def test_decided_rows_are_kept_and_a_reachable_argmax_is_returned_as_it_is() -> None:
    weights = _peaked(3)
    arch, info = derive_under_cost(weights, _flops, _flops(weights.derive()), 0.05)
    assert arch == weights.derive() and info["moves"] == 0 and info["within"]
    weights.shrink(0.5)  # many rows decided
    decided = {k: weights.derive()[k] for k in weights.decided_rows()}
    low, _ = SPACE.cost_range(_flops)
    arch, info = derive_under_cost(weights, _flops, low / 2, 0.05)  # below every path
    assert not info["within"] and info["cost"] < info["argmax_cost"]
    assert all(arch[k] == v for k, v in decided.items() if SPACE.is_active(arch, k))


def test_bad_optimizer_settings_are_refused() -> None:
    for settings, match in (
        (dict(optimizer="xnass"), "optimizer must be one of .*'xnas'"),
        (dict(xnas_bound=0), "xnas_bound must be a number > 0 or None"),
        (dict(xnas_lr=-1.0), "xnas_lr must be a number > 0 or None"),
        (dict(tolerance=1.5), r"tolerance must be in \(0, 1\)"),
        (dict(optimizer="xnas", sample_k=2), "sample_k=2 with optimizer='xnas'"),
    ):
        with pytest.raises(InvalidValueError, match=match):
            check_settings(settings, "tune_cfg.search.ssr")
    with pytest.raises(InvalidValueError, match="link"):
        ArchWeights(SPACE, link="softmax")


@pytest.mark.parametrize(("seed", "fraction"), [(4, 0.9), (8, 0.9), (5, 0.3)])
def test_shrinking_under_a_target_keeps_the_band_reachable_and_never_stalls(
    seed: int, fraction: float
) -> None:
    """After each shrink step a path within the band is still derived, and no row is left
    holding a candidate the threshold would prune: those rows were decided by the rule, or by
    the cost where the rule would have lost the band (a target high in the range: some rows)."""
    weights = _peaked(seed)
    low, high = SPACE.cost_range(_flops)
    target = low + fraction * (high - low)

    def derive():
        return derive_under_cost(weights, _flops, target, 0.05)

    by_cost: list[str] = []
    for _ in range(3):
        _, decided = shrink_under_cost(weights, 0.1, derive)
        by_cost += decided
        assert derive()[1]["within"]
        for label in weights.rows:
            p = weights.probs(label)
            valid = weights.valid(label)
            assert len(valid) == 1 or all(float(p[i] / p.max()) > 0.1 for i in valid), label
    assert (len(by_cost) > 0) == (fraction > 0.5)
    assert all(len(weights.valid(k)) == 1 for k in by_cost)
    assert weights.shrink(0.1) == {}  # nothing left for the rule alone
