"""Proxies, CaLR values, PA&DA probabilities and the predictor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from raynas.core.calr import calr_factor, calr_gamma
from raynas.core.pada import PADASampler, mix_with_uniform
from raynas.core.predictor import Predictor
from raynas.core.proxies import angle_score, batch_miou, hsic, loss_decrease, ms_ib_score
from raynas.core.seg_space import BackboneSettings, HeadSettings, build_space


def test_angle_is_zero_at_init_and_grows_as_weights_move() -> None:
    gen = torch.Generator().manual_seed(0)
    w0 = [torch.randn(8, 4, generator=gen), torch.randn(16, generator=gen)]
    assert angle_score(w0, [t.clone() for t in w0]) == pytest.approx(0.0, abs=1e-6)
    step = [torch.randn(t.shape, generator=gen) for t in w0]
    angles = [angle_score(w0, [t + s * d for t, d in zip(w0, step)]) for s in (0.1, 0.5, 2.0)]
    assert 0 < angles[0] < angles[1] < angles[2] < np.pi


def test_ms_ib_is_invariant_to_the_number_of_fused_scales() -> None:
    """Identical features at 2 or 3 scales score the same: the score is a mean over scales."""
    gen = torch.Generator().manual_seed(0)
    inputs = torch.randn(2, 3, 32, 32, generator=gen)
    labels = torch.randint(0, 4, (2, 32, 32), generator=gen)
    feat = torch.randn(2, 8, 8, 8, generator=gen)
    two = ms_ib_score([feat, feat.clone(), None], inputs, labels, 4)
    three = ms_ib_score([feat, feat.clone(), feat.clone()], inputs, labels, 4)
    assert two == pytest.approx(three, rel=1e-9) and two == pytest.approx(
        ms_ib_score([feat], inputs, labels, 4), rel=1e-9
    )


def test_loss_decrease_and_batch_miou() -> None:
    assert loss_decrease([1.0]) == 0.0 and loss_decrease([1.5, 1.0]) == pytest.approx(0.5)
    labels = torch.tensor([[[0, 0], [1, 1]]])
    perfect = torch.nn.functional.one_hot(labels, 2).permute(0, 3, 1, 2).float()
    assert batch_miou(perfect, labels, 2) == pytest.approx(100.0)
    all_zero = torch.zeros(1, 2, 2, 2)
    all_zero[:, 0] = 1
    assert batch_miou(all_zero, labels, 2) == pytest.approx(25.0)  # IoU 0.5 and 0


def test_hsic_sees_dependence() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 3, generator=gen)
    assert hsic(x, x * 2 + 0.01) > 0.9 > 0.2 > hsic(x, torch.randn(200, 3, generator=gen))


def test_calr_values_at_both_complexity_ends() -> None:
    assert calr_gamma(10, 10, 1000, 4.0) == pytest.approx(4.0)
    assert calr_gamma(1000, 10, 1000, 4.0) == pytest.approx(0.25)
    assert calr_gamma(100, 10, 1000, 4.0) == pytest.approx((4.0 + 0.25) / 2)  # log-midpoint
    t, total = 50, 100
    small, large = calr_factor(t, total, 10, 10, 1000), calr_factor(t, total, 1000, 10, 1000)
    assert small == pytest.approx(0.5**4) and large == pytest.approx(0.5**0.25)
    assert calr_factor(0, total, 10, 10, 1000) == pytest.approx(1.0)
    assert calr_factor(total, total, 1000, 10, 1000, eta_min=0.1) == pytest.approx(0.1)


def test_pada_probabilities_follow_injected_gradient_norms() -> None:
    space = build_space(BackboneSettings(), HeadSettings())
    sampler = PADASampler(space, total_iters=100, update_interval=10, floor=0.0)
    label = "backbone.stage0.layer0.op"
    arch = space.extreme(True)
    for op, g in (("fr", 1.0), ("ir3", 3.0), ("ir6", 6.0)):
        sampler.update({**arch, label: op}, {"grad_norms": {label: g}})
    sampler.on_round(100, {}, [])  # mix = 1: pure gradient-norm distribution
    np.testing.assert_allclose(sampler.probs[label], [0.1, 0.3, 0.6])
    sampler.on_round(50, {}, [])  # mix = 0.5: half uniform
    np.testing.assert_allclose(sampler.probs[label], 0.5 * np.array([0.1, 0.3, 0.6]) + 0.5 / 3)
    p = mix_with_uniform(np.array([0.0, 0.0, 1.0]), 1.0, floor=0.05)
    assert p.min() > 0 and p.sum() == pytest.approx(1.0)  # floor keeps every choice alive


def test_pada_draws_follow_its_importance_weights() -> None:
    """Chi-square goodness of fit of 6000 draws (fixed seed) to the sampler's probabilities;
    uniform draws would fail it by far (chi2 ~ 2000)."""
    from scipy.stats import chisquare

    space = build_space(BackboneSettings(), HeadSettings())
    sampler = PADASampler(space, seed=7, update_interval=10, floor=0.0)
    sampler.set_run_length(100)
    label = "backbone.stage0.layer0.op"
    arch = space.extreme(True)
    for op, g in (("fr", 1.0), ("ir3", 3.0), ("ir6", 6.0)):
        sampler.update({**arch, label: op}, {"grad_norms": {label: g}})
    sampler.on_round(100, {}, [])
    draws = [sampler.sample(100 + i)[label] for i in range(6000)]
    counts = [draws.count(op) for op in space.choices[label]]
    expected = 6000 * sampler.probs[label]
    assert chisquare(counts, expected).pvalue > 0.01, (counts, expected)
    assert chisquare(counts, [2000] * 3).pvalue < 1e-6


def test_predictor_learns_a_synthetic_ranking() -> None:
    space = build_space(BackboneSettings(), HeadSettings())
    rng = np.random.default_rng(0)
    enc = np.stack([space.encode(space.sample(rng)) for _ in range(300)])
    weights = rng.normal(size=enc.shape[1])
    target = enc @ weights + rng.normal(scale=0.5, size=len(enc))
    pred = Predictor(enc.shape[1], seed=0, steps=300)
    pred.add(enc[:200], target[:200])
    pred.fit()
    tau = kendalltau(pred.predict(enc[200:]), target[200:])[0]
    assert tau > 0.6, tau
