# Supernet training with uniform path sampling and the sandwich distiller (raynas/core/distill.py):
# each step trains the largest path on the labels, then the sampled and the smallest path
# distilled from its logits (in-place distillation, BigNAS/OFA); ~3x the time per iteration.
_base_ = ["segsupernet_uniform_1xb8-2k_synthseg-128x128.py"]
custom_hooks = [
    dict(
        type="PathSamplingHook",
        sampler=dict(type="uniform", seed=0),
        distill=dict(type="sandwich"),
    )
]
