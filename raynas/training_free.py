"""Training-free scores of searched architectures: each path built as its plain mmseg subnet at
initialisation (a fixed seed) and scored on one batch of training data by
:mod:`raynas.core.zero_cost` (grad_norm, snip, synflow, NASWOT)."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterable
from typing import Any

import torch
from mmengine.config import Config

from raynas.core.zero_cost import grad_norm, naswot, snip, synflow

__all__ = ["training_free_scores"]


def _batch(cfg: Config, images: int, seed: int) -> dict[str, Any]:
    """``images`` training samples (the training pipeline, a fixed seed), unpreprocessed."""
    from mmengine.runner import Runner, set_random_seed

    set_random_seed(seed)  # the transforms draw from the global generators
    loader = copy.deepcopy(cfg.train_dataloader)
    loader.batch_size, loader.num_workers, loader.persistent_workers = images, 0, False
    return next(iter(Runner.build_dataloader(loader, seed=seed)))


def _scores(model: torch.nn.Module, batch: dict[str, Any], seed: int) -> dict[str, float]:
    data = model.data_preprocessor(batch, training=True)
    inputs, samples = data["inputs"], data["data_samples"]

    def loss() -> torch.Tensor:
        losses = model.loss(inputs, samples)
        return sum(v for k, v in losses.items() if "loss" in k)

    forward = lambda x: model(x, mode="tensor")  # noqa: E731
    model.train()
    metrics = dict(grad_norm=lambda: grad_norm(model, loss), snip=lambda: snip(model, loss),
                   synflow=lambda: synflow(model, forward, tuple(inputs.shape)),
                   naswot=lambda: naswot(model, forward, inputs))  # fmt: skip
    out = {}
    for name, metric in metrics.items():
        torch.manual_seed(seed)  # the same dropout masks for every network
        out[name] = metric()
    return out


def training_free_scores(cfg: Config, archs: Iterable[str], images: int = 16,
                         seed: int = 0) -> dict[str, dict[str, float]]:  # fmt: skip
    """JSON arch -> its scores, every network initialised from the same seed.

    Args:
        cfg: The supernet's config.
        archs: Paths as JSON (the archive's ``arch`` column).
        images: Training images in the batch (NASWOT's kernel is images x images).
        seed: Seeds the batch and each network's initialisation.
    """
    from mmengine.logging import MMLogger
    from mmseg.registry import MODELS

    import mmseg_plugins  # noqa: F401  (registers the modules)
    from raynas.export import build_supernet, subnet_config

    MMLogger.get_current_instance().setLevel(logging.WARNING)  # init_weights' table per model
    supernet = build_supernet(cfg)
    batch, out = _batch(cfg, images, seed), {}
    for arch in archs:
        sub = subnet_config(cfg, json.loads(arch), supernet)
        torch.manual_seed(seed)
        model = MODELS.build(sub.model)
        model.init_weights()
        out[arch] = _scores(model, batch, seed)
    return out
