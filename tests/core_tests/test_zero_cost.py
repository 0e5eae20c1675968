"""Training-free scores against values worked out by hand, and the per-architecture fit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from raynas.core.zero_cost import grad_norm, local_fit, naswot, snip, synflow


def _linear() -> nn.Linear:
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, 0.0]]))
        layer.bias.copy_(torch.tensor([0.25, -0.5]))
    return layer


def test_grad_norm_and_snip_match_the_gradients_by_hand() -> None:
    layer, x = _linear(), torch.tensor([[1.0, 2.0, -1.0]])
    loss = lambda: layer(x).sum()  # noqa: E731  dL/dW[i] = x, dL/db = 1
    assert grad_norm(layer, loss) == pytest.approx(math.sqrt(2 * 6) + math.sqrt(2))  # per tensor
    w, b = layer.weight.detach(), layer.bias.detach()
    assert snip(layer, loss) == pytest.approx(float((w * x).abs().sum() + b.abs().sum()))


def test_synflow_of_a_linear_layer_is_its_absolute_weights_and_restores_them() -> None:
    layer = _linear()
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    # R = sum(|W| 1 + |b|): dR/dW = 1, dR/db = 1, so sum(theta * dR/dtheta) = sum|W| + sum|b|
    assert synflow(layer, layer, (1, 3)) == pytest.approx(7.5 + 0.75)
    for k, v in layer.state_dict().items():
        assert torch.equal(v, before[k]) and v.dtype == torch.float32, k


def test_naswot_is_the_log_determinant_of_the_hamming_kernel() -> None:
    relu = nn.Sequential(nn.ReLU())
    # codes [1, 0, 1], [0, 1, 1]: agreement 3 with itself, 1 with the other -> det 9 - 1 = 8
    images = torch.tensor([[1.0, -1.0, 2.0], [-1.0, 1.0, 2.0]])
    assert naswot(relu, relu, images) == pytest.approx(math.log(8))
    same = torch.tensor([[1.0, -1.0, 2.0], [1.0, -1.0, 2.0]])  # identical patterns: singular
    assert naswot(relu, relu, same) == -math.inf


def test_local_fit_predicts_a_linear_target_from_the_other_architectures() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(20, 3))
    targets = features @ np.array([2.0, -1.0, 0.5]) + 3.0
    encodings = rng.integers(0, 2, size=(20, 8)).astype(float)
    fitted = local_fit(features, targets, encodings, ridge=1e-9)
    np.testing.assert_allclose(fitted, targets, atol=1e-6)


def test_local_fit_never_reads_an_architectures_own_target() -> None:
    rng = np.random.default_rng(1)
    features, encodings = rng.normal(size=(12, 2)), rng.random((12, 5))
    targets = rng.normal(size=12)
    changed = targets.copy()
    changed[4] += 100.0
    a, b = local_fit(features, targets, encodings), local_fit(features, changed, encodings)
    assert a[4] == pytest.approx(b[4]) and not np.allclose(a, b)
