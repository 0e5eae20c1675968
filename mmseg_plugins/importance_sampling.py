"""PA&DA data sampling: an infinite sampler drawing images by importance, and the pixel
sampler that lets the hook see (and weight) each image's logits."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
from mmseg.registry import DATA_SAMPLERS, TASK_UTILS
from torch.utils.data import Sampler

from raynas.core.pada import ImportanceWeights

__all__ = ["ImportancePixelSampler", "ImportanceSampler"]


@DATA_SAMPLERS.register_module()
class ImportanceSampler(Sampler):
    """Infinite sampler: blocks of ``len(dataset)`` indices drawn with replacement from
    ``weights.probs`` (uniform until :class:`DataImportanceHook` updates them).

    Block ``b`` is drawn by ``default_rng([seed, b])`` from the probabilities in force when it
    starts, so a resumed run (see :meth:`resume`) yields exactly the indices of an
    uninterrupted one. With data-parallel workers every rank draws the same block (the weights
    are identical on all ranks: :class:`DataImportanceHook` gathers the scores) and takes its
    own disjoint shard, ``block[rank::world_size]``.

    Args:
        dataset: The dataset.
        seed: Seed.
        shuffle: Unused (sampling is random by construction); kept for config compatibility.
    """

    def __init__(self, dataset: Sized, seed: int = 0, shuffle: bool = True) -> None:
        from mmengine.dist import get_dist_info

        self.size, self.seed = len(dataset), seed
        self.rank, self.world = get_dist_info()
        self.per_rank = self.size // self.world
        self.weights = ImportanceWeights(self.size)
        self.block, self.block_probs = 0, self.weights.probs.copy()
        self._skip = 0

    def _draw(self, block: int, probs: np.ndarray) -> list[int]:
        rng = np.random.default_rng([self.seed, block])
        drawn = rng.choice(self.size, size=self.size, replace=True, p=probs).tolist()
        return drawn[: self.per_rank * self.world][self.rank :: self.world]

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        block, probs = self.block, self.block_probs
        start = skip % self.per_rank if skip else 0
        yield from itertools.repeat(0, skip)  # placeholders that mmengine's resume skips
        while True:
            self.block, self.block_probs = block, probs
            yield from self._draw(block, probs)[start:]
            block, probs, start = block + 1, self.weights.probs.copy(), 0

    def __len__(self) -> int:
        return self.per_rank

    def state_dict(self, consumed: int) -> dict[str, Any]:
        return {
            "weights": self.weights.state_dict(),
            "consumed": consumed,
            "block": consumed // self.per_rank,
            "block_probs": self.block_probs.tolist(),
        }

    def resume(self, state: dict[str, Any]) -> None:
        """Continue after ``state['consumed']`` indices (yielded first as placeholders)."""
        self.weights.load_state_dict(state["weights"])
        self.block, self.block_probs = state["block"], np.asarray(state["block_probs"])
        self._skip = state["consumed"]

    def set_epoch(self, epoch: int) -> None:
        pass


@TASK_UTILS.register_module()
class ImportancePixelSampler:
    """mmseg pixel sampler used by :class:`DataImportanceHook`.

    ``BaseDecodeHead.loss_by_feat`` calls :meth:`sample` with the training logits and labels
    of every batch: they are kept for the per-image scores, and with ``correction`` each pixel
    is weighted by its image's ``1 / (N q_i)`` (``image_weights``, set by the hook).
    """

    def __init__(self, context: Any = None, correction: bool = False) -> None:
        self.context, self.correction = context, correction
        self.image_weights: torch.Tensor | None = None
        self.last: tuple[torch.Tensor, torch.Tensor] | None = None

    def sample(self, seg_logits: torch.Tensor, seg_label: torch.Tensor) -> torch.Tensor | None:
        if seg_label.dim() == 4:  # (B, 1, H, W) as BaseDecodeHead passes it; losses use (B, H, W)
            seg_label = seg_label[:, 0]
        self.last = (seg_logits.detach(), seg_label)
        if not self.correction or self.image_weights is None:
            return None
        shape = (-1,) + (1,) * (seg_label.dim() - 1)
        weights = self.image_weights.to(device=seg_logits.device, dtype=seg_logits.dtype)
        return weights.view(shape).expand(seg_label.shape)
