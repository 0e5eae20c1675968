"""Peak GPU memory of a training step, estimated before anything is launched.

A step holds the weights, their gradients and the optimizer's state, plus the tensors autograd
saves for backward. Those are measured, not guessed: a forward and backward of the path on CPU
at two small sizes, two images each (an eighth and a quarter of the crop's side, or what
divides it), counts the bytes of every tensor saved for backward; a line through the two, a
fixed part (weights, their low-precision copies) plus a part per pixel (activations), is
extrapolated to the crop and the batch. The test checks the extrapolation against a direct
measurement. Under mixed precision the steps are measured under bfloat16 autocast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from mmengine.config import Config

__all__ = [
    "CUDA_RESERVE_MIB",
    "MARGIN",
    "MemoryEstimate",
    "gpu_memory_mib",
    "saved_bytes",
    "step_memory",
]

# the CUDA context and cuDNN's workspace, which no tensor accounts for
CUDA_RESERVE_MIB = 768.0
# the caching allocator's fragmentation and the transient buffers of a step
MARGIN = 1.15


@dataclass(frozen=True)
class MemoryEstimate:
    """One training step's memory on one GPU, in MiB."""

    what: str
    batch: int
    size: tuple[int, int]
    activations_mib: float
    states_mib: float

    @property
    def total_mib(self) -> float:
        """Activations and states with the allocator's margin, plus the CUDA reserve."""
        return (self.activations_mib + self.states_mib) * MARGIN + CUDA_RESERVE_MIB

    def line(self) -> str:
        return (
            f"{self.what} at {self.size[0]}x{self.size[1]}, batch {self.batch}: "
            f"~{self.total_mib / 1024:.1f} GiB ({self.activations_mib:.0f} MiB saved for "
            f"backward, {self.states_mib:.0f} MiB weights + gradients + optimizer state)"
        )


def saved_bytes(step: Any) -> int:
    """Bytes of the distinct tensor storages autograd saves for backward while ``step()`` runs
    (what a training step holds at its peak besides weights and optimizer state)."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    return sum(seen.values())


def _probe_sides(size: tuple[int, int]) -> tuple[int, int]:
    """Two divisors of the crop's side for the measured steps: 8 and 4 where the sides stay
    multiples of 32 and at least 32 px, else the largest such pair."""
    ok = [d for d in (8, 4, 2, 1) if all(s % (32 * d) == 0 and s // d >= 32 for s in size)]
    return (ok[0], ok[1]) if len(ok) > 1 else (1, 1)


def step_memory(
    cfg: Config, *, relaxed: bool = False, amp: str | None = None, batch: int | None = None
) -> MemoryEstimate:
    """Estimates one training step of the supernet's largest path (``relaxed``: SSR's relaxed
    step over every candidate) at the config's crop (``model.data_preprocessor.size``) and
    batch (``train_dataloader.batch_size`` unless given).

    Args:
        cfg: A pipeline config with a ``SegSuperNet`` model.
        relaxed: Measures SSR's relaxed forward instead of the largest path.
        amp: ``'bf16'`` or ``'fp16'``: activations measured under bfloat16 autocast.
        batch: Images per GPU.
    """
    from mmseg_plugins.arch import search_space, set_arch, set_relaxed
    from raynas.core.ssr import ArchWeights
    from raynas.export import build_supernet

    size = tuple(cfg.model.data_preprocessor.get("size") or (512, 512))
    batch = int(batch or cfg.train_dataloader.batch_size)
    model = build_supernet(cfg).train()
    space = search_space(model)
    set_arch(model, space.extreme(True))
    if relaxed:
        set_relaxed(model, ArchWeights(space))
    # batch 2: BatchNorm after a global pool needs two images in training mode
    small, large = (saved_bytes(lambda d=d: _step(model, size, d, amp, 2))
                    for d in _probe_sides(size))  # fmt: skip
    pixels = [2 * size[0] * size[1] / d**2 for d in _probe_sides(size)]
    per_pixel = (large - small) / (pixels[1] - pixels[0]) if pixels[1] > pixels[0] else 0.0
    fixed = small - per_pixel * pixels[0]
    activations = fixed + per_pixel * size[0] * size[1] * batch
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    what = "SSR's relaxed step" if relaxed else "the largest path's step"
    what += f" in {amp}" if amp else ""
    return MemoryEstimate(what, batch, size, activations / 2**20, 3 * params / 2**20)


def _step(
    model: torch.nn.Module, size: tuple[int, int], div: int, amp: str | None, batch: int = 1
) -> None:
    """One forward (with mmseg's loss at the label's size) and backward."""
    x = torch.randn(batch, 3, size[0] // div, size[1] // div)
    y = torch.randint(0, model.decode_head.num_classes, (batch, *x.shape[-2:]))
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bool(amp)):
        logits = model.decode_head(model.backbone(x))
        logits = F.interpolate(logits, x.shape[-2:], mode="bilinear", align_corners=False)
        F.cross_entropy(logits.float(), y).backward()
    model.zero_grad(set_to_none=True)


def gpu_memory_mib(resources: dict[str, Any]) -> float | None:
    """The GPU memory one trial (or one data-parallel worker) may use, in MiB: the
    ``gpu_memory`` resource (GiB of one GPU) or else the first local CUDA device, times the
    trial's GPU fraction; None without a GPU or without a size to check against."""
    share = resources.get("gpu_per_worker") if resources.get("workers", 1) > 1 else None
    share = share or resources.get("gpu") or 0
    if not share:
        return None
    if resources.get("gpu_memory"):
        total = float(resources["gpu_memory"]) * 1024
    elif torch.cuda.is_available():
        total = torch.cuda.get_device_properties(0).total_memory / 2**20
    else:
        return None
    return total * min(float(share), 1.0)
