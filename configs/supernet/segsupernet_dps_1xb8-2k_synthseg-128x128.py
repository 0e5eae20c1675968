# Supernet training with Dynamic Path Selection (our reconstruction, raynas/core/dps.py):
# a 32-path pool scored every 100 iterations by the current stage's proxies on 8 held-out
# images; 8 Pareto/crowding/diversity-selected paths train, plus 10% uniform paths.
_base_ = ["./segsupernet_uniform_1xb8-2k_synthseg-128x128.py"]
dps_sampler = dict(
    type="dps",
    seed=0,
    pool_size=32,
    num_selected=8,
    round_interval=100,
    epsilon=0.1,
    explore=0.25,
    mutation_prob=0.1,
    min_hamming=2,
    tau_threshold=0.8,
    patience=2,
    plateau=None,  # e.g. 3: also move on after 3 rounds without objective improvement
    min_delta=0.0,
    # stage bounds are shares of the run (train_cfg.max_iters), so any run length keeps them
    stages=[
        dict(
            name="convergence", objectives=("angle", "loss_decrease"), min_frac=0.1, max_frac=0.3
        ),
        dict(name="expressiveness", objectives=("predicted",), min_frac=0.1, max_frac=0.3),
        dict(name="balanced", objectives=("predicted", "ib"), min_frac=0.0, max_frac=None),
    ],
)
custom_hooks = [dict(type="PathSamplingHook", sampler=dps_sampler, proxy_images=8, ib_beta=0.5)]
