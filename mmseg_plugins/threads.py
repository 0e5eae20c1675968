"""How many CPU threads a training process should give torch, measured on the model's own step.

More intra-op threads are not always faster: a segmentation supernet at 128x128 runs many small
operators, and on a 2-vCPU virtual machine with OpenMP's spin-wait shortened (as raynas sets it
for Ray workers, ``GOMP_SPINCOUNT``) the quickstart's supernet trial took 0.245 s per iteration
on 2 threads against 0.160 s on one (``experiments/openmp/run.py``). :func:`fastest_threads` times
forward + backward of a copy of the model at each candidate count and keeps the fastest; the
model, its gradients and every random stream are left as they were, so an exact resume is
unaffected.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from mmseg_plugins.arch import is_supernet, search_space, set_arch, unwrap

__all__ = ["fastest_threads"]


def fastest_threads(
    model: nn.Module,
    batch: int,
    size: Sequence[int],
    candidates: Sequence[int],
    steps: int = 3,
) -> tuple[int, dict[int, float]]:
    """Sets torch's thread count to the fastest of ``candidates`` for a training step of
    ``model`` (a supernet: on random paths) and returns it with the median seconds per count.

    Args:
        model: An mmseg segmentor (or one wrapped for DDP); it is copied, not touched.
        batch: Images per step.
        size: Input height and width.
        candidates: Thread counts to try.
        steps: Timed steps per count (after one warm-up), interleaved across the counts.
    """
    probe = copy.deepcopy(unwrap(model)).train()
    ref = next(probe.parameters())
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, *size, generator=gen).to(ref.device, ref.dtype)
    rng = np.random.default_rng(0)
    space = search_space(probe) if is_supernet(probe) else None
    times: dict[int, list[float]] = {n: [] for n in candidates}
    with torch.random.fork_rng(devices=[]):
        for rep in range(steps + 1):
            arch = space.sample(rng) if space is not None else None
            for n in candidates:
                seconds = _step(probe, x, n, arch)
                if rep:  # the first round warms up
                    times[n].append(seconds)
    medians = {n: statistics.median(t) for n, t in times.items()}
    best = min(medians, key=medians.get)
    torch.set_num_threads(best)
    return best, medians


def _step(model: nn.Module, x: torch.Tensor, threads: int, arch: dict | None) -> float:
    torch.set_num_threads(threads)
    if arch is not None:
        set_arch(model, arch)
    start = time.perf_counter()
    model._forward(x).float().mean().backward()
    seconds = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return seconds
