# A real-time search on ADE20K (150 classes; mmseg's ADE20KDataset layout under
# data/ade/ADEChallengeData2016: images/{training,validation}/*.jpg and
# annotations/{training,validation}/*.png, label 0 = "other", ignored through reduce_zero_label),
# trained on 512x512 crops and evaluated with the short side at 512, every phase on GPUs:
#   raynas check configs/ade20k/realtime.py
#   raynas run configs/ade20k/realtime.py --address auto --storage s3://BUCKET/runs
# `raynas space configs/ade20k/realtime.py` prints:
#   45 labels, 1.344e+19 distinct architectures
#   flops at 512x512: 495.4e6 (cheapest path) to 5.596e9 (dearest path)
#   params: 158.7e3 (cheapest path) to 5.704e6 (dearest path)
#   note: at the 512x512 input, these dilations reach past the feature map [...]:
#     stage2 at 1/64 (8x8 maps, zoomed): dilation(s) [8]
_base_ = [
    "../_base_/models/segsupernet_realtime.py",
    "mmseg::_base_/datasets/ade20k.py",
    "../_base_/schedules/supernet_2k.py",
    "../_base_/synthseg_runtime.py",
]
custom_imports = dict(imports=["mmseg_plugins"], allow_failed_imports=False)
crop_size = (512, 512)
cost_input_size = (512, 512)
model = dict(data_preprocessor=dict(size=crop_size), decode_head=dict(num_classes=150))
train_dataloader = dict(batch_size=16, num_workers=4, persistent_workers=True)
val_dataloader = dict(batch_size=1, num_workers=2, persistent_workers=True)
test_dataloader = val_dataloader
# Everything that selects reads a split carved from the training images; val only reports
selection_split = dict(fraction=0.05, seed=0)
custom_hooks = [dict(type="PathSamplingHook", sampler=dict(type="uniform", seed=0))]
default_hooks = dict(logger=dict(interval=50))
tune_cfg = dict(
    supernet=dict(iters=80000, report_interval=8000, resources=dict(cpu=8, gpu=1)),
    search=dict(
        num_candidates=96,
        eval_images=500,
        calib_batches=8,
        constraints=dict(flops=(None, 3e9)),  # at 512x512
        resources=dict(cpu=4, gpu=0.5),
        max_concurrent=4,
    ),
    retrain=dict(
        top_k=2, iters=80000, report_interval=8000, resources=dict(cpu=8, gpu=1), max_concurrent=2
    ),
)
