# CamVid (11 classes, 360x480 or 720x960). mmseg 1.2.2 ships no CamVid dataset or config, so this
# reuses mmseg's Cityscapes pipelines and reads CamVid with mmseg's BaseSegDataset. Expected layout
# under `data_root` (the usual SegNet release, labels as class-index PNGs with 255 = void):
#   images/{train,val,test}/*.png   labels/{train,val,test}/*_L.png
_base_ = ["mmseg::_base_/datasets/cityscapes.py"]
dataset_type = "BaseSegDataset"
data_root = "data/camvid/"
crop_size = (360, 480)
metainfo = dict(
    classes=(
        "sky",
        "building",
        "pole",
        "road",
        "sidewalk",
        "tree",
        "signsymbol",
        "fence",
        "car",
        "pedestrian",
        "bicyclist",
    ),
    palette=[
        [128, 128, 128],
        [128, 0, 0],
        [192, 192, 128],
        [128, 64, 128],
        [0, 0, 192],
        [128, 128, 0],
        [192, 128, 128],
        [64, 64, 128],
        [64, 0, 128],
        [64, 64, 0],
        [0, 128, 192],
    ],
)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomResize", scale=(960, 720), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PhotoMetricDistortion"),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="Resize", scale=(960, 720), keep_ratio=True),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
_camvid = dict(
    type=dataset_type,
    data_root=data_root,
    metainfo=metainfo,
    img_suffix=".png",
    seg_map_suffix="_L.png",
    reduce_zero_label=False,
)
train_dataloader = dict(
    dataset=dict(
        _camvid,
        data_prefix=dict(img_path="images/train", seg_map_path="labels/train"),
        pipeline=train_pipeline,
    )
)
val_dataloader = dict(
    dataset=dict(
        _camvid,
        data_prefix=dict(img_path="images/val", seg_map_path="labels/val"),
        pipeline=test_pipeline,
    )
)
test_dataloader = val_dataloader
# Everything that selects (supernet validation, DPS proxies, search scores, top-k, the best
# model) reads a split carved from the training images (raynas.config.apply_selection_split:
# stratified, deterministic); the validation set becomes test_dataloader and only reports.
selection_split = dict(fraction=0.1, seed=0)
