# A real-time search on Cityscapes (19 classes; 512x1024 crops for training, evaluated on the
# full 1024x2048 images) with mmseg's own CityscapesDataset and pipelines, every phase on GPUs.
# Data: mmseg's layout under data/cityscapes (leftImg8bit/, gtFine/ with *_labelTrainIds.png
# from mmseg's tools/dataset_converters/cityscapes.py); elsewhere set the dataloaders' data_root.
#   raynas check configs/cityscapes/realtime.py      # every pre-run check, nothing trained
#   raynas run configs/cityscapes/realtime.py --address auto --storage s3://BUCKET/runs
# The space (configs/_base_/models/segsupernet_realtime.py): configs/realtime.py's widths, the
# 1/4 detail branch, and every dilation (1, 2, 4, 8) and zoom (1/2, 1) of the base space, which
# a 512x1024 crop has room for. `raynas space configs/cityscapes/realtime.py` prints:
#   45 labels, 1.344e+19 distinct architectures
#   flops at 1024x2048: 3.757e9 (cheapest path) to 43.12e9 (dearest path)
#   params: 152.3e3 (cheapest path) to 5.691e6 (dearest path)
#   note: at the 512x1024 input, these dilations reach past the feature map [...]:
#     stage2 at 1/64 (8x8 maps, zoomed): dilation(s) [8]
# FLOPs are counted at the evaluation resolution (cost_input_size, 1024x2048). mmseg's BiSeNetV2
# counts 98.5e9 there by the same count (769.4e6 at 128x128, benchmarks/results/vs_mmseg.md,
# times 128), so the 30e9 constraint below asks for under a third of its cost.
_base_ = [
    "../_base_/models/segsupernet_realtime.py",
    "../_base_/datasets/cityscapes.py",
    "../_base_/schedules/supernet_2k.py",
    "../_base_/synthseg_runtime.py",
]
custom_imports = dict(imports=["mmseg_plugins"], allow_failed_imports=False)
crop_size = (512, 1024)
cost_input_size = (1024, 2048)
model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=19))
# GPU data loading: 8 crops per GPU, decoded by 4 worker processes (CPUs per GPU trial below)
train_dataloader = dict(batch_size=8, num_workers=4, persistent_workers=True)
val_dataloader = dict(batch_size=1, num_workers=2, persistent_workers=True)
test_dataloader = val_dataloader
custom_hooks = [dict(type="PathSamplingHook", sampler=dict(type="uniform", seed=0))]
default_hooks = dict(logger=dict(interval=50))
tune_cfg = dict(
    supernet=dict(
        iters=40000,
        report_interval=4000,
        resources=dict(cpu=8, gpu=1),
    ),
    search=dict(
        num_candidates=96,
        eval_images=100,
        calib_batches=8,
        constraints=dict(flops=(None, 30e9)),  # at 1024x2048
        resources=dict(cpu=4, gpu=0.5),
        max_concurrent=4,
    ),
    retrain=dict(
        top_k=2,
        iters=40000,
        report_interval=4000,
        resources=dict(cpu=8, gpu=1),
        max_concurrent=2,
    ),
)
