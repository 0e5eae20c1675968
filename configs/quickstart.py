# The whole pipeline on the embedded synthseg dataset, sized for a 2-core CPU laptop (5-15 min):
#   raynas run configs/quickstart.py
# supernet (uniform path sampling) -> NSGA-II search with inherited weights -> retrain the best
# subnet -> report (runs/quickstart/report/, best model in runs/quickstart/best/).
_base_ = ["supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"]
# the space sized to the 128-pixel input: dilation 1 or 2 (larger ones reach past the 16x16 and
# smaller feature maps) and every layer at its stage's resolution (no zoom), which trains a
# better supernet (experiments/sharing/results/sharing.md); plus the head's 1/4 detail branch, searched
# (head.detail; experiments/ceiling/results/ceiling.md)
model = dict(
    backbone=dict(stem_out=True, arch_settings=dict(dilations=(1, 2), zooms=(1,))),
    decode_head=dict(details=(0, 1), detail_channels=32),
)
tune_cfg = dict(
    # 2 CPUs reserved; torch's threads measured at the start (resources.threads='auto')
    supernet=dict(iters=1200, report_interval=600, resources=dict(cpu=2)),
    search=dict(
        num_candidates=24,
        eval_images=100,
        calib_batches=3,
        searcher=dict(type="nsga2", population_size=8, seed=0),
        constraints=dict(flops=(None, 80e6)),  # MFLOPs budget per 128x128 image
        # tse=dict(candidates=6, iters=200, schedule="poly", score="mIoU") re-ranks the best 6
        # by a short fine-tune's selection mIoU (about +2 min; docs/benchmarks.md, "The fine-tune re-ranking")
        resources=dict(cpu=1),
        max_concurrent=2,
    ),
    # the search's 3 best candidates under successive halving, two at a time, one core each:
    # all three to 750 iterations, the best of them on to 2000, picked on its selection mIoU
    # (3x750 + 1x1250 = 3500 iterations, 1.75 full retrains). Judged against full retrains of
    # the search's top 12 (benchmarks/results/ranking-quickstart.md), a first rung at 250
    # iterations over the best 6 is noise here (2.22 mIoU below the best of 12); this one picked
    # within 0.25 (docs/pipeline.md). Seeds 0-4: benchmarks/results/seeds-quickstart.md
    retrain=dict(
        top_k=3,
        iters=2000,  # AdamW from inherited weights (experiments/recipes/results/recipes.md)
        report_interval=250,
        init="inherit",
        scheduler=dict(type="successive_halving", eta=3, grace=3),
        resources=dict(cpu=1),
        max_concurrent=2,
    ),
)
