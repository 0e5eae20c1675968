"""The embedded dataset: deterministic bytes, mmseg layout, classes and palette."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from raynas.data.synth import (
    CLASSES,
    PALETTE,
    SynthSpec,
    ensure_synth_dataset,
    generate,
    read_spec,
)

SPEC = SynthSpec(seed=3, size=64, num_train=12, num_val=4)


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*.png"))
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    a = _digest(generate(tmp_path / "a", SPEC))
    b = _digest(generate(tmp_path / "b", SPEC))
    c = _digest(generate(tmp_path / "c", SynthSpec(4, 64, 12, 4)))
    assert len(a) == 2 * (12 + 4)
    assert a == b
    assert a != c


def test_layout_classes_and_content(tmp_path: Path) -> None:
    import cv2

    root = generate(tmp_path / "d", SynthSpec(seed=0, size=96, num_train=40, num_val=4))
    assert sorted(p.name for p in (root / "img_dir").iterdir()) == ["train", "val"]
    labels = np.stack(
        [
            cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            for p in sorted((root / "ann_dir" / "train").glob("*.png"))
        ]
    )
    assert labels.shape == (40, 96, 96) and labels.dtype == np.uint8
    counts = np.bincount(labels.ravel(), minlength=len(CLASSES))
    assert len(counts) == len(CLASSES) and (counts > 0).all()  # every class occurs
    assert 0.5 < counts[0] / counts.sum() < 0.95  # background dominates, objects are not rare


def test_loads_in_mmseg_base_seg_dataset(tmp_path: Path) -> None:
    from mmengine.registry import init_default_scope
    from mmseg.datasets import BaseSegDataset

    init_default_scope("mmseg")
    root = generate(tmp_path / "e", SPEC)
    ds = BaseSegDataset(
        data_root=str(root),
        data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
        img_suffix=".png",
        seg_map_suffix=".png",
        metainfo=dict(classes=CLASSES, palette=PALETTE),
        pipeline=[dict(type="LoadImageFromFile"), dict(type="LoadAnnotations")],
    )
    assert len(ds) == 4
    assert ds.metainfo["classes"] == CLASSES
    assert [list(c) for c in ds.metainfo["palette"]] == PALETTE
    item = ds[0]
    assert item["img"].shape == (64, 64, 3)
    assert item["gt_seg_map"].max() < len(CLASSES)


def test_synthseg_dataset_generates_when_missing(tmp_path: Path) -> None:
    from mmseg.registry import DATASETS

    import mmseg_plugins  # noqa: F401

    root = tmp_path / "auto"
    ds = DATASETS.build(
        dict(
            type="SynthSegDataset",
            data_root=str(root),
            synth=dict(seed=3, size=64, num_train=12, num_val=4),
            data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"),
            pipeline=[],
        )
    )
    assert len(ds) == 12 and read_spec(root) == SPEC
    assert ds.metainfo["classes"] == CLASSES
    with pytest.raises(ValueError, match=r"generated with"):
        ensure_synth_dataset(root, SynthSpec(seed=9, size=64, num_train=12, num_val=4))


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    generate(tmp_path / "f", SPEC)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate(tmp_path / "f", SPEC)
