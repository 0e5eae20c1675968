"""What the supernet's training needs of ``torch.distributed`` when a trial runs several
data-parallel workers (Ray Train's ``TorchTrainer``, mmengine's ``MMDistributedDataParallel``):
rank 0 decides, every rank follows. All helpers are no-ops in a single process."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from mmengine import dist

__all__ = ["broadcast", "is_main", "mean", "mean_", "rank", "same_on_all_ranks", "world_size"]


def world_size() -> int:
    return dist.get_world_size()


def is_main() -> bool:
    return dist.get_rank() == 0


def rank() -> int:
    return dist.get_rank()


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (pickled; small objects such as a path or a state)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean(value: float, like: torch.Tensor | None = None) -> float:
    """The mean of ``value`` over the ranks."""
    if world_size() == 1:
        return float(value)
    t = torch.tensor(float(value), dtype=torch.float64)
    if like is not None and like.is_cuda:  # nccl reduces device tensors only
        t = t.to(like.device)
    dist.all_reduce(t, op="mean")
    return float(t)


def mean_(tensors: list[torch.Tensor]) -> None:
    """Averages ``tensors`` in place over the ranks (one all-reduce for all of them)."""
    if world_size() == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat, op="mean")
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def _plain(obj: Any) -> Any:
    return obj.tolist() if hasattr(obj, "tolist") else repr(obj)


def same_on_all_ranks(obj: Any) -> bool:
    """Whether ``obj`` (JSON-able, or anything with a stable ``repr``) is equal on every rank."""
    if world_size() == 1:
        return True
    text = json.dumps(obj, sort_keys=True, default=_plain)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return len(set(dist.all_gather_object(digest))) == 1
