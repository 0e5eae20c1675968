"""SSR on the supernet: the relaxed forward over the supernet's weights, and the search
through the real mmengine Runner (alpha steps on the selection split, shrinking, an exact
resume, bad configs refused)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from _hooks import StopAt
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmseg_plugins import search_space, set_arch
from mmseg_plugins.arch import complexity_table, set_relaxed
from mmseg_plugins.hooks.ssr import SSRHook
from mmseg_plugins.models.elastic import ElasticConv2d
from raynas.config import apply_selection_split
from raynas.core.errors import InvalidValueError, UnknownKeyError
from raynas.core.ssr import ArchWeights, SampledWeights
from raynas.export import build_supernet

pytestmark = pytest.mark.integration  # trains with the Runner for seconds to a minute

CONFIG = "supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


@pytest.fixture(scope="module")
def supernet(make_cfg, tmp_path_factory):
    cfg = make_cfg(CONFIG, tmp_path_factory.mktemp("relaxed"))
    torch.manual_seed(0)
    return build_supernet(cfg).double()


def _logits(model, x):
    return model.decode_head(model.backbone(x))


@pytest.mark.parametrize("train", [False, True])
def test_one_hot_relaxed_forward_equals_the_single_path(supernet, train: bool) -> None:
    supernet.train(train)
    supernet.decode_head.dropout = None  # deterministic in train mode
    space = search_space(supernet)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    for seed in range(4):
        arch = space.canonical(space.sample(np.random.default_rng(seed)))
        set_arch(supernet, arch)
        single = _logits(supernet, x)
        weights = ArchWeights(space).double()
        weights.onehot_(arch)
        set_relaxed(supernet, weights)
        relaxed = _logits(supernet, x)
        set_relaxed(supernet, None)
        assert relaxed.dtype == torch.float64
        assert torch.allclose(relaxed, single, atol=1e-5), (seed, (relaxed - single).abs().max())


def test_relaxed_gradients_reach_alpha_and_pruned_candidates_are_skipped(supernet) -> None:
    supernet.train()
    space = search_space(supernet)
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1))
               for m in supernet.modules() if isinstance(m, ElasticConv2d)]  # fmt: skip
    weights = ArchWeights(space).double()
    set_relaxed(supernet, weights)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    _logits(supernet, x).pow(2).mean().backward()
    full = len(calls)
    moved = [k for k, a in weights.alpha.items() if a.grad is not None and a.grad.abs().sum() > 0]
    assert len(moved) == len(weights.rows)  # every decision receives a gradient
    with torch.no_grad():  # dilation and zoom rows decided: fewer convolutions computed
        for label in weights.rows:
            if label.endswith((".dilation", ".zoom")):
                weights.mask(label).zero_()
                weights.mask(label)[0] = True
    calls.clear()
    _logits(supernet, x)
    set_relaxed(supernet, None)
    for h in handles:
        h.remove()
    assert 0 < len(calls) < full / 3, (len(calls), full)


def test_sampled_candidates_compute_less_and_one_drawn_each_is_the_single_path(supernet):
    supernet.train()
    supernet.decode_head.dropout = None
    space = search_space(supernet)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    weights = ArchWeights(space).double()
    arch = space.canonical(space.sample(np.random.default_rng(3)))
    set_arch(supernet, arch)
    single = _logits(supernet, x)
    drawn = {k: [space.choices[k].index(arch[k])] for k in weights.rows}
    set_relaxed(supernet, SampledWeights(weights, drawn))
    assert torch.allclose(_logits(supernet, x), single, atol=1e-5)
    calls = []
    handles = [m.register_forward_hook(lambda *_: calls.append(1))
               for m in supernet.modules() if isinstance(m, ElasticConv2d)]  # fmt: skip
    counts = []
    for view in (weights, weights.sample(2, torch.Generator().manual_seed(0))):
        set_relaxed(supernet, view)
        calls.clear()
        _logits(supernet, x).pow(2).mean().backward()
        counts.append(len(calls))
    set_relaxed(supernet, None)
    for h in handles:
        h.remove()
    assert counts[1] < 0.6 * counts[0], counts
    moved = [k for k, a in weights.alpha.items() if a.grad is not None and a.grad.abs().sum() > 0]
    assert len(moved) == len(weights.rows)


def test_expected_cost_of_a_one_hot_path_is_its_complexity(supernet) -> None:
    from raynas.core.ssr_cost import expected_flops

    space, table = search_space(supernet), complexity_table(supernet, (128, 128))
    for seed in range(6):
        arch = space.canonical(space.sample(np.random.default_rng(seed)))
        weights = ArchWeights(space)
        weights.onehot_(arch)
        expected = float(expected_flops(weights.p, space.choices, table))
        assert expected == pytest.approx(table(arch).flops, rel=1e-2)
    uniform = float(expected_flops(ArchWeights(space).p, space.choices, table))
    low, high = (table(space.extreme(b)).flops for b in (False, True))
    assert low < uniform < high


class AlphaRecorder(Hook):
    priority = "LOW"  # after SSRHook's step

    def __init__(self) -> None:
        self.alpha: dict[int, dict] = {}
        self.metrics: list[dict] = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics.append(dict(metrics or {}))

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        hook = next(h for h in runner.hooks if isinstance(h, SSRHook))
        self.alpha[runner.iter] = {
            k: v.detach().clone() for k, v in hook.weights.state_dict().items()
        }


def _ssr_cfg(load_cfg, work: Path, **ssr):
    cfg = load_cfg(CONFIG, **{"train_cfg.max_iters": 12, "train_cfg.val_interval": 100,
                              "default_hooks.checkpoint.interval": 6, "val_cfg.calib_batches": 1,
                              "train_cfg.type": "ExactResumeTrainLoop"})  # fmt: skip
    cfg.default_hooks.rng_state = dict(type="RNGStateHook")
    apply_selection_split(cfg)
    cfg.work_dir = str(work)
    args = dict(shrink_interval=4, arch_optimizer=dict(lr=0.5), target_flops=40e6)
    cfg.custom_hooks = [dict(type="SSRHook", **{**args, **ssr})]
    return cfg


def _run(cfg, resume: bool = False, stop_at: int | None = None):
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    rec = AlphaRecorder()
    runner.register_hook(rec)
    if stop_at:
        runner.register_hook(StopAt(stop_at))
    runner.train()
    return runner, rec


@pytest.mark.slow  # an SSR search killed and resumed, 20 s (k=2) to a minute (k=0)
@pytest.mark.parametrize(("sample_k", "optimizer"), [(0, "ssr"), (2, "ssr"), (0, "xnas")])
def test_ssr_search_shrinks_and_resumes_exactly(
    load_cfg, tmp_path: Path, sample_k: int, optimizer: str
) -> None:
    """SSR's (or XNAS's) alpha, masks and derived path follow the same trajectory after a
    resume from the checkpoint at iteration 6."""
    args = dict(sample_k=sample_k, optimizer=optimizer)
    runner, full = _run(_ssr_cfg(load_cfg, tmp_path / "full", **args))
    hook = next(h for h in runner.hooks if isinstance(h, SSRHook))
    assert [s["iter"] for s in hook.history] == [4, 8, 12]
    left = [s["candidates_left"] for s in hook.history]
    assert left[-1] < left[0] and left == sorted(left, reverse=True)  # lr 0.5 prunes fast
    entropy = [s["entropy_ops"] for s in hook.history]
    assert max(entropy) < 1.0  # alpha left uniform
    if optimizer == "ssr":  # XNAS decides at its last step: no relaxed supernet to validate
        assert "strategy/relaxed_mIoU" in runner.message_hub.log_scalars
    assert "derived/mIoU" in full.metrics[-1]  # the derived path, BN recalibrated
    key = "alpha.backbone__stage0__depth"
    assert not torch.equal(full.alpha[0][key], full.alpha[11][key])

    derived = hook.derive()
    _run(_ssr_cfg(load_cfg, tmp_path / "cut", **args), stop_at=6)
    assert (tmp_path / "cut" / "iter_6.pth").is_file()
    runner, resumed = _run(_ssr_cfg(load_cfg, tmp_path / "cut", **args), resume=True)
    assert next(h for h in runner.hooks if isinstance(h, SSRHook)).derive() == derived
    assert sorted(resumed.alpha) == list(range(6, 12))
    for it in range(6, 12):
        for key, value in full.alpha[it].items():
            assert torch.allclose(resumed.alpha[it][key], value, atol=1e-6), (it, key)


def test_bad_ssr_configs_are_refused(load_cfg, tmp_path: Path) -> None:
    with pytest.raises(UnknownKeyError, match="lr"):
        SSRHook(arch_optimizer=dict(lrate=0.1))
    with pytest.raises(InvalidValueError, match="threshold"):
        SSRHook(threshold=-1)
    with pytest.raises(InvalidValueError, match="sample_k"):
        SSRHook(sample_k=-2)
    with pytest.raises(InvalidValueError, match="sample_k=1"):
        SSRHook(sample_k=1)
    with pytest.raises(InvalidValueError, match="shrink_interval must be an integer"):
        SSRHook(shrink_interval=2.5)
    with pytest.raises(UnknownKeyError, match="ops"):
        SSRHook(loss_weights=dict(opps=1.0))
    with pytest.raises(InvalidValueError, match="widths"):
        SSRHook(loss_weights=dict(widths=-0.1))
    cfg = _ssr_cfg(load_cfg, tmp_path / "far", target_flops=1e12)
    with pytest.raises(InvalidValueError, match="target_flops"):
        Runner.from_cfg(cfg).train()
    cfg = _ssr_cfg(load_cfg, tmp_path / "nosplit")
    cfg.selection_split = None
    with pytest.raises(InvalidValueError, match="selection_split"):
        Runner.from_cfg(cfg).train()


def test_ssr_pulls_toward_a_latency_target(load_cfg, tmp_path: Path) -> None:
    """``cost='latency_ms'``: the table measured once on this device (kept in a file), a
    target no path reaches refused with the measured range, a reachable one pulled toward."""
    lut = tmp_path / "lut.json"
    args = dict(cost="latency_ms", target_flops=None, latency_table=str(lut), latency_runs=1,
                cost_weight=10.0)  # fmt: skip
    cfg = _ssr_cfg(load_cfg, tmp_path / "far", target_latency_ms=1e-4, **args)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(InvalidValueError, match=r"target_latency_ms=0.0001 is outside") as err:
        runner.train()
    low, high = map(float, re.search(r"\(([\d.]+)\.\.([\d.]+) ms", str(err.value)).groups())
    assert lut.is_file() and 0 < low < high  # measured before the refusal, reused below
    hook = next(h for h in runner.hooks if isinstance(h, SSRHook))
    uniform = float(hook.latency.expected(ArchWeights(hook.weights.space)))
    # halfway from the cheapest path to uniform's expectation, whatever this machine measured
    assert low < uniform
    target = (low + uniform) / 2
    cfg = _ssr_cfg(load_cfg, tmp_path / "near", target_latency_ms=target, **args)
    cfg.train_cfg.max_iters = 4
    runner, _ = _run(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, SSRHook))
    assert float(hook.latency.expected(ArchWeights(hook.weights.space))) == pytest.approx(uniform)
    steps = [s["expected_latency_ms"] for s in hook.history]
    assert [s["iter"] for s in hook.history] == [4]
    assert steps[-1] < uniform  # pulled toward the target
    with pytest.raises(InvalidValueError, match="cost must be one of"):
        SSRHook(cost="latency")
    with pytest.raises(InvalidValueError, match="target_latency_ms"):
        SSRHook(cost="latency_ms", target_latency_ms=-1.0)


# a small space: dilation 1 or 2, no zoom, no detail branch (23 decision rows)
SMALL = {"model.backbone.arch_settings.dilations": (1, 2),
         "model.backbone.arch_settings.zooms": (1,), "model.decode_head.details": ()}  # fmt: skip
# the SSR quickstart's compressed schedule (configs/ssr_quickstart.py)
FAST = dict(shrink_interval=6, arch_optimizer=dict(lr=0.5), sample_k=2, cost_weight=10.0,
            loss_weights=dict(depth=3.0, ops=3.0, widths=1.5, head=1.5))  # fmt: skip


def _small_cfg(load_cfg, work: Path, iters: int, **ssr):
    cfg = _ssr_cfg(load_cfg, work, **{**FAST, **ssr})
    cfg.merge_from_dict({**SMALL, "train_cfg.max_iters": iters, "train_cfg.val_interval": 6})
    return cfg


def _target(cfg, fraction: float) -> float:
    """A FLOPs target ``fraction`` of the way up the small space's range."""
    model = build_supernet(cfg)
    space, table = search_space(model), complexity_table(model, (128, 128))
    low, high = space.cost_range(lambda a: table(a).flops)
    return low + fraction * (high - low)


