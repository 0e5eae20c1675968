"""Small generated datasets in the folder layouts of real ones, for their shipped configs.

The images and masks are synthseg's (:func:`raynas.data.synth.render`), written where mmseg's
own dataset classes look for them, with the label conventions of each dataset, so that the
Cityscapes, CamVid and ADE20K pipeline configs run unchanged but for their data root and sizes:

- ``cityscapes``: ``leftImg8bit/{train,val}/<city>/<city>_000000_0000NN_leftImg8bit.png`` and
  ``gtFine/{train,val}/<city>/..._gtFine_labelTrainIds.png`` (train ids, 255 = ignore), several
  cities, images twice as wide as high (Cityscapes' 1:2);
- ``camvid``: ``images/{train,val}/*.png`` and ``labels/{train,val}/*_L.png`` (class indices,
  255 = void; the SegNet release's layout, as ``configs/_base_/datasets/camvid.py`` reads it);
- ``ade20k``: ``images/{training,validation}/ADE_*_0000NNNN.jpg`` and
  ``annotations/{training,validation}/*.png`` (0 = other, ignored through ``reduce_zero_label``;
  classes from 1).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from raynas.core.errors import InvalidValueError
from raynas.data.synth import SynthSpec, render

__all__ = ["CITIES", "LAYOUTS", "write_layout"]

CITIES = ("aachen", "bremen", "zurich")
Writer = Callable[[Path, str, int, np.ndarray, np.ndarray], None]


def _pair(spec: SynthSpec, split: str, index: int, wide: bool) -> tuple[np.ndarray, np.ndarray]:
    """One image and mask; ``wide``: two renders side by side (1:2, as Cityscapes)."""
    img, seg = render(spec, split, 2 * index if wide else index)
    if wide:
        img2, seg2 = render(spec, split, 2 * index + 1)
        img, seg = np.concatenate([img, img2], axis=1), np.concatenate([seg, seg2], axis=1)
    return img, seg


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array):
        raise OSError(f"could not write {path}")


def _cityscapes(root: Path, split: str, i: int, img: np.ndarray, seg: np.ndarray) -> None:
    city = CITIES[i % len(CITIES)]
    stem = f"{city}_000000_{i:06d}"
    _save(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", img)
    _save(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", seg)


def _camvid(root: Path, split: str, i: int, img: np.ndarray, seg: np.ndarray) -> None:
    _save(root / "images" / split / f"{split}_{i:05d}.png", img)
    _save(root / "labels" / split / f"{split}_{i:05d}_L.png", seg)


def _ade20k(root: Path, split: str, i: int, img: np.ndarray, seg: np.ndarray) -> None:
    folder = {"train": "training", "val": "validation"}[split]
    stem = f"ADE_{split}_{i + 1:08d}"
    _save(root / "images" / folder / f"{stem}.jpg", img)
    _save(root / "annotations" / folder / f"{stem}.png", (seg + 1).astype(np.uint8))


# layout -> (writer, wide images)
LAYOUTS: dict[str, tuple[Writer, bool]] = {
    "cityscapes": (_cityscapes, True),
    "camvid": (_camvid, False),
    "ade20k": (_ade20k, False),
}


def write_layout(layout: str, root: str | os.PathLike, spec: SynthSpec | None = None) -> Path:
    """Writes ``spec.num_train`` / ``spec.num_val`` images in ``layout``'s folders under ``root``
    (default: 30 / 6 images of 64 pixels, 64x128 for Cityscapes).

    Raises:
        InvalidValueError: An unknown layout.
    """
    if layout not in LAYOUTS:
        raise InvalidValueError(f"unknown dataset layout {layout!r}; known: {sorted(LAYOUTS)}")
    writer, wide = LAYOUTS[layout]
    spec = spec or SynthSpec(size=64, num_train=30, num_val=6)
    root = Path(root)
    for split in ("train", "val"):
        for i in range(spec.count(split)):
            img, seg = _pair(spec, split, i, wide)
            writer(root, split, i, img, seg)
    return root
