"""Architecture weights for the SSR and XNAS core tests."""

from __future__ import annotations

import torch

from raynas.core.space import SearchSpace
from raynas.core.ssr import ArchWeights


def random_weights(space: SearchSpace, seed: int, scale: float) -> ArchWeights:
    """``ArchWeights`` of ``space`` with alpha drawn from ``N(0, scale^2)``."""
    weights = ArchWeights(space)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for alpha in weights.alpha.values():
            alpha.add_(scale * torch.randn(alpha.shape, generator=gen))
    return weights
