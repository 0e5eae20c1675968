# Population Based Training of the quickstart's supernet with Dynamic Path Selection: four
# supernet trials, each starting at another learning rate; every 600 iterations (one report)
# the worse half continues from a better trial's checkpoint with a perturbed learning rate and
# DPS exploration settings, which are in force from there on (LRFromConfigHook puts the new lr
# into the resumed schedule; DPS reads its settings from the config, its pool and scores from
# the checkpoint). The best trial's supernet goes on to the search.
#   raynas run configs/pbt.py          (about 4x the quickstart's supernet phase on 2 cores)
_base_ = ["quickstart.py"]
custom_hooks = [
    dict(type="PathSamplingHook", proxy_images=8, ib_beta=0.5,
         sampler=dict(type="dps", seed=0, pool_size=32, num_selected=8, round_interval=100,
                      epsilon=0.1, explore=0.25)),
]  # fmt: skip
LR = "optim_wrapper.optimizer.lr"
tune_cfg = dict(
    supernet=dict(
        iters=2400,
        report_interval=600,
        param_space=dict(cfg_options={LR: dict(grid=[1e-3, 2e-3, 4e-3, 8e-3])}),
        scheduler=dict(
            type="pbt",
            perturbation_interval=1,  # reports
            quantile_fraction=0.5,
            hyperparam_mutations=dict(
                cfg_options={
                    LR: [1e-3, 2e-3, 4e-3, 8e-3],
                    "custom_hooks.0.sampler.epsilon": [0.05, 0.1, 0.2],
                    "custom_hooks.0.sampler.explore": [0.1, 0.25, 0.5],
                }
            ),
        ),
        resources=dict(cpu=1, threads=1),
        max_concurrent=2,
    ),
)
