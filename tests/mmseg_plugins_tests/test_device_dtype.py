"""Every tensor raynas creates takes its device and dtype from its inputs.

Run with ``float64`` on the CPU (catches hard-coded ``float32``) and, where a GPU is present,
on ``cuda`` (``gpu`` marker; skipped here): proxies, a DPS proxy round, BN recalibration, the
search evaluator's path evaluation and PA&DA's pixel weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from mmengine.evaluator import Evaluator
from mmseg.registry import DATASETS
from torch.utils.data import DataLoader

from mmseg_plugins import recalibrate_bn, search_space
from mmseg_plugins.bn_calib import calibration_loader
from mmseg_plugins.importance_sampling import ImportancePixelSampler
from mmseg_plugins.path_eval import evaluate_path
from mmseg_plugins.proxy_evaluator import ProxyEvaluator
from raynas.core.proxies import angle_score, batch_miou, hsic, ms_ib_score
from raynas.export import build_supernet

CONFIG = "supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"
CASES = [
    pytest.param(("cpu", torch.float64), id="cpu-float64"),
    pytest.param(
        ("cuda", torch.float32),
        id="cuda",
        marks=[
            pytest.mark.gpu,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
        ],
    ),
]


@pytest.fixture(params=CASES)
def where(request: pytest.FixtureRequest) -> tuple[str, torch.dtype]:
    return request.param


def _cast_inputs(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """mmseg's SegDataPreProcessor always returns float32 inputs; cast them to the model's."""
    pre = model.data_preprocessor
    forward = pre.forward

    def cast(data: Any, training: bool = False) -> dict:
        out = forward(data, training)
        return {**out, "inputs": out["inputs"].to(dtype)}

    pre.forward = cast


@pytest.fixture
def model_and_data(where, load_cfg) -> Iterator[tuple[Any, Any, Any]]:
    device, dtype = where
    cfg = load_cfg(CONFIG)
    model = build_supernet(cfg).to(device=device, dtype=dtype)
    _cast_inputs(model, dtype)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    val = DATASETS.build(cfg.val_dataloader.dataset)
    yield model, cfg, (train, val)


def test_proxies_follow_their_inputs(where) -> None:
    device, dtype = where
    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(2, 8, 16, 16, generator=gen).to(device, dtype), None]
    inputs = torch.randn(2, 3, 128, 128, generator=gen).to(device, dtype)
    labels = torch.randint(0, 4, (2, 128, 128), generator=gen).to(device)
    score = ms_ib_score(feats, inputs, labels, num_classes=4)
    ref = ms_ib_score([f.cpu().float() if f is not None else None for f in feats],
                      inputs.cpu().float(), labels.cpu(), num_classes=4)  # fmt: skip
    assert score == pytest.approx(ref, abs=1e-4)
    x = feats[0].flatten(1)
    assert hsic(x, x) == pytest.approx(1.0, abs=1e-6)
    logits = torch.randn(2, 4, 32, 32, generator=gen).to(device, dtype)
    assert 0.0 <= batch_miou(logits, labels, 4) <= 100.0
    weights = [torch.ones(3, device=device, dtype=dtype)]
    assert angle_score(weights, [w * 2 for w in weights]) == pytest.approx(0.0, abs=1e-6)


def test_dps_proxy_round(model_and_data, where) -> None:
    model, _, (train, _) = model_and_data
    batch = next(iter(DataLoader(train, batch_size=4, collate_fn=_collate)))
    init = {k: v.clone() for k, v in model.state_dict().items()}
    proxies = ProxyEvaluator(model, batch, init)
    space = search_space(model)
    archs = [space.extreme(True), space.extreme(False)]
    scores = proxies.measure(archs, {"loss", "mIoU", "ib", "angle"})
    for name, values in scores.items():
        assert values.shape == (2,) and all(v == v for v in values), name  # no NaN


def test_recalibration_and_path_evaluation(model_and_data, where) -> None:
    model, cfg, (train, val) = model_and_data
    calib = calibration_loader(train, 4)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert recalibrate_bn(model, calib, 2) == 2
    assert all(m.running_mean.dtype == where[1] for m in bns)
    assert all(m.running_mean.device.type == where[0] for m in bns)
    evaluator = Evaluator(cfg.val_evaluator)
    evaluator.dataset_meta = val.metainfo
    loader = DataLoader(val, batch_size=4, collate_fn=_collate)
    arch = search_space(model).extreme(False)
    metrics = evaluate_path(model, arch, calib, 2, loader, evaluator, len(val))
    assert 0.0 <= metrics["mIoU"] <= 100.0


def test_pada_pixel_weights_follow_the_logits(where) -> None:
    device, dtype = where
    sampler = ImportancePixelSampler(correction=True)
    sampler.image_weights = torch.tensor([0.5, 2.0])
    logits = torch.zeros(2, 4, 8, 8, device=device, dtype=dtype)
    labels = torch.zeros(2, 1, 8, 8, device=device, dtype=torch.long)
    weights = sampler.sample(logits, labels)
    assert weights.dtype == dtype and weights.device.type == device
    assert weights[1].unique().tolist() == [2.0]


def _collate(batch: list) -> dict:
    from mmengine.dataset import pseudo_collate

    return pseudo_collate(batch)
