# Supernet training with uniform path sampling and the cream distiller (raynas/core/distill.py):
# a board of the best paths seen on training batches; after 20% of the run each sampled path
# is distilled from the board path closest to it (Cream of the Crop); ~1.3x the time per iteration.
_base_ = ["segsupernet_uniform_1xb8-2k_synthseg-128x128.py"]
custom_hooks = [
    dict(type="PathSamplingHook", sampler=dict(type="uniform", seed=0), distill=dict(type="cream"))
]
