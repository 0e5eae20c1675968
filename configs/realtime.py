# The quickstart's pipeline on a space widened to the latency of mmseg's real-time models
# (CGNet, BiSeNetV2: 20-45 ms on one CPU thread at 128x128), about 30 minutes on 2 CPU cores:
#   raynas run configs/realtime.py
# The quickstart's largest path (135 MFLOPs, 8.7 ms) trailed BiSeNetV2 by 4-7 mIoU, retrained
# from the quickstart's 1200-iteration supernet (experiments/ceiling/results/ceiling.md); here stem,
# stages and head are wider, so the space reaches those models' cost, and the search keeps the
# whole range.
_base_ = ["quickstart.py"]
model = dict(
    backbone=dict(
        arch_settings=dict(stem_channels=(24, 48), stage_channels=(96, 160, 256)),
    ),
    decode_head=dict(
        in_channels=[96, 160, 256],  # = stage_channels
        channels=96,
        channel_choices=(48, 72, 96),
        detail_channels=48,  # = stem_channels[-1]
    ),
)
tune_cfg = dict(
    # 7200 iterations, as the quickstart's supernet: at 1200 this wider supernet is underfit
    # (its paths score 19-29 inherited selection mIoU; 49-62 at 3600) and its found models
    # retrain to 74.03 and 70.78 val, below BiSeNetV2; from a 3600-iteration supernet to 76.98
    # and 73.59, from this 7200-iteration one to 79.34-80.85 and 76.63-77.64 (3 seeds;
    # docs/benchmarks.md, "Found models against mmseg's real-time models")
    supernet=dict(iters=7200, report_interval=2400),
    search=dict(constraints=dict(flops=(None, 600e6))),  # below BiSeNetV2's 769 MFLOPs
    # the search's 6 best candidates under successive halving (raynas/tune/halving.py), two at
    # a time, one core each, on the schedule that benchmarks/vs_mmseg.py trains mmseg's models
    # with: all six to 250 iterations, the best 2 to 750, the best of those to 2000 and picked
    # on its selection mIoU; 6x250 + 2x500 + 1x1250 = 3750 iterations, 1.875 full retrains
    # (the top-2 retrained side by side before cost 2)
    retrain=dict(
        top_k=6,
        iters=2000,
        report_interval=250,
        resources=dict(cpu=1),
        max_concurrent=2,
        scheduler=dict(type="successive_halving", eta=3, grace=1),
    ),
)
