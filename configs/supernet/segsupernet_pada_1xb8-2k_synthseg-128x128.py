# Supernet training with PA&DA: paths and images sampled by normalised gradient norms,
# mixed with uniform by mix = iter / max_iters, refreshed every 100 iterations (paths) and
# every pass over the data (images).
_base_ = ["./segsupernet_uniform_1xb8-2k_synthseg-128x128.py"]
custom_hooks = [
    dict(
        type="PathSamplingHook",
        sampler=dict(type="pada", seed=0, update_interval=100, floor=0.02),
    ),
    dict(type="DataImportanceHook"),
]
train_dataloader = dict(
    sampler=dict(_delete_=True, type="ImportanceSampler", seed=0)
)  # replaces InfiniteSampler
