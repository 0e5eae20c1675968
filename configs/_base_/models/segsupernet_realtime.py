# The real-time search space of the real-dataset configs (configs/{cityscapes,camvid,ade20k}/):
# configs/realtime.py's widths (stem 24/48, stages 96/160/256, head up to 96 channels) with the
# head's 1/4 detail branch searched, and every dilation (1, 2, 4, 8) and zoom (1/2, 1) of the
# base space, which real-resolution crops have room for. Set num_classes and the input size.
_base_ = ["segsupernet.py"]
model = dict(
    backbone=dict(
        stem_out=True,
        arch_settings=dict(stem_channels=(24, 48), stage_channels=(96, 160, 256)),
    ),
    decode_head=dict(
        in_channels=[96, 160, 256],  # = stage_channels
        channels=96,
        channel_choices=(48, 72, 96),
        details=(0, 1),
        detail_channels=48,  # = stem_channels[-1]
    ),
)
