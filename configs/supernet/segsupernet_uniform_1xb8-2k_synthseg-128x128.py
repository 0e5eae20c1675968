# Supernet training with uniform single-path sampling (SPOS), the baseline strategy.
_base_ = [
    "../_base_/models/segsupernet.py",
    "../_base_/datasets/synthseg.py",
    "../_base_/schedules/supernet_2k.py",
    "../_base_/synthseg_runtime.py",
]
custom_imports = dict(imports=["mmseg_plugins"], allow_failed_imports=False)
custom_hooks = [dict(type="PathSamplingHook", sampler=dict(type="uniform", seed=0))]
