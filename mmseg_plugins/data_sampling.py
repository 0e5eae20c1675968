"""PA&DA data sampling: an infinite sampler drawing images by importance, and its hook."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmseg.registry import DATA_SAMPLERS, HOOKS, TASK_UTILS
from torch.utils.data import Sampler

from mmseg_plugins.hooks import unwrap
from raynas.core.pada import ImportanceWeights

__all__ = ["DataImportanceHook", "ImportancePixelSampler", "ImportanceSampler"]


@DATA_SAMPLERS.register_module()
class ImportanceSampler(Sampler):
    """Infinite sampler: blocks of ``len(dataset)`` indices drawn with replacement from
    ``weights.probs`` (uniform until :class:`DataImportanceHook` updates them).

    Block ``b`` is drawn by ``default_rng([seed, b])`` from the probabilities in force when it
    starts, so a resumed run (see :meth:`resume`) yields exactly the indices of an
    uninterrupted one.

    Args:
        dataset: The dataset.
        seed: Seed.
        shuffle: Unused (sampling is random by construction); kept for config compatibility.
    """

    def __init__(self, dataset: Sized, seed: int = 0, shuffle: bool = True) -> None:
        self.size, self.seed = len(dataset), seed
        self.weights = ImportanceWeights(self.size)
        self.block, self.block_probs = 0, self.weights.probs.copy()
        self._skip = 0

    def _draw(self, block: int, probs: np.ndarray) -> list[int]:
        rng = np.random.default_rng([self.seed, block])
        return rng.choice(self.size, size=self.size, replace=True, p=probs).tolist()

    def __iter__(self) -> Iterator[int]:
        skip, self._skip = self._skip, 0
        block, probs = self.block, self.block_probs
        start = skip % self.size if skip else 0
        yield from itertools.repeat(0, skip)  # placeholders that mmengine's resume skips
        while True:
            self.block, self.block_probs = block, probs
            yield from self._draw(block, probs)[start:]
            block, probs, start = block + 1, self.weights.probs.copy(), 0

    def __len__(self) -> int:
        return self.size

    def state_dict(self, consumed: int) -> dict[str, Any]:
        return {
            "weights": self.weights.state_dict(),
            "consumed": consumed,
            "block": consumed // self.size,
            "block_probs": self.block_probs.tolist(),
        }

    def resume(self, state: dict[str, Any]) -> None:
        """Continue after ``state['consumed']`` indices (yielded first as placeholders)."""
        self.weights.load_state_dict(state["weights"])
        self.block, self.block_probs = state["block"], np.asarray(state["block_probs"])
        self._skip = state["consumed"]

    def set_epoch(self, epoch: int) -> None:
        pass


@HOOKS.register_module()
class DataImportanceHook(Hook):
    """Scores every training image by ``mean over valid pixels ||softmax - onehot||`` (the
    gradient norm of the loss w.r.t. the logits) and refreshes the sampler's probabilities
    every ``update_interval`` iterations with ``tau = iter / max_iters``.

    Args:
        update_interval: Iterations between refreshes (default: one pass over the data).
        correction: Weight each image's pixels by ``1 / (N q_i)`` (unbiased importance
            sampling); off (default) reproduces the paper's code.
    """

    priority = "NORMAL"

    def __init__(self, update_interval: int | None = None, correction: bool = False) -> None:
        self.update_interval, self.correction = update_interval, correction
        self._pending: dict[str, Any] | None = None

    def _sampler(self, runner: Any) -> ImportanceSampler:
        sampler = runner.train_loop.dataloader.sampler
        if not isinstance(sampler, ImportanceSampler):
            raise TypeError(
                "DataImportanceHook needs train_dataloader.sampler=dict(type='ImportanceSampler')"
            )
        return sampler

    def before_train(self, runner: Any) -> None:
        loader = runner.train_loop.dataloader
        sampler = self._sampler(runner)
        self.batch_size = loader.batch_size
        self.interval = self.update_interval or max(1, sampler.size // self.batch_size)
        dataset = loader.dataset
        self.index = {dataset.get_data_info(i)["img_path"]: i for i in range(len(dataset))}
        head = unwrap(runner.model).decode_head
        if head.sampler is not None and not isinstance(head.sampler, ImportancePixelSampler):
            raise ValueError(
                "DataImportanceHook needs decode_head.sampler=None (it installs "
                "ImportancePixelSampler there to see the logits and labels)"
            )
        head.sampler = ImportancePixelSampler(head, self.correction)
        if self._pending is not None:
            sampler.resume(self._pending)
            self._pending = None

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        if self.correction and data_batch is not None:
            sampler = self._sampler(runner)
            idx = [self.index[s.img_path] for s in data_batch["data_samples"]]
            weights = 1.0 / (sampler.size * sampler.weights.probs[idx])
            unwrap(runner.model).decode_head.sampler.image_weights = torch.as_tensor(
                weights, dtype=torch.float32
            )

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        sampler = self._sampler(runner)
        pixels = unwrap(runner.model).decode_head.sampler
        if pixels.last is not None and data_batch is not None:
            samples = data_batch["data_samples"]
            sampler.weights.add(
                np.array([self.index[s.img_path] for s in samples]),
                _grad_norm_scores(*pixels.last),
            )
            pixels.last = None
        done = runner.iter + 1
        if done % self.interval == 0:
            sampler.weights.refresh(min(1.0, done / runner.max_iters))
            probs = sampler.weights.probs
            runner.message_hub.update_scalar(
                "strategy/data_prob_max_over_uniform", float(probs.max() * len(probs))
            )

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        state = self._sampler(runner).state_dict(runner.iter * self.batch_size)
        checkpoint.setdefault("meta", {})["raynas_data_sampler"] = state

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = checkpoint.get("meta", {}).get("raynas_data_sampler")


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


@torch.no_grad()
def _grad_norm_scores(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per image: mean over valid pixels of ``||softmax(z) - onehot(y)||`` (= ||dCE/dz||)."""
    num_classes = logits.shape[1]
    if logits.shape[-2:] != labels.shape[-2:]:
        logits = F.interpolate(
            logits, size=labels.shape[-2:], mode="bilinear", align_corners=False
        )
    labels = labels.long()
    valid = labels != 255
    prob = logits.float().softmax(1)
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    norm = (prob - onehot).norm(dim=1)
    return ((norm * valid).sum((1, 2)) / valid.sum((1, 2)).clamp_min(1)).cpu().numpy()
