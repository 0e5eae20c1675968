# Runtime shared by every synthseg config: mmseg's default runtime on CPU-friendly settings.
_base_ = ["mmseg::_base_/default_runtime.py"]
default_hooks = dict(
    logger=dict(type="LoggerHook", interval=10, log_metric_by_epoch=False),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=500, max_keep_ckpts=2),
    # global RNG states in checkpoints, so a resume continues exactly (with
    # ExactResumeTrainLoop); needs custom_imports=['mmseg_plugins']
    rng_state=dict(type="RNGStateHook"),
)
log_processor = dict(by_epoch=False)
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend="gloo"))
randomness = dict(seed=0)  # reproducible runs; a resumed run continues the same streams
