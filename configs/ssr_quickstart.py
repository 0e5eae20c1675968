# The whole pipeline with differentiable search (SSR) instead of NSGA-II, on the embedded
# synthseg dataset, sized for a 2-core CPU (about 6 min; docs/ssr.md):
#   raynas run configs/ssr_quickstart.py
# supernet (uniform, warm start) -> two SSR searches as Tune trials, one per FLOPs target ->
# retrain each search's architecture from its own trial's weights -> report (report/ssr.png:
# alpha entropy, candidates left, the discretisation gap).
_base_ = ["quickstart.py"]
# without the detail branch: its relaxed mixture at 1/4 would take this run past 10 minutes;
# the full dilation and zoom choices of the base space, on which benchmarks/results/ssr-*.md
# and docs/ssr.md's figures were measured (quickstart.py searches a space sized to the input)
model = dict(
    backbone=dict(stem_out=False, arch_settings=dict(dilations=(1, 2, 4, 8), zooms=(2, 1))),
    decode_head=dict(details=()),
)
tune_cfg = dict(
    supernet=dict(iters=800, report_interval=400),
    search=dict(
        type="ssr",
        # the paper's rule: prune the candidates with p_i / max p <= 0.1 at the end of each
        # epoch, depth first, until one is left per row. One of our "epochs" is 12 iterations;
        # the budget is 10 of them against the paper's 200 on Cityscapes, so the rows must move
        # about 20x faster: alpha's Adam lr 0.5 (the paper's 2e-3 over ~500 steps an epoch moves
        # alpha ~1 an epoch, 0.5 x 12 moves it up to 6) and SSR loss weights 10x the paper's
        # ratio to the task loss (3.0 and 1.5 against 0.3 and 0.15). Measured: every row decided
        # by iteration 72-96 of 120 at both targets and 2 seeds, the derived path within 5% of
        # its target (benchmarks/results/ssr-converge.md); a row still undecided at 120 would be
        # derived under the target (the most probable path within 5%), not by argmax
        ssr=dict(
            iters=120,
            shrink_interval=12,
            arch_optimizer=dict(lr=0.5),
            loss_weights=dict(depth=3.0, ops=3.0, widths=1.5, head=1.5),
            cost_weight=10.0,  # (E[FLOPs] / target - 1)^2: 1.0 left the expectation 18% off
            # 2 candidates per row drawn each step: about half the time of all candidates
            # (benchmarks/results/ssr-cost.md), so the search fits the quickstart's budget
            sample_k=2,
        ),
        param_space=dict(ssr=dict(target_flops=dict(grid=[25e6, 50e6]))),  # FLOPs per image
        resources=dict(cpu=1),
        max_concurrent=2,
    ),
    # each search's architecture (one per target) retrained in full: successive halving over
    # them (the quickstart's) would drop one target's model after 750 iterations
    retrain=dict(
        top_k=2,
        iters=1500,
        report_interval=750,
        scheduler=None,
        resources=dict(cpu=1),
        max_concurrent=2,
    ),
)
