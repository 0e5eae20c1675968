# synthseg: the embedded procedural dataset (raynas/data/synth.py). When `data_root` holds no
# dataset, SynthSegDataset generates it there from `synth` (about 15 s for the default size).
dataset_type = "SynthSegDataset"
data_root = "data/synthseg"
synth = dict(seed=0, size=128, num_train=2000, num_val=300)
crop_size = (128, 128)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,  # 128 px PNGs decode faster than worker processes start on 2 cores
    sampler=dict(type="InfiniteSampler", shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        synth=synth,
        data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        synth=synth,
        data_prefix=dict(img_path="img_dir/val", seg_map_path="ann_dir/val"),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])
test_evaluator = val_evaluator
# Everything that selects (supernet validation, DPS proxies, search scores, top-k, the best
# model) reads a split carved from the training images (raynas.config.apply_selection_split:
# stratified, deterministic); the validation set becomes test_dataloader and only reports.
selection_split = dict(fraction=0.1, seed=0)
