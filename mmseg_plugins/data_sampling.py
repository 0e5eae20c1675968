"""PA&DA data sampling: an infinite sampler drawing images by importance, and its hook."""

from __future__ import annotations

from collections.abc import Iterator, Sized
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.hooks import Hook
from mmseg.registry import DATA_SAMPLERS, HOOKS
from torch.utils.data import Sampler

from mmseg_plugins.hooks import unwrap
from raynas.core.pada import ImportanceWeights

__all__ = ["DataImportanceHook", "ImportanceSampler"]


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
        yield from [0] * skip  # placeholders that mmengine's resume skips
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

    As in the paper's code, the loss is not re-weighted by ``1 / (N q_i)`` (no importance
    correction).

    Args:
        update_interval: Iterations between refreshes (default: one pass over the data).
    """

    priority = "NORMAL"

    def __init__(self, update_interval: int | None = None) -> None:
        self.update_interval = update_interval
        self._logits: torch.Tensor | None = None
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
        head.register_forward_hook(self._capture)
        if self._pending is not None:
            sampler.resume(self._pending)
            self._pending = None

    def _capture(self, module: Any, args: Any, output: torch.Tensor) -> None:
        if module.training:
            self._logits = output.detach()

    def after_train_iter(
        self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None
    ) -> None:
        sampler = self._sampler(runner)
        if self._logits is not None and data_batch is not None:
            samples = data_batch["data_samples"]
            scores = _grad_norm_scores(self._logits, samples, self._logits.shape[1])
            sampler.weights.add(np.array([self.index[s.img_path] for s in samples]), scores)
            self._logits = None
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


@torch.no_grad()
def _grad_norm_scores(logits: torch.Tensor, samples: list, num_classes: int) -> np.ndarray:
    labels = torch.stack([s.gt_sem_seg.data[0] for s in samples]).long()
    labels = F.interpolate(labels[:, None].float(), size=logits.shape[-2:], mode="nearest")
    labels = labels[:, 0].long()
    valid = labels != 255
    prob = logits.float().softmax(1)
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2)
    norm = (prob - onehot).norm(dim=1)
    return ((norm * valid).sum((1, 2)) / valid.sum((1, 2)).clamp_min(1)).cpu().numpy()
