# Cityscapes through mmseg's own dataset config. Not downloaded by raynas: prepare it with
# mmseg's tools/dataset_converters/cityscapes.py and point `data_root` at the folder that holds
# leftImg8bit/ and gtFine/ (override with --cfg-options data_root=... in every dataloader).
_base_ = ["mmseg::_base_/datasets/cityscapes.py"]
data_root = "data/cityscapes/"
train_dataloader = dict(dataset=dict(data_root=data_root))
val_dataloader = dict(dataset=dict(data_root=data_root))
test_dataloader = val_dataloader
# Everything that selects (supernet validation, DPS proxies, search scores, top-k, the best
# model) reads a split carved from the training images (raynas.config.apply_selection_split:
# stratified, deterministic); the validation set becomes test_dataloader and only reports.
selection_split = dict(fraction=0.1, seed=0)
