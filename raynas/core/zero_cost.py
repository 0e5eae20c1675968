"""Training-free scores of a network at initialisation, and their combination per architecture.

Pure functions over a ``torch.nn.Module`` and closures that run it (no mmengine, no ray):

- ``grad_norm``: the summed L2 norms of the loss's parameter gradients (Abdelfattah et al.,
  "Zero-Cost Proxies for Lightweight NAS", ICLR 2021);
- ``snip``: ``sum |theta * dL/dtheta|`` (Lee et al., 2019, as a network score);
- ``synflow``: ``sum theta * dR/dtheta`` with every parameter made positive and ``R`` the sum of
  the outputs for an all-ones input, in float64 (Tanaka et al., 2020);
- ``naswot``: ``log |det K|`` of the Hamming kernel of the ReLU activation patterns of a batch
  (Mellor et al., "Neural Architecture Search without Training", ICML 2021);
- ``local_fit``: each architecture's own linear combination of such scores, fitted on the other
  architectures' known scores weighted by their closeness in the space (in the spirit of
  PO-NAS, which optimises the combination per architecture; its formulas are not published).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

__all__ = ["grad_norm", "local_fit", "naswot", "snip", "synflow"]

_RELUS = (nn.ReLU, nn.ReLU6)


def _grads(
    model: nn.Module, loss: Callable[[], torch.Tensor]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss().backward()
    return [(p.detach(), p.grad.detach()) for p in model.parameters() if p.grad is not None]


def grad_norm(model: nn.Module, loss: Callable[[], torch.Tensor]) -> float:
    """Summed L2 norm of each parameter's gradient of ``loss()``."""
    return float(sum(g.norm() for _, g in _grads(model, loss)))


def snip(model: nn.Module, loss: Callable[[], torch.Tensor]) -> float:
    """Connection sensitivity: ``sum |theta * dL/dtheta|`` over all parameters."""
    return float(sum((p * g).abs().sum() for p, g in _grads(model, loss)))


@torch.no_grad()
def _signs(model: nn.Module) -> dict[str, torch.Tensor]:
    signs = {}
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            signs[name] = torch.sign(value)
            value.abs_()
    return signs


def synflow(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
            shape: tuple[int, ...]) -> float:  # fmt: skip
    """Synaptic flow of ``model`` (put in eval mode, float64, positive weights, then restored):
    ``forward`` maps an all-ones batch of ``shape`` to the outputs."""
    dtype, training = next(model.parameters()).dtype, model.training
    model.double().eval()
    signs = _signs(model)
    try:
        device = next(model.parameters()).device
        ones = torch.ones(shape, dtype=torch.float64, device=device)
        pairs = _grads(model, lambda: forward(ones).sum())
        return float(sum((p * g).sum() for p, g in pairs))
    finally:
        with torch.no_grad():
            for name, value in model.state_dict().items():
                if name in signs:
                    value.mul_(signs[name])
        model.to(dtype).train(training)


@torch.no_grad()
def naswot(model: nn.Module, forward: Callable[[torch.Tensor], torch.Tensor],
           images: torch.Tensor) -> float:  # fmt: skip
    """``log |det K|`` with ``K[i, j]`` the number of ReLU units on which images ``i`` and ``j``
    agree (both active or both inactive); the network runs in train mode (batch statistics),
    as in the paper."""
    n = images.shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64, device=images.device)

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        codes = (out.reshape(n, -1) > 0).to(torch.float64)
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, _RELUS)]
    try:
        forward(images)
    finally:
        for h in handles:
            h.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def local_fit(features: np.ndarray, targets: np.ndarray, encodings: np.ndarray,
              ridge: float = 1.0) -> np.ndarray:  # fmt: skip
    """For each architecture ``i``, the prediction of its target by a ridge regression on the
    standardised ``features``, fitted on all other architectures with weights
    ``exp(-d(i, j) / h)`` (``d``: mean absolute difference of the encodings; ``h``: the median
    of ``d``). Its own target is never used.

    Args:
        features: (N, F) scores of the N architectures.
        targets: (N,) known scores (e.g. inherited mIoU) the combination is fitted to.
        encodings: (N, D) the architectures' encodings in [0, 1].
        ridge: The L2 penalty on the standardised coefficients.
    """
    n = len(targets)
    z = (features - features.mean(0)) / np.where(features.std(0) > 0, features.std(0), 1.0)
    x = np.hstack([np.ones((n, 1)), z])
    dist = np.abs(encodings[:, None, :] - encodings[None, :, :]).mean(-1)
    h = float(np.median(dist[~np.eye(n, dtype=bool)])) or 1.0
    penalty = ridge * np.diag([0.0, *[1.0] * z.shape[1]])
    out = np.empty(n)
    for i in range(n):
        w = np.exp(-dist[i] / h)
        w[i] = 0.0
        coef = np.linalg.solve(x.T @ (w[:, None] * x) + penalty, x.T @ (w * targets))
        out[i] = x[i] @ coef
    return out
