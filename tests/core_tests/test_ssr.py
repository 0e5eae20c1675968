"""SSR's core: the loss drives rows to one-hot, shrinking is hierarchical and keeps a
candidate per row, and a clearly better candidate is selected."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from _weights import random_weights

from raynas.core.errors import InvalidValueError, UnknownKeyError
from raynas.core.seg_space import BackboneSettings, HeadSettings, build_space
from raynas.core.ssr import ArchWeights, decision_type

SPACE = build_space(BackboneSettings(), HeadSettings())


def _perturbed(seed: int = 0) -> ArchWeights:
    return random_weights(SPACE, seed, 0.01)


def test_ssr_loss_is_zero_at_uniform_and_drives_rows_to_one_hot() -> None:
    weights = ArchWeights(SPACE)
    assert float(weights.ssr_loss()) == pytest.approx(0.0, abs=1e-7)
    weights = _perturbed()
    opt = torch.optim.Adam(weights.parameters(), lr=0.2)
    entropies = []
    for _ in range(500):
        loss = weights.ssr_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        entropies.append(np.mean(list(weights.entropy().values())))
    assert entropies[0] > 0.99 and entropies[-1] < 0.15
    assert all(b <= a + 1e-6 for a, b in zip(entropies[::50], entropies[50::50], strict=False))
    assert max(weights.entropy().values()) < 0.3  # every decision type, not only on average


def test_shrinking_is_hierarchical_and_keeps_the_last_candidate() -> None:
    weights = _perturbed(1)
    with torch.no_grad():
        for k in weights.rows:  # one clear winner per row, the rest far below the threshold
            alpha = torch.full((len(SPACE.choices[k]),), -8.0)
            alpha[-1] = 8.0
            weights.alpha[k.replace(".", "__")].copy_(alpha)
    removed = weights.shrink(0.1)
    order = ["depth", "ops", "widths", "head"]
    ranks = [order.index(decision_type(k)) if decision_type(k) != "head" else 2 for k in removed]
    assert ranks == sorted(ranks) and set(ranks) == {0, 1, 2}  # depth, ops, then channels
    assert weights.decided and all(int(weights.mask(k).sum()) == 1 for k in weights.rows)
    assert weights.shrink(0.1) == {} and weights.candidates_left() == len(weights.rows)
    assert SPACE.contains(weights.derive())


def test_a_clearly_better_candidate_is_selected() -> None:
    """Task loss = expected loss under the row's distribution; the last op is clearly best."""
    label = "backbone.stage0.layer0.op"
    losses = torch.tensor([1.0, 0.9, 0.2])
    weights = _perturbed(2)
    opt = torch.optim.Adam(weights.parameters(), lr=2e-2, betas=(0.9, 0.999), weight_decay=1e-3)
    for step in range(300):
        loss = (weights.probs(label) * losses).sum() + 0.1 * weights.ssr_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 49:
            weights.shrink(0.1)
    assert weights.derive()[label] == "ir6"


def test_one_hot_masks_and_bad_weights() -> None:
    weights = ArchWeights(SPACE)
    arch = SPACE.canonical(SPACE.sample(np.random.default_rng(0)))
    weights.onehot_(arch)
    assert weights.derive() == arch and float(weights.ssr_loss()) == 0.0
    assert all(math.isclose(float(weights.probs(k).max()), 1.0) for k in weights.rows)
    with pytest.raises(UnknownKeyError, match="depth"):
        ArchWeights(SPACE, {"dpeth": 1.0})
    with pytest.raises(InvalidValueError, match="ops"):
        ArchWeights(SPACE, {"ops": -1.0})


def test_sampled_candidates_follow_the_probabilities_and_carry_the_gradient() -> None:
    weights = ArchWeights(SPACE)
    assert weights.sample(0, torch.Generator()) is weights  # 0: every candidate
    label = "backbone.stage0.layer0.dilation"  # 4 choices
    with torch.no_grad():
        weights.alpha[label.replace(".", "__")].copy_(torch.tensor([4.0, -4.0, 0.0, 0.0]))
        weights.mask(label)[3] = False  # pruned: never drawn
    draws = [weights.sample(2, torch.Generator().manual_seed(s)) for s in range(200)]
    for view in draws[:5]:
        for row in weights.rows:
            valid = weights.valid(row)
            assert set(view.valid(row)) <= set(valid)
            assert len(view.valid(row)) == min(2, len(valid))
            p = view.p(row)
            assert float(p.sum()) == pytest.approx(1.0)
            assert set(torch.nonzero(p).flatten().tolist()) == set(view.valid(row))
    counts = np.bincount([i for v in draws for i in v.valid(label)], minlength=4)
    assert counts[3] == 0 and counts[0] == 200  # p = (0.66, 0.01, 0.33): the first always
    assert counts[2] > 5 * counts[1]
    again = weights.sample(2, torch.Generator().manual_seed(7)).active
    assert again == draws[7].active  # seeded: a resumed search draws the same
    view = draws[0]
    view.p(label)[view.valid(label)].pow(2).sum().backward()
    grad = weights.alpha[label.replace(".", "__")].grad
    assert grad is not None and grad.abs().sum() > 0
