# mmseg's BiSeNetV2, slimmed for 128 px synthseg on CPU: the trivial-architecture baseline and
# the foundation's train/checkpoint/resume smoke test.
_base_ = [
    "mmseg::_base_/models/bisenetv2.py",
    "../_base_/datasets/synthseg.py",
    "../_base_/synthseg_runtime.py",
]
custom_imports = dict(imports=["mmseg_plugins"], allow_failed_imports=False)
norm_cfg = dict(type="BN", requires_grad=True)  # SyncBN needs a process group
data_preprocessor = dict(size=(128, 128))
# a list in a child config replaces the base's list, so each auxiliary head is complete here
_aux = [
    dict(
        type="FCNHead",
        in_channels=c,
        channels=c,
        num_convs=1,
        num_classes=8,
        in_index=i,
        norm_cfg=norm_cfg,
        concat_input=False,
        align_corners=False,
        loss_decode=dict(
            type="CrossEntropyLoss", use_sigmoid=False, loss_weight=0.4, avg_non_ignore=True
        ),
    )
    for i, c in ((1, 16), (2, 32), (3, 64), (4, 128))
]
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(
        channels=128,
        num_classes=8,
        norm_cfg=norm_cfg,
        loss_decode=dict(
            type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0, avg_non_ignore=True
        ),
    ),
    auxiliary_head=_aux,
)
optim_wrapper = dict(
    type="OptimWrapper", optimizer=dict(type="SGD", lr=0.05, momentum=0.9, weight_decay=5e-4)
)
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=1000, by_epoch=False)]
train_cfg = dict(type="IterBasedTrainLoop", max_iters=1000, val_interval=500)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
