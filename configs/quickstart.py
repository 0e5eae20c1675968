# The whole pipeline on the embedded synthseg dataset, sized for a 2-core CPU (about 40 min):
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
    # 2 CPUs reserved; torch's threads measured at the start (resources.threads='auto').
    # 7200 iterations: after 3600 the search's candidates scored 35-51 inherited mIoU and seeds
    # 0-4 delivered 74.06-76.14 val mIoU (spread 2.08); after 7200, 64.7-69.7 and 76.74-78.25
    # (mean 77.60, spread 1.51; docs/benchmarks.md, "Picks across seeds"), at about 9 more
    # minutes. Shorter supernets hand the search scores that cannot tell its best apart.
    supernet=dict(iters=7200, report_interval=600, resources=dict(cpu=2)),
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
    # the search's 6 best candidates under successive halving, two at a time, one core each:
    # all six to 250 iterations, the best 2 to 750, the best of those to 6000, picked on its
    # selection mIoU (6x250 + 2x500 + 1x5250 = 7750 iterations, 1.29 full retrains).
    # 6000 iterations: with 4000 the picks still gained 0.5-1.3 selection mIoU over their last
    # 1000 and seeds 0-4 delivered 76.74-78.25 val mIoU (spread 1.51); with 6000, 77.56-79.02
    # (6 runs; docs/benchmarks.md, "Picks across seeds"); the last trial's 2000 more
    # iterations cost 5-7 minutes. Kept past the 10 minutes it was to be dropped at: the first
    # alone trains as long on one core.
    retrain=dict(
        top_k=6,
        iters=6000,  # AdamW from inherited weights (experiments/recipes/results/recipes.md)
        report_interval=250,
        init="inherit",
        scheduler=dict(type="successive_halving", eta=3, grace=1),
        resources=dict(cpu=1),
        max_concurrent=2,
    ),
)
