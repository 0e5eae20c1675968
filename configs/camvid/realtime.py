# A real-time search on CamVid (11 classes; the SegNet release: 367 train / 101 val / 233 test
# images of 360x480, class-index label PNGs with 255 = void), read with mmseg's BaseSegDataset
# (configs/_base_/datasets/camvid.py: images/{train,val}/*.png, labels/{train,val}/*_L.png under
# data/camvid), trained on 360x480 crops of images rescaled around 720x960 and evaluated at
# 720x960, every phase on GPUs:
#   raynas check configs/camvid/realtime.py
#   raynas run configs/camvid/realtime.py --address auto --storage s3://BUCKET/runs
# `raynas space configs/camvid/realtime.py` prints:
#   45 labels, 1.344e+19 distinct architectures
#   flops at 720x960: 1.235e9 (cheapest path) to 14.23e9 (dearest path)
#   params: 151.9e3 (cheapest path) to 5.69e6 (dearest path)
#   note: at the 360x480 input, these dilations reach past the feature map [...]:
#     stage2 at 1/64 (5x5 maps, zoomed): dilation(s) [8]
_base_ = [
    "../_base_/models/segsupernet_realtime.py",
    "../_base_/datasets/camvid.py",
    "../_base_/schedules/supernet_2k.py",
    "../_base_/synthseg_runtime.py",
]
custom_imports = dict(imports=["mmseg_plugins"], allow_failed_imports=False)
crop_size = (360, 480)
cost_input_size = (720, 960)
model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=11))
train_dataloader = dict(batch_size=8, num_workers=4, persistent_workers=True)
val_dataloader = dict(batch_size=1, num_workers=2, persistent_workers=True)
test_dataloader = val_dataloader
custom_hooks = [dict(type="PathSamplingHook", sampler=dict(type="uniform", seed=0))]
default_hooks = dict(logger=dict(interval=50))
tune_cfg = dict(
    supernet=dict(iters=20000, report_interval=2000, resources=dict(cpu=8, gpu=1)),
    search=dict(
        num_candidates=96,
        eval_images=None,  # the selection split is small (37 images)
        calib_batches=8,
        constraints=dict(flops=(None, 8e9)),  # at 720x960
        resources=dict(cpu=4, gpu=0.5),
        max_concurrent=4,
    ),
    retrain=dict(
        top_k=2, iters=20000, report_interval=2000, resources=dict(cpu=8, gpu=1), max_concurrent=2
    ),
)
