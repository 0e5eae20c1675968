# The whole pipeline with differentiable search (SSR) instead of NSGA-II, on the embedded
# synthseg dataset, sized for a 2-core CPU (about 9 min; docs/ssr.md):
#   raynas run configs/ssr_quickstart.py
# supernet (uniform, warm start) -> two SSR searches as Tune trials, one per FLOPs target ->
# retrain each search's architecture from its own trial's weights -> report (report/ssr.png:
# alpha entropy, candidates left, the discretisation gap).
_base_ = ["quickstart.py"]
# without the detail branch: its relaxed mixture at 1/4 would take this run past 10 minutes;
# the full dilation and zoom choices of the base space, on which benchmarks/results/ssr.md and
# docs/ssr.md's figures were measured (quickstart.py searches a space sized to the input)
model = dict(
    backbone=dict(stem_out=False, arch_settings=dict(dilations=(1, 2, 4, 8), zooms=(2, 1))),
    decode_head=dict(details=()),
)
tune_cfg = dict(
    supernet=dict(iters=800, report_interval=400),
    search=dict(
        type="ssr",
        ssr=dict(
            iters=48,  # the budget: a search not decided by then takes the argmax
            shrink_interval=12,
            # alpha's lr: the reference's 2e-3 is for 200 Cityscapes epochs; even at 0.5 most
            # rows are undecided after 48 steps (benchmarks/results/ssr.md): the argmax is used
            arch_optimizer=dict(lr=0.5),
            # 2 candidates per row drawn each step: about half the time of all candidates
            # (benchmarks/results/ssr.md), so the search fits the quickstart's budget
            sample_k=2,
        ),
        param_space=dict(ssr=dict(target_flops=dict(grid=[25e6, 50e6]))),  # FLOPs per image
        resources=dict(cpu=1),
        max_concurrent=2,
    ),
    retrain=dict(iters=1500, report_interval=750, resources=dict(cpu=1), max_concurrent=2),
)
