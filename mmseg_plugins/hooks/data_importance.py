"""PA&DA's data importance as an mmengine hook: per-image gradient-norm scores refresh the
:class:`~mmseg_plugins.importance_sampling.ImportanceSampler`'s probabilities."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.dist import all_gather_object
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from mmseg_plugins.arch import unwrap
from mmseg_plugins.checkpoint import DATA_SAMPLER_KEY, read_meta, write_meta
from mmseg_plugins.distributed import world_size
from mmseg_plugins.importance_sampling import ImportancePixelSampler, ImportanceSampler
from raynas.core.errors import InvalidValueError

__all__ = ["DataImportanceHook"]


@HOOKS.register_module()
class DataImportanceHook(Hook):
    """Scores every training image by ``mean over valid pixels ||softmax - onehot||`` (the
    gradient norm of the loss w.r.t. the logits) and refreshes the sampler's probabilities
    every ``update_interval`` iterations with ``mix = iter / max_iters``.

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
            raise InvalidValueError(
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
            raise InvalidValueError(
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
            scored = [(np.array([self.index[s.img_path] for s in samples]),
                       _grad_norm_scores(*pixels.last))]  # fmt: skip
            if world_size() > 1:  # every rank's images, so the weights agree on all ranks
                scored = all_gather_object(scored[0])
            for idx, scores in scored:
                sampler.weights.add(idx, scores)
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
        write_meta(checkpoint, DATA_SAMPLER_KEY, state)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._pending = read_meta(checkpoint, DATA_SAMPLER_KEY)


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
