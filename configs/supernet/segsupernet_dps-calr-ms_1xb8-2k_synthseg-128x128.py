# Dynamic Path Selection with subnet-aware training (CaLR + momentum separation): the DPS
# supernet of segsupernet_dps_..., its learning rate set every iteration by CaLR and one
# momentum buffer per operator choice of the first layer of stage 1 (the ranking benchmark's
# "DPS + CaLR" combination).
_base_ = ["./segsupernet_dps_1xb8-2k_synthseg-128x128.py"]
custom_hooks = [
    dict(type="PathSamplingHook", sampler={{_base_.dps_sampler}}, proxy_images=8, ib_beta=0.5),
    dict(type="CaLRHook", gamma_max=4.0, eta_min=0.0, complexity="params"),
    dict(type="MomentumSeparationHook", split_label="backbone.stage1.layer0.op"),
]
param_scheduler = []  # CaLR sets the learning rate of every iteration
# the found subnets retrain, and SSR searches train, on the base schedule
# (raynas.export.drop_supernet_training)
subnet_param_scheduler = {{_base_.param_scheduler}}
