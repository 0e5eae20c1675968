"""Batch-norm recalibration of one path of a supernet, on fixed calibration batches."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from mmengine.dataset import pseudo_collate
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.data import DataLoader, Dataset, Subset

__all__ = [
    "bn_buffers_preserved",
    "calibration_loader",
    "recalibrate_bn",
    "train_calibration_loader",
]


def calibration_loader(dataset: Dataset, batch_size: int, seed: int = 0) -> DataLoader:
    """The same batches of a training dataset, in the same order, on every iteration.

    A fixed seeded subset order makes every path recalibrated on the same images, so paths are
    compared fairly. A loader of its own, because iterating the training loader again would
    draw from (and shift) mmengine's shared ``InfiniteSampler`` stream.
    """
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    return DataLoader(
        Subset(dataset, order.tolist()),
        batch_size=batch_size,
        shuffle=False,
        num_workers=0,
        collate_fn=pseudo_collate,
    )


def train_calibration_loader(cfg: Mapping[str, Any]) -> DataLoader:
    """:func:`calibration_loader` over a config's training dataset, at its batch size."""
    from mmseg.registry import DATASETS

    train = cfg["train_dataloader"]
    return calibration_loader(DATASETS.build(train["dataset"]), train["batch_size"])


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seeds numpy's, python's and torch's global RNGs (augmentations and, in train-mode
    forwards, dropout draw from them) and restores their previous states on exit, so the
    training stream does not depend on whether or when this ran."""
    np_state, py_state = np.random.get_state(), random.getstate()
    with torch.random.fork_rng(devices=[]):  # the CPU generator; CUDA's is left alone
        torch.manual_seed(seed)
        np.random.seed(seed)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


def _bns(model: nn.Module) -> list[_BatchNorm]:
    return [m for m in model.modules() if isinstance(m, _BatchNorm)]


@contextlib.contextmanager
def bn_buffers_preserved(model: nn.Module) -> Iterator[None]:
    """Restores every BN running statistic on exit (e.g. around a per-path evaluation)."""
    saved = [{k: v.clone() for k, v in m.named_buffers(recurse=False)} for m in _bns(model)]
    try:
        yield
    finally:
        with torch.no_grad():
            for m, buffers in zip(_bns(model), saved):
                for k, v in buffers.items():
                    getattr(m, k).copy_(v)


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module, batches: Iterable[dict], num_batches: int, seed: int = 0
) -> int:
    """Resets BN running statistics and re-estimates them for the active path.

    The statistics become the exact average over ``num_batches`` training batches (BN
    momentum ``None``), as in once-for-all's ``set_running_statistics``. Augmentations of the
    batches draw from the global RNGs seeded with ``seed`` (their states are restored after),
    so a recalibration is reproducible and leaves the training stream untouched.

    Args:
        model: An mmseg segmentor with its path already set.
        batches: Training batches as yielded by an mmengine dataloader.
        num_batches: How many batches to use.
        seed: Seed of the global RNGs while the batches are loaded.

    Returns:
        The number of batches used.
    """
    bns = _bns(model)
    momenta = [m.momentum for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    used = 0
    try:
        with _seeded_global_rng(seed):
            for batch in batches:
                if used >= num_batches:
                    break
                data = model.data_preprocessor(batch, True)
                model._forward(data["inputs"], data["data_samples"])
                used += 1
    finally:
        for m, momentum in zip(bns, momenta):
            m.momentum = momentum
        model.train(was_training)
    return used
