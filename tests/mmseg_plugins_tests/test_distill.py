"""Multi-path steps: the sandwich rule, Cream's board, and distillation reaching the student."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmengine.runner import Runner

from mmseg_plugins import PathSamplingHook, search_space, set_arch
from mmseg_plugins.models.segmentor import kd_loss
from raynas.core.distill import Cream, PathStep, PrioritizedBoard, Sandwich, build_distiller
from raynas.core.errors import InvalidValueError, UnknownKeyError
from raynas.core.seg_space import BackboneSettings, HeadSettings, build_space

CONFIG = "supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


def _space():
    return build_space(BackboneSettings(), HeadSettings())


def test_board_keeps_the_best_paths() -> None:
    space, rng = _space(), np.random.default_rng(0)
    board = PrioritizedBoard(size=5, gap=0.0)
    offered = [(space.sample(rng), float(s)) for s in rng.uniform(0, 100, 40)]
    for arch, score in offered:
        board.consider(arch, score, flops=1.0)
    best = sorted(offered, key=lambda t: -t[1])[:5]
    assert [e["score"] for e in board.entries] == [s for _, s in best]
    assert [e["arch"] for e in board.entries] == [a for a, _ in best]


def test_board_insertion_rule_weighs_cost_within_the_gap() -> None:
    space, rng = _space(), np.random.default_rng(1)
    a, b, c, d = (space.sample(rng) for _ in range(4))
    board = PrioritizedBoard(size=2, gap=5.0)
    assert board.consider(a, 50.0, 10.0) and board.consider(b, 40.0, 10.0)
    assert not board.consider(c, 42.0, 20.0)  # better by < gap and costlier: refused
    assert board.consider(d, 42.0, 5.0)  # better and cheaper: replaces the worst (b)
    assert [e["arch"] for e in board.entries] == [a, d]
    assert board.match(d) == d


def test_match_returns_the_nearest_board_path() -> None:
    space, rng = _space(), np.random.default_rng(2)
    board = PrioritizedBoard(size=3, gap=0.0)
    paths = [space.sample(rng) for _ in range(3)]
    for i, p in enumerate(paths):
        board.consider(p, float(i), 1.0)
    near = dict(paths[0])
    label = next(iter(near))
    near[label] = next(c for c in space.choices[label] if c != near[label])
    assert board.match(near) == paths[0]


def test_sandwich_plan_teaches_every_path_from_the_largest() -> None:
    space = _space()
    sampled = space.sample(np.random.default_rng(3))
    plan = Sandwich(space, num_random=1).plan(sampled, 0, 10)
    assert plan[0] == PathStep(space.extreme(True), "teacher")
    assert [s.role for s in plan[1:]] == ["student"] * 3
    assert plan[1].arch == sampled and plan[1].sampled and plan[2].arch == space.extreme(False)
    only = Sandwich(space).plan(space.extreme(True), 0, 10)  # sampled = largest: no duplicate
    assert only[0].sampled and [s.arch for s in only] == [
        space.extreme(True),
        space.extreme(False),
    ]


def test_cream_distils_only_after_its_warm_up() -> None:
    space, rng = _space(), np.random.default_rng(4)
    cream = Cream(space, board_size=3, start=0.5)
    a, b = space.sample(rng), space.sample(rng)
    cream.observe(a, 90.0, 1.0, iteration=2, max_iters=10)  # before the start: ignored
    assert cream.board.entries == [] and cream.plan(b, 6, 10) == [PathStep(b, "teacher", True)]
    cream.observe(a, 90.0, 1.0, iteration=6, max_iters=10)
    roles = [(s.arch, s.role) for s in cream.plan(b, 7, 10)]
    assert roles == [(a, "frozen"), (b, "student")]


def test_bad_distill_configs_are_refused_by_name() -> None:
    with pytest.raises(UnknownKeyError, match="sandwich"):
        build_distiller(dict(type="sandwhich"), _space())
    with pytest.raises(UnknownKeyError, match="board"):
        build_distiller(dict(type="cream", bord_size=3), _space())
    with pytest.raises(InvalidValueError, match="start"):
        build_distiller(dict(type="cream", start=1.5), _space())


def test_distillation_loss_reaches_the_student(load_cfg) -> None:
    """With only the KD term, one step moves the student's weights toward the teacher's output
    and leaves the weights only the teacher uses untouched."""
    torch.manual_seed(0)
    runner = Runner.from_cfg(load_cfg(CONFIG, **{"train_cfg.max_iters": 1}))
    model = runner.model
    space = search_space(model)
    teacher, student = space.extreme(True), space.extreme(False)
    model.activate = lambda arch: set_arch(model, arch)
    model.plan = [
        PathStep(teacher, "frozen"),
        PathStep(student, "student", True, ce_weight=0.0, kd_weight=1.0),
    ]
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.5))
    batch = next(iter(runner.train_dataloader))
    data = model.data_preprocessor(batch, True)

    def kd() -> float:
        with torch.no_grad():
            set_arch(model, teacher)
            t = model._logits(data["inputs"])
            set_arch(model, student)
            return float(kd_loss(model._logits(data["inputs"]), t, 1.0))

    model.eval()  # BN in eval mode: the comparison does not move running statistics
    before = kd()
    last = model.backbone.stages[0].layers[-1]  # a layer the smallest path skips (depth 1 of 4)
    untouched = [p.detach().clone() for p in last.parameters()]
    log = model.train_step(batch, optim)
    model.eval()
    assert float(log["loss_kd"]) > 0 and float(log["loss"]) == pytest.approx(float(log["loss_kd"]))
    assert kd() < before
    assert all(torch.equal(p, q) for p, q in zip(last.parameters(), untouched, strict=True))


@pytest.mark.parametrize("distill", [dict(type="sandwich"), dict(type="cream", start=0.0)])
def test_multi_path_training_runs_through_the_runner(load_cfg, distill) -> None:
    cfg = load_cfg(
        CONFIG,
        **{
            "train_cfg.max_iters": 6,
            "train_cfg.val_interval": 6,
            "val_cfg.calib_batches": 1,
            "custom_hooks.0.distill": distill,
        },
    )
    runner = Runner.from_cfg(cfg)
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, PathSamplingHook))
    steps = runner.model.step_accuracy
    if distill["type"] == "sandwich":
        assert len(steps) >= 2 and steps[0][0] == search_space(runner.model).extreme(True)
    else:
        assert 1 <= len(hook._distiller.board.entries) <= 6
    scalars = runner.message_hub.log_scalars
    assert "train/loss" in scalars and np.isfinite(scalars["train/loss"].current())
