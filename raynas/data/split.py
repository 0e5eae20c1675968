"""The selection split: images carved from the training set for everything that selects
(proxies, search scores, top-k, the best model), so the validation set only reports.

Deterministic for a seed, and stratified: every group of images (a Cityscapes city: the
subfolder an image lies in) gives at least one, every class present in the training masks
appears in at least one selected image (rarest classes first), the rest drawn at random.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from raynas.core.errors import InvalidValueError

__all__ = ["class_presence", "stratified_selection"]


def class_presence(masks: Sequence[str | Path], ignore_index: int = 255) -> list[set[int]]:
    """The classes present in each mask (``ignore_index`` left out)."""
    out = []
    for mask in masks:
        with Image.open(mask) as seg:
            labels = np.unique(np.asarray(seg))
        out.append({int(v) for v in labels if v != ignore_index})
    return out


def stratified_selection(
    presence: Sequence[set[int]],
    fraction: float,
    seed: int = 0,
    groups: Sequence[str] | None = None,
) -> list[int]:
    """Indices (sorted) of ``round(fraction * n)`` images (at least one) for selection.

    Args:
        presence: Classes present in each image, in the dataset's order.
        fraction: Share of the images to select, in (0, 0.5].
        seed: Seed of the draw.
        groups: Each image's group (its subfolder); every group gives one image first, as
            far as the selection's size allows.

    Raises:
        InvalidValueError: A fraction outside (0, 0.5], or too few images.
    """
    n = len(presence)
    if not 0 < fraction <= 0.5:
        raise InvalidValueError(f"selection fraction must be in (0, 0.5], got {fraction}")
    if n < 2:
        raise InvalidValueError(f"need at least 2 training images to carve a selection, got {n}")
    size = min(n - 1, max(1, round(fraction * n)))
    rng = np.random.default_rng(seed)
    chosen: set[int] = set()
    members: dict[str, list[int]] = {}
    for i, group in enumerate(groups or []):
        members.setdefault(group, []).append(i)
    if len(members) > 1:
        for group in sorted(members):
            if len(chosen) < size:
                chosen.add(int(rng.choice(members[group])))
    counts: dict[int, list[int]] = {}
    for i, classes in enumerate(presence):
        for c in classes:
            counts.setdefault(c, []).append(i)
    for c in sorted(counts, key=lambda c: (len(counts[c]), c)):  # rarest first
        if len(chosen) < size and not any(c in presence[i] for i in chosen):
            chosen.add(int(rng.choice(counts[c])))
    rest = np.array(sorted(set(range(n)) - chosen))
    fill = rng.choice(rest, size - len(chosen), replace=False) if size > len(chosen) else []
    return sorted(chosen | {int(i) for i in fill})
