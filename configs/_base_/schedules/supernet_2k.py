# Supernet schedule for synthseg on CPU: 2k iterations of AdamW (lr 2e-3, wd 1e-4, grad clip
# 5), a 100-iteration linear warm-up, then poly decay to 0. Exported subnets keep it for their
# retraining. experiments/recipes/results/recipes.md compares it with the earlier SGD lr 0.05 default.
# fused / foreach: torch's multi-tensor kernels, which CPUs otherwise skip (one parameter at a
# time; experiments/step_speed/results/step_speed.md), the same update.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4, fused=True),
    clip_grad=dict(max_norm=5.0, foreach=True),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, begin=0, end=100, by_epoch=False),
    dict(type="PolyLR", eta_min=0.0, power=0.9, begin=100, end=2000, by_epoch=False),
]
# mmengine's IterBasedTrainLoop plus the hook point where RNGStateHook restores the RNGs
train_cfg = dict(type="ExactResumeTrainLoop", max_iters=2000, val_interval=500)
# every validation scores the largest and the smallest path, each after BN recalibration
val_cfg = dict(type="PathValLoop", paths=("largest", "smallest"), calib_batches=4)
test_cfg = dict(type="TestLoop")
