"""The head's 1/4 detail branch (``head.detail``): a searched label whose paths export exactly,
count their FLOPs right in every cost model, mix in SSR's relaxed forward, and refuse a
backbone without the stem's output by name."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmseg_plugins  # noqa: F401  (registers the modules)
from mmseg_plugins.arch import (
    build_subnet,
    complexity_table,
    search_space,
    set_arch,
    set_relaxed,
    subnet_state_dict,
)
from mmseg_plugins.latency import LatencyTable
from raynas.core.complexity import PathComplexity
from raynas.core.errors import InvalidValueError
from raynas.core.seg_space import BackboneSettings, HeadSettings, build_space
from raynas.core.ssr import ArchWeights
from raynas.core.ssr_cost import expected_flops

CFG = Path(__file__).resolve().parents[2] / "configs/_base_/models/segsupernet.py"


def _detail_cfg(details=(0, 1)):
    model = copy.deepcopy(Config.fromfile(str(CFG)).model)
    model.backbone.stem_out = True
    model.decode_head.update(details=details, detail_channels=32)
    return model


@pytest.fixture(scope="module")
def model_cfg():
    return _detail_cfg()


@pytest.fixture(scope="module")
def supernet(model_cfg):
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(model_cfg).double()
    with torch.no_grad():  # non-trivial BN statistics, so that exports compare them too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    model.decode_head.dropout = None  # deterministic in train mode
    return model


def _archs(supernet, n: int = 1):
    space = search_space(supernet)
    rng = np.random.default_rng(0)
    archs = [space.extreme(False), space.extreme(True)]
    archs += [space.canonical(space.sample(rng)) for _ in range(n)]
    return [{**a, "head.detail": d} for a in archs for d in (0, 1)]


def test_detail_is_a_searched_label_and_refines_at_a_quarter(supernet) -> None:
    space = search_space(supernet)
    assert space.choices["head.detail"] == (0, 1)
    assert space.extreme(True)["head.detail"] == 1 and space.extreme(False)["head.detail"] == 0
    x = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    for detail, side in ((0, 4), (1, 8)):
        set_arch(supernet, {**space.extreme(True), "head.detail": detail})
        assert supernet.eval()._forward(x).shape[-1] == side  # logits at 1/8, or 1/4
    plain = HeadSettings.from_cfg(Config.fromfile(str(CFG)).model.decode_head)
    assert "head.detail" not in build_space(BackboneSettings(), plain).choices  # default: none


def test_detail_paths_export_exactly_and_count_their_flops(supernet, model_cfg) -> None:
    from mmengine.analysis import FlopAnalyzer

    supernet.eval()
    table = PathComplexity.from_model_cfg(model_cfg, (32, 32))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for arch in _archs(supernet):
        set_arch(supernet, arch)
        with torch.no_grad():
            ref = supernet._forward(x)
            sub = build_subnet(supernet, arch, model_cfg).eval()
            out = sub._forward(x)
        assert set(sub.state_dict()) == set(subnet_state_dict(supernet, arch))
        assert any("detail" in k for k in sub.state_dict()) == bool(arch["head.detail"])
        assert out.shape == ref.shape and (out - ref).abs().max() <= 1e-10
        counter = FlopAnalyzer(sub.float(), (x[:1].float(),))
        measured = counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()
        assert table(arch).flops == measured


@pytest.mark.parametrize("train", [False, True])
def test_one_hot_relaxed_detail_equals_the_single_path(supernet, train: bool) -> None:
    supernet.train(train)
    space, table = search_space(supernet), complexity_table(supernet, (32, 32))
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    for arch in _archs(supernet):
        arch = set_arch(supernet, arch)
        single = supernet.decode_head(supernet.backbone(x))
        weights = ArchWeights(space).double()
        weights.onehot_(arch)
        set_relaxed(supernet, weights)
        relaxed = supernet.decode_head(supernet.backbone(x))
        set_relaxed(supernet, None)
        assert torch.allclose(relaxed, single, atol=1e-8), (relaxed - single).abs().max()
        expected = float(expected_flops(weights.p, space.choices, table))
        assert expected == pytest.approx(table(arch).flops, rel=1e-9)


def test_mixed_detail_gets_gradient_and_costs_in_between(supernet) -> None:
    supernet.train()
    space, table = search_space(supernet), complexity_table(supernet, (32, 32))
    arch = space.extreme(False)
    weights = ArchWeights(space).double()
    weights.onehot_(arch)
    with torch.no_grad():
        weights.mask("head.detail").fill_(True)  # one path, with and without the branch
    set_relaxed(supernet, weights)
    try:
        logits = supernet.decode_head(supernet.backbone(torch.randn(2, 3, 32, 32).double()))
    finally:
        set_relaxed(supernet, None)
    assert logits.shape[-1] == 8  # a mixture of both is at 1/4
    logits.square().mean().backward()
    assert weights.alpha["head__detail"].grad.abs().sum() > 0
    costs = [table({**arch, "head.detail": d}).flops for d in (0, 1)]
    expected = float(expected_flops(weights.p, space.choices, table))
    assert expected == pytest.approx(sum(costs) / 2, rel=1e-9)  # p = (0.5, 0.5)


def test_latency_table_keys_the_detail_branch(supernet) -> None:
    lut = LatencyTable(supernet.backbone.settings, (64, 64), runs=1)
    arch = search_space(supernet).extreme(False)
    keys = {lut.fixed_key({**arch, "head.detail": d}) for d in (0, 1)}
    assert len(keys) == 2 and any(k.endswith("/detail") for k in keys)


def test_a_detail_head_without_the_stem_output_is_refused(model_cfg) -> None:
    from mmseg.registry import MODELS

    bad = copy.deepcopy(model_cfg)
    bad.backbone.stem_out = False
    with pytest.raises(ValueError, match=r"details needs model.backbone.stem_out=True"):
        MODELS.build(bad)
    bad.type = "EncoderDecoder"  # plain mmseg: refused at the first forward
    model = MODELS.build(bad)
    set_arch(model, search_space(model).extreme(True))
    with pytest.raises(ValueError, match="stem_out=True"):
        model.eval()._forward(torch.randn(1, 3, 32, 32))
    bad = copy.deepcopy(model_cfg)
    bad.decode_head.detail_channels = 16
    with pytest.raises(ValueError, match=r"detail_channels=16 differs .* set it to 32"):
        MODELS.build(bad)
    bad = copy.deepcopy(model_cfg)
    del bad.decode_head["detail_channels"]
    with pytest.raises(ValueError, match="detail_channels"):
        MODELS.build(bad)
    with pytest.raises(InvalidValueError, match=r"decode_head.details=\[2\]"):
        HeadSettings(details=(2,))
