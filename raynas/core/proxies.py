"""Path proxies: pure functions over tensors (no mmengine, no ray).

- :func:`angle_score`: ABS/RLNAS angle between a path's initial and current weight vectors.
- :func:`loss_decrease`: training-speed estimate (TSE-style) from a path's loss history.
- :func:`batch_miou`: mIoU of logits on a labelled mini-batch (the predictor's target).
- :func:`ms_ib_score`: multi-scale information-bottleneck score with normalised HSIC,
  ``mean_s nHSIC(Z_s, Y) - beta * nHSIC(Z_s, X)`` over the path's output scales (a mean, so
  paths fusing 2 or 3 scales are scored on the same footing).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["angle_score", "batch_miou", "hsic", "loss_decrease", "ms_ib_score"]


@torch.no_grad()
def angle_score(initial: Sequence[torch.Tensor], current: Sequence[torch.Tensor]) -> float:
    """Angle (radians) between the concatenated initial and current weights of a path.

    Every operator of our space has weights (parameter-free choices such as dilation or
    resolution reuse the layer's weights), so no identity stand-ins are needed.
    """
    v0 = torch.cat([t.detach().reshape(-1).double() for t in initial])
    vt = torch.cat([t.detach().reshape(-1).double() for t in current])
    cos = torch.dot(v0, vt) / (v0.norm() * vt.norm()).clamp_min(1e-30)
    return float(torch.arccos(cos.clamp(-1.0, 1.0)))


def loss_decrease(history: Sequence[float]) -> float:
    """Loss decrease between the first and last of a path's recent measurements (0 if < 2)."""
    if len(history) < 2:
        return 0.0
    return float(history[0] - history[-1])


@torch.no_grad()
def batch_miou(
    logits: torch.Tensor, labels: torch.Tensor, num_classes: int, ignore_index: int = 255
) -> float:
    """mIoU (%) of ``logits`` (B, K, h, w) against ``labels`` (B, H, W), resized to labels."""
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(
            logits, size=labels.shape[-2:], mode="bilinear", align_corners=False
        )
    pred = logits.argmax(1)
    valid = labels != ignore_index
    pred, gt = pred[valid], labels[valid]
    inter = torch.bincount(gt[pred == gt], minlength=num_classes).double()
    area_p = torch.bincount(pred, minlength=num_classes).double()
    area_g = torch.bincount(gt, minlength=num_classes).double()
    union = area_p + area_g - inter
    present = area_g > 0
    return float((inter[present] / union[present]).mean() * 100) if present.any() else 0.0


def _gram(x: torch.Tensor) -> torch.Tensor:
    """Gaussian kernel with the median heuristic, centred."""
    d2 = torch.cdist(x, x).square()
    sigma2 = d2[d2 > 0].median() if (d2 > 0).any() else d2.new_ones(())
    k = torch.exp(-d2 / (2 * sigma2))
    n = k.shape[0]
    h = torch.eye(n, dtype=x.dtype, device=x.device) - 1.0 / n
    return h @ k @ h


def hsic(x: torch.Tensor, y: torch.Tensor) -> float:
    """Normalised HSIC (centred kernel alignment) between two (n, d) samples."""
    kx, ky = _gram(x.double()), _gram(y.double())
    num = (kx * ky).sum()
    den = (kx.square().sum() * ky.square().sum()).sqrt().clamp_min(1e-30)
    return float(num / den)


@torch.no_grad()
def ms_ib_score(
    features: Sequence[torch.Tensor | None],
    inputs: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    beta: float = 0.5,
    num_points: int = 256,
    seed: int = 0,
    ignore_index: int = 255,
) -> float:
    """Multi-scale IB score of a path: relevance to labels minus beta times input dependence.

    At each output scale, ``num_points`` pixel positions (fixed by ``seed``) give samples
    ``Z`` (features), ``Y`` (one-hot labels) and ``X`` (the input averaged over the feature's
    receptive cell); the score is the mean of ``nHSIC(Z, Y) - beta * nHSIC(Z, X)`` over the
    scales present (``None`` entries, scales the path does not fuse, are skipped).
    """
    gen = torch.Generator().manual_seed(seed)
    scores = []
    for feat in features:
        if feat is None:
            continue
        b, _, h, w = feat.shape
        lbl = F.interpolate(labels[:, None].to(feat.dtype), size=(h, w), mode="nearest")
        lbl = lbl[:, 0].long()
        img = F.adaptive_avg_pool2d(inputs.to(feat.dtype), (h, w))
        idx = torch.randperm(b * h * w, generator=gen)[:num_points].to(feat.device)
        z = feat.permute(0, 2, 3, 1).reshape(b * h * w, -1)[idx]
        y_idx = lbl.reshape(-1)[idx]
        keep = y_idx != ignore_index
        y = F.one_hot(y_idx[keep].clamp_max(num_classes - 1), num_classes).to(feat.dtype)
        x = img.permute(0, 2, 3, 1).reshape(b * h * w, -1)[idx][keep]
        scores.append(hsic(z[keep], y) - beta * hsic(z[keep], x))
    return sum(scores) / len(scores) if scores else 0.0
