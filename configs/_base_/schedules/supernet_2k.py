# Supernet schedule for synthseg on CPU: 2k iterations, SGD with poly decay.
optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.05, momentum=0.9, weight_decay=4e-5),
    clip_grad=dict(max_norm=5.0),
)
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=2000, by_epoch=False)]
# mmengine's IterBasedTrainLoop plus the hook point where RNGStateHook restores the RNGs
train_cfg = dict(type="ExactResumeTrainLoop", max_iters=2000, val_interval=500)
# every validation scores the largest and the smallest path, each after BN recalibration
val_cfg = dict(type="PathValLoop", paths=("largest", "smallest"), calib_batches=4)
test_cfg = dict(type="TestLoop")
