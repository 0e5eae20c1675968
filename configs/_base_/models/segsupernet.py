# The raynas segmentation supernet: SegSuperNet backbone + SearchableHead in mmseg's
# EncoderDecoder. Search-space fields are documented in raynas/core/seg_space.py; `raynas space
# CONFIG` prints the labels, choices and size of the space a config defines.
norm_cfg = dict(type="BN", requires_grad=True)
data_preprocessor = dict(
    type="SegDataPreProcessor",
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(128, 128),
)
arch_settings = dict(
    stem_channels=(16, 32),
    stage_channels=(64, 96, 128),  # widest stage outputs at 1/8, 1/16, 1/32
    max_depths=(4, 4, 4),
    width_ratios=(0.5, 0.75, 1.0),
    ops=("fr", "ir3", "ir6"),
    dilations=(1, 2, 4, 8),
    zooms=(2, 1),
)
model = dict(
    type="SuperNetEncoderDecoder",  # EncoderDecoder + multi-path steps (distillation)
    data_preprocessor=data_preprocessor,
    # A 1/4-resolution detail branch in the head, searched as `head.detail`: add
    # stem_out=True here and details=(0, 1), detail_channels=32 (stem_channels[-1]) to the head.
    backbone=dict(type="SegSuperNet", arch_settings=arch_settings, out_indices=(0, 1, 2)),
    decode_head=dict(
        type="SearchableHead",
        in_channels=[64, 96, 128],  # = stage_channels at the largest width ratio
        channels=64,
        fusions=("8+16", "8+32", "8+16+32"),
        channel_choices=(32, 48, 64),
        num_classes=8,
        dropout_ratio=0.1,
        align_corners=False,
        loss_decode=dict(
            type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True
        ),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)
