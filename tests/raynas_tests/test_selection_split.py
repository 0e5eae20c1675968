"""The selection split: carved from the training set, stratified, deterministic, disjoint."""

from __future__ import annotations

from pathlib import Path

import pytest

from raynas.config import apply_selection_split, dataset_files, load_config
from raynas.core.errors import InvalidValueError, MissingInputError
from raynas.data.split import class_presence, stratified_selection

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


def test_stratified_selection_covers_every_class_and_is_deterministic() -> None:
    presence = [{0}] * 50 + [{0, 7}] + [{0, 3}] * 5 + [{0, 5}] * 44
    picked = stratified_selection(presence, 0.1, seed=0)
    assert len(picked) == 10 and picked == sorted(set(picked))
    assert set().union(*(presence[i] for i in picked)) == {0, 3, 5, 7}  # 7 is in one image
    assert picked == stratified_selection(presence, 0.1, seed=0)
    assert picked != stratified_selection(presence, 0.1, seed=1)
    with pytest.raises(InvalidValueError, match="fraction"):
        stratified_selection(presence, 0.9)


def test_applied_split_reads_training_images_only(small_options: dict) -> None:
    cfg = load_config(CONFIG, small_options)
    val_before = cfg.val_dataloader.dataset.copy()
    apply_selection_split(cfg)
    selection = cfg.val_dataloader.dataset
    train = cfg.train_dataloader.dataset
    images, masks = dataset_files(train)
    assert selection.data_prefix == train.data_prefix  # the training folder, not val
    assert "val" not in selection.data_prefix.img_path
    assert set(selection.indices).isdisjoint(train.indices)
    assert sorted(selection.indices + train.indices) == list(range(len(images)))
    assert cfg.selection_split.num_selection == round(0.1 * len(images))
    assert cfg.test_dataloader.dataset.data_prefix == val_before.data_prefix  # val reports
    present = set().union(*class_presence(masks))
    picked = class_presence([masks[i] for i in selection.indices])
    assert set().union(*picked) == present
    again = load_config(CONFIG, small_options)
    apply_selection_split(again)
    assert again.val_dataloader.dataset.indices == selection.indices
    apply_selection_split(cfg)  # applied once
    assert cfg.val_dataloader.dataset.indices == selection.indices


def test_split_datasets_build_with_mmseg(small_options: dict) -> None:
    from mmseg.registry import DATASETS

    cfg = load_config(CONFIG, small_options)
    apply_selection_split(cfg)
    selection = DATASETS.build(cfg.val_dataloader.dataset)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    sel_paths = {selection.get_data_info(i)["img_path"] for i in range(len(selection))}
    train_paths = {train.get_data_info(i)["img_path"] for i in range(len(train))}
    assert len(sel_paths) == cfg.selection_split.num_selection and sel_paths.isdisjoint(
        train_paths
    )
    assert all("/img_dir/train/" in p for p in sel_paths)


def test_empty_training_folder_names_the_folder_and_the_key(tmp_path: Path) -> None:
    cfg = load_config(CONFIG, {"train_dataloader.dataset.data_root": str(tmp_path)})
    with pytest.raises(MissingInputError, match=r"0 training images in .*data_root") as err:
        apply_selection_split(cfg)
    assert str(tmp_path) in str(err.value)


def test_every_group_gives_an_image_first() -> None:
    presence = [{0}] * 30
    groups = ["aachen"] * 20 + ["bremen"] * 7 + ["zurich"] * 3
    chosen = stratified_selection(presence, 0.1, seed=0, groups=groups)
    assert len(chosen) == 3 and {groups[i] for i in chosen} == {"aachen", "bremen", "zurich"}
    assert chosen == stratified_selection(presence, 0.1, seed=0, groups=groups)  # deterministic
    # one group (a flat folder) draws exactly as without groups: earlier splits stay the same
    flat = stratified_selection(presence, 0.1, seed=0)
    assert stratified_selection(presence, 0.1, seed=0, groups=["."] * 30) == flat
