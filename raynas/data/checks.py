"""Checks that a segmentation dataset folder is usable before hours of training start."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from raynas.core.errors import InvalidValueError, MissingInputError

__all__ = ["check_seg_folder"]


def check_seg_folder(
    where: str,
    img_dir: str | os.PathLike,
    ann_dir: str | os.PathLike,
    num_classes: int,
    suffixes: tuple[str, str] = (".png", ".png"),
    ignore_index: int = 255,
    sample: int = 8,
) -> int:
    """Checks an image folder and its mask folder; returns the number of images.

    Every image needs a mask of the same size; the masks of the first ``sample`` images may
    hold only labels below ``num_classes`` or ``ignore_index``.

    Args:
        where: The config key of the dataset, for messages.
        img_dir: Folder of images.
        ann_dir: Folder of masks.
        num_classes: Classes of the model's head.
        suffixes: Image and mask file suffixes.
        ignore_index: The label that the loss ignores.
        sample: How many image/mask pairs to open.

    Raises:
        MissingInputError: A folder or a mask is missing, or there are no images.
        InvalidValueError: A mask with labels >= num_classes, or of another size.
    """
    img_dir, ann_dir = Path(img_dir), Path(ann_dir)
    for folder in (img_dir, ann_dir):
        if not folder.is_dir():
            raise MissingInputError(
                f"dataset not found: {where} has no folder {folder}; download and convert "
                "the dataset (see configs/_base_/datasets/) or set data_root"
            )
    images = sorted(p for p in img_dir.rglob(f"*{suffixes[0]}") if p.is_file())
    if not images:
        raise MissingInputError(f"{where}: {img_dir} holds no {suffixes[0]} image")
    for image in images[:sample]:
        _check_pair(
            where, image, ann_dir / image.relative_to(img_dir), suffixes, num_classes, ignore_index
        )
    return len(images)


def _check_pair(
    where: str,
    image: Path,
    mask_stem: Path,
    suffixes: tuple[str, str],
    num_classes: int,
    ignore_index: int,
) -> None:
    mask = mask_stem.with_name(mask_stem.name[: -len(suffixes[0])] + suffixes[1])
    if not mask.is_file():
        raise MissingInputError(f"{where}: image {image} has no mask {mask}")
    with Image.open(image) as img, Image.open(mask) as seg:
        if img.size != seg.size:
            raise InvalidValueError(
                f"{where}: image {image} is {img.size[0]}x{img.size[1]} but its mask {mask} is "
                f"{seg.size[0]}x{seg.size[1]}; masks must match their images pixel for pixel"
            )
        labels = np.unique(np.asarray(seg))
    bad = [int(v) for v in labels if v >= num_classes and v != ignore_index]
    if bad:
        raise InvalidValueError(
            f"{where}: mask {mask} holds label(s) {bad}, but the model has num_classes="
            f"{num_classes} (labels 0..{num_classes - 1}, {ignore_index} = ignore); fix the "
            "masks or set model.decode_head.num_classes"
        )