@pytest.mark.parametrize("optimizer", ["ssr", "xnas"])
def test_every_row_is_decided_within_the_budget_at_the_cost_asked(load_cfg, tmp_path, optimizer):
    """SSR by the threshold rule, XNAS by wipeout: every row decided before the budget ends,
    the iteration of each decision kept, and the derived path within 5% of the target."""
    budget = 60
    cfg = _small_cfg(load_cfg, tmp_path / optimizer, budget)
    target = _target(cfg, 0.3)
    extra = dict(optimizer="xnas", sample_k=0) if optimizer == "xnas" else {}
    cfg = _small_cfg(load_cfg, tmp_path / optimizer, budget, target_flops=target, **extra)
    runner, _ = _run(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, SSRHook))
    w = hook.weights
    assert w.decided and sorted(hook.decided_at) == sorted(w.rows)
    assert max(hook.decided_at.values()) <= budget and runner.iter <= budget
    if optimizer == "ssr":  # the rule prunes from the first shrink step on
        assert min(hook.decided_at.values()) <= 12 and hook.history[0]["removed"] > 0
    arch = hook.derive()
    assert abs(hook.table(arch).flops / target - 1) <= 0.05, (hook.costs.derivation, target)
    assert abs(float(hook.expected_flops()) / target - 1) <= 0.05  # one-hot: the same path
    assert hook.summary()["rows_decided"] == len(w.rows)
