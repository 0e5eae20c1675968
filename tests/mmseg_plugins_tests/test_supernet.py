"""The supernet: random paths run, export is exact, FLOPs match mmengine, errors are clear."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmseg_plugins  # noqa: F401  (registers the modules)
from mmseg_plugins.arch import (
    build_subnet,
    path_parameters,
    search_space,
    set_arch,
    subnet_state_dict,
)
from raynas.core.arch_io import dump_arch, load_arch
from raynas.core.complexity import PathComplexity
from raynas.core.space import InvalidArchError

CFG = Path(__file__).resolve().parents[2] / "configs/_base_/models/segsupernet.py"


@pytest.fixture(scope="module")
def model_cfg():
    return Config.fromfile(str(CFG)).model


@pytest.fixture(scope="module")
def supernet(model_cfg):
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    with torch.no_grad():  # non-trivial BN statistics, so that export checks compare them too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model


def _archs(model, n: int, seed: int = 0):
    space = search_space(model)
    rng = np.random.default_rng(seed)
    return [space.extreme(False), space.extreme(True)] + [space.sample(rng) for _ in range(n)]


def test_default_space_is_large(supernet) -> None:
    assert search_space(supernet).size() >= 10**12


@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("seed", range(20))
def test_random_path_forward_backward(supernet, seed: int, size: int) -> None:
    space = search_space(supernet)
    set_arch(supernet, space.sample(np.random.default_rng(seed)))
    supernet.train()
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed))
    logits = supernet._forward(x)
    assert logits.shape == (2, 8, size // 8, size // 8)
    assert torch.isfinite(logits).all()
    supernet.zero_grad()
    logits.square().mean().backward()
    grads = [p.grad for p in supernet.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_set_arch_changes_no_shapes(supernet) -> None:
    before = {k: v.shape for k, v in supernet.state_dict().items()}
    for arch in _archs(supernet, 3):
        set_arch(supernet, arch)
    assert {k: v.shape for k, v in supernet.state_dict().items()} == before


def test_forward_computes_only_the_path(supernet) -> None:
    space = search_space(supernet)
    arch = space.extreme(False)
    set_arch(supernet, arch)
    supernet.train()
    supernet.zero_grad(set_to_none=True)
    supernet._forward(torch.randn(2, 3, 64, 64)).mean().backward()
    used = {k for k, _ in path_parameters(supernet, arch)}
    touched = {k for k, p in supernet.named_parameters() if p.grad is not None}
    assert touched == used  # no inactive branch saw the input


@pytest.mark.parametrize("seed", range(4))
def test_export_equivalence(supernet, model_cfg, seed: int) -> None:
    supernet.eval()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(seed))
    for arch in _archs(supernet, 3, seed)[(seed % 2) :: 2]:
        set_arch(supernet, arch)
        with torch.no_grad():
            ref = supernet._forward(x)
            sub = build_subnet(supernet, arch, model_cfg).eval()
            out = sub._forward(x)
        assert out.shape == ref.shape
        assert (out - ref).abs().max().item() <= 1e-5
        keys = set(sub.state_dict())
        assert keys == set(subnet_state_dict(supernet, arch))
        assert keys <= set(supernet.state_dict())


def test_invalid_archs_name_the_problem(supernet) -> None:
    space = search_space(supernet)
    arch = space.extreme(True)
    with pytest.raises(InvalidArchError, match=r"bad choice 5 for label 'backbone.stage0.depth'"):
        set_arch(supernet, {**arch, "backbone.stage0.depth": 5})
    with pytest.raises(InvalidArchError, match=r"unknown label.*backbone.stage9.depth"):
        set_arch(supernet, {**arch, "backbone.stage9.depth": 1})
    missing = dict(arch)
    del missing["head.fusion"]
    with pytest.raises(InvalidArchError, match=r"missing label.*head\.fusion"):
        set_arch(supernet, missing)
    with pytest.raises(InvalidArchError, match=r"valid choices: \['fr', 'ir3', 'ir6'\]"):
        set_arch(supernet, {**arch, "backbone.stage1.layer0.op": "conv7"})


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_arch_round_trip(supernet, tmp_path: Path, suffix: str) -> None:
    space = search_space(supernet)
    for arch in _archs(supernet, 3):
        path = dump_arch(arch, tmp_path / f"a{suffix}", provenance={"trial": "t1"})
        back = load_arch(path)
        assert back == arch and space.validate(back) == arch


def test_flops_and_params_match_mmengine(supernet, model_cfg) -> None:
    from mmengine.analysis import FlopAnalyzer, parameter_count

    table = PathComplexity.from_model_cfg(model_cfg, (128, 96))
    x = torch.randn(1, 3, 128, 96)
    for arch in _archs(supernet, 4, seed=1):
        sub = build_subnet(supernet, arch, model_cfg).eval()
        analyzer = FlopAnalyzer(sub, (x,))
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        measured = analyzer.total()
        predicted = table(arch)
        assert abs(predicted.flops - measured) / measured < 0.02, (predicted.flops, measured)
        assert predicted.params == parameter_count(sub)[""]
