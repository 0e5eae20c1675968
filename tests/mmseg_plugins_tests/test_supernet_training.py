"""Supernet training through the mmengine Runner: path validation, resume, BN recalibration."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _hooks import StopAt
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmseg_plugins import PathSamplingHook, current_arch, recalibrate_bn, search_space, set_arch
from mmseg_plugins.bn_calib import bn_buffers_preserved, calibration_loader

pytestmark = pytest.mark.integration  # trains with the Runner for seconds to a minute

CONFIG = "supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


class Recorder(Hook):
    """Records the sampled path and the loss of every iteration, and validation metrics."""

    priority = "LOW"

    def __init__(self) -> None:
        self.archs: dict[int, dict] = {}
        self.losses: dict[int, float] = {}
        self.metrics: list[dict] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        sampler = next(h for h in runner.hooks if isinstance(h, PathSamplingHook))
        self.archs[runner.iter] = dict(sampler.current)
        self.losses[runner.iter] = float(outputs["loss"].detach())

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics.append(dict(metrics or {}))


def _cfg(load_cfg, max_iters: int, work_dir: str | None = None, config: str = CONFIG, **extra):
    cfg = load_cfg(
        config,
        **{
            "train_cfg.max_iters": max_iters,
            "train_cfg.val_interval": max_iters,
            "default_hooks.checkpoint.interval": 10,
            "val_cfg.calib_batches": 2,
            # deterministic data, so that a resumed run can be compared loss for loss
            "train_pipeline.2.prob": 0.0,
            "train_dataloader.dataset.pipeline.2.prob": 0.0,
            **extra,
        },
    )
    if work_dir:
        cfg.work_dir = work_dir
    return cfg


def _train(cfg, resume: bool = False, stop_at: int | None = None) -> tuple[Runner, Recorder]:
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    rec = Recorder()
    runner.register_hook(rec)
    if stop_at:
        runner.register_hook(StopAt(stop_at))
    runner.train()
    return runner, rec


@pytest.fixture(scope="module")
def trained(tmp_path_factory, make_cfg):
    cfg = make_cfg(
        CONFIG,
        tmp_path_factory.mktemp("supernet"),
        **{
            "train_cfg.max_iters": 400,
            "train_cfg.val_interval": 400,
            "param_scheduler.1.end": 400,
            "train_dataloader.batch_size": 8,
            "val_cfg.calib_batches": 3,
            "default_hooks.checkpoint.interval": 400,
        },
    )
    return _train(cfg)


def test_uniform_training_samples_many_paths_and_validates_extremes(trained) -> None:
    runner, rec = trained
    assert runner.iter == 400
    space = search_space(runner.model)
    assert len({space.key(a) for a in rec.archs.values()}) == 400  # a new path every iteration
    metrics = rec.metrics[-1]
    for path in ("largest", "smallest"):
        assert 0.0 <= metrics[f"{path}/mIoU"] <= 100.0
    assert metrics["mIoU"] == metrics["largest/mIoU"]
    assert np.mean(list(rec.losses.values())[-20:]) < np.mean(list(rec.losses.values())[:20])


STRATEGIES = {
    "uniform": (CONFIG, {}),
    "dps": (
        "supernet/segsupernet_dps_1xb8-2k_synthseg-128x128.py",
        {
            "custom_hooks.0.sampler.pool_size": 8,
            "custom_hooks.0.sampler.num_selected": 3,
            "custom_hooks.0.sampler.round_interval": 4,
            "custom_hooks.0.proxy_images": 2,
        },
    ),
    "pada": (
        "supernet/segsupernet_pada_1xb8-2k_synthseg-128x128.py",
        {
            "custom_hooks.0.sampler.update_interval": 4,
            "custom_hooks.1.update_interval": 4,
        },
    ),
    "calr-ms": ("supernet/segsupernet_uniform-calr-ms_1xb8-2k_synthseg-128x128.py", {}),
    "sandwich": (CONFIG, {"custom_hooks.0.distill": dict(type="sandwich", num_random=1)}),
    "cream": (CONFIG, {"custom_hooks.0.distill": dict(type="cream", board_size=3, start=0.2)}),
}


@pytest.mark.parametrize(  # uniform: also the next test; sandwich: stateless, like uniform
    "strategy",
    [pytest.param(s, marks=pytest.mark.slow) if s in ("uniform", "sandwich") else s
     for s in sorted(STRATEGIES)],
)  # fmt: skip
def test_resume_continues_the_same_paths_and_losses(
    load_cfg, tmp_path: Path, strategy: str
) -> None:
    config, options = STRATEGIES[strategy]

    def cfg(iters: int, work: str):
        c = _cfg(load_cfg, iters, str(tmp_path / work), config, **options)
        c.train_cfg.val_interval = 100  # no validation inside the compared window
        return c

    _, full = _train(cfg(20, "full"))
    _train(cfg(20, "cut"), stop_at=10)
    assert (tmp_path / "cut" / "iter_10.pth").is_file()
    runner, resumed = _train(cfg(20, "cut"), resume=True)
    assert runner.iter == 20 and sorted(resumed.archs) == list(range(10, 20))
    for it in range(10, 20):
        assert resumed.archs[it] == full.archs[it]
        assert resumed.losses[it] == pytest.approx(full.losses[it], rel=1e-4)


def test_resume_is_exact_with_random_augmentation(load_cfg, tmp_path: Path) -> None:
    """RandomFlip draws from numpy's global RNG; the data-loader replay of a resume consumes
    it, so the RNG states are restored after the replay (ExactResumeTrainLoop). Validation
    at the checkpoint (BN recalibration forwards in train mode, with dropout) must not move
    the training stream either."""

    def cfg(work: str):
        c = load_cfg(CONFIG, **{"train_cfg.max_iters": 20, "train_cfg.val_interval": 10,
                                "default_hooks.checkpoint.interval": 10,
                                "val_cfg.calib_batches": 1})  # fmt: skip
        c.work_dir = str(tmp_path / work)
        assert c.train_pipeline[2].type == "RandomFlip" and c.train_pipeline[2].prob == 0.5
        return c

    _, full = _train(cfg("full"))
    _train(cfg("cut"), stop_at=10)
    runner, resumed = _train(cfg("cut"), resume=True)
    assert runner.iter == 20
    for it in range(10, 20):
        assert resumed.archs[it] == full.archs[it]
        assert resumed.losses[it] == pytest.approx(full.losses[it], rel=1e-5), it


def _pixel_acc(model, loader) -> float:
    correct = total = 0
    model.eval()
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            for sample in model.predict(data["inputs"], data["data_samples"]):
                pred = sample.pred_sem_seg.data
                gt = sample.gt_sem_seg.data
                correct += int((pred == gt).sum())
                total += gt.numel()
    return correct / total


def test_bn_recalibration_changes_statistics_and_improves_accuracy(trained) -> None:
    runner, _ = trained
    model = runner.model
    space = search_space(model)
    arch = space.extreme(False)
    set_arch(model, arch)
    val = runner.val_loop.dataloader
    with bn_buffers_preserved(model):
        stale = _pixel_acc(model, val)
        bn = model.backbone.stages[0].downsample.bn
        before = bn.running_mean.clone()
        loader = calibration_loader(runner.train_loop.dataloader.dataset, 4)
        used = recalibrate_bn(model, loader, 6)
        assert used == 6
        width = model.backbone.stages[0].downsample.conv.active_out
        assert not torch.allclose(bn.running_mean[:width], before[:width])
        torch.testing.assert_close(bn.running_mean[width:], torch.zeros_like(before[width:]))
        calibrated = _pixel_acc(model, val)
    assert calibrated > stale + 0.01, (stale, calibrated)
    torch.testing.assert_close(bn.running_mean, before)  # restored on exit


def test_export_loads_and_predicts_with_plain_mmseg(trained, tmp_path: Path) -> None:
    from mmseg.apis import inference_model, init_model

    from mmseg_plugins.arch import build_subnet
    from raynas.export import export_subnet

    runner, _ = trained
    model, cfg = runner.model, runner.cfg
    arch = search_space(model).sample(np.random.default_rng(5))
    with bn_buffers_preserved(model):
        result = export_subnet(
            cfg, "unused.pth", arch, tmp_path / "exp", calib_batches=3, model=model
        )
        reference = build_subnet(model, arch, cfg.model).eval()  # same recalibrated stats
    plain = init_model(str(result.config), str(result.checkpoint), device="cpu")
    assert type(plain.backbone).__name__ == "SegSubNet"
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        diff = (plain._forward(x) - reference._forward(x)).abs().max().item()
    assert diff <= 1e-5
    img = str(next((Path(cfg.train_dataloader.dataset.data_root) / "img_dir/val").glob("*.png")))
    pred = inference_model(plain, img).pred_sem_seg.data
    assert pred.shape == (1, 128, 128) and int(pred.max()) < 8


def test_momentum_buffers_are_separated_per_group(load_cfg) -> None:
    from mmseg_plugins import MomentumSeparationHook

    cfg = _cfg(load_cfg, 12, config=STRATEGIES["calr-ms"][0])
    runner, rec = _train(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, MomentumSeparationHook))
    label = hook.split_label
    groups_seen = {a[label] for a in rec.archs.values()}
    assert set(hook.states) == groups_seen and len(groups_seen) >= 2
    stem = runner.model.backbone.stem[0].conv.weight  # trained by every path
    first = next(iter(groups_seen))
    key = "momentum_buffer" if "momentum_buffer" in hook.states[first][stem] else "exp_avg"
    buffers = [hook.states[g][stem][key] for g in groups_seen]  # SGD's momentum, AdamW's m
    assert not torch.allclose(buffers[0], buffers[1])
    # each group's buffer only saw its own steps: the optimizer holds the last group's state
    assert runner.optim_wrapper.optimizer.state is hook.states[hook.current]


def test_calr_sets_lr_from_path_complexity(load_cfg) -> None:
    from mmseg_plugins import CaLRHook
    from raynas.core.calr import calr_gamma

    runner = Runner.from_cfg(_cfg(load_cfg, 4, config=STRATEGIES["calr-ms"][0]))
    runner.train()
    hook = next(h for h in runner.hooks if isinstance(h, CaLRHook))
    space, base = search_space(runner.model), hook.base_lrs[0]
    low, high = space.cost_range(lambda arch: hook._table(arch).params)
    first = hook._table(space.extreme(False)).params  # not the cheapest path: low < first
    gamma = calr_gamma(first, low, high)
    assert tuple(hook._bounds) == (low, high) and low < first and 0.25 < gamma < 4.0
    for largest, expected_gamma in ((False, gamma), (True, 0.25)):
        set_arch(runner.model, space.extreme(largest))
        runner.train_loop._iter = 2  # t / T = 2 / 4
        hook.before_train_iter(runner, 0)
        lr = runner.optim_wrapper.optimizer.param_groups[0]["lr"]
        assert lr == pytest.approx(base * 0.5**expected_gamma)


def test_dps_rounds_log_and_move_through_stages(load_cfg) -> None:
    stages = [  # a third of the 24-iteration run each, at most
        dict(name="convergence", objectives=("angle", "loss_decrease"), max_frac=1 / 3),
        dict(name="expressiveness", objectives=("predicted",), max_frac=1 / 3),
        dict(name="balanced", objectives=("predicted", "ib")),
    ]
    cfg = _cfg(
        load_cfg,
        24,
        config=STRATEGIES["dps"][0],
        **{**STRATEGIES["dps"][1], "custom_hooks.0.sampler.stages": stages},
    )
    runner, rec = _train(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, PathSamplingHook))
    sampler = hook._sampler
    moves = sampler.stage_scheduler.transitions
    expected = [("convergence", "expressiveness"), ("expressiveness", "balanced")]
    assert [(m["src"], m["dst"]) for m in moves] == expected
    assert [m["iteration"] for m in moves] == [8, 16]
    assert all("max_frac" in m["reason"] for m in moves)
    log = sampler.last_log
    assert log["stage"] == "balanced" and log["objectives"] == ["predicted", "ib"]
    assert log["selected"] == 3 and len(sampler.pool) == 8
    assert set(log["proxies"]) >= {"mIoU", "loss", "ib", "predicted"}
    assert runner.message_hub.get_scalar("strategy/stage").current() == 2.0
    pool_keys = {sampler.key(a) for a in sampler.selected}
    trained = [
        sampler.key(search_space(runner.model).canonical(a))
        for it, a in rec.archs.items()
        if it >= 20
    ]
    assert sum(k in pool_keys for k in trained) >= 2  # training draws from the selected set
    rounds = [json.loads(line) for line in (Path(runner.log_dir) / "dps_rounds.jsonl").open()]
    assert [r["iteration"] for r in rounds] == [4, 8, 12, 16, 20, 24]
    assert rounds[-1]["selected_paths"] == sampler.selected


@pytest.mark.parametrize(
    "rule, reason",
    [
        (dict(tau_threshold=-1.0, patience=1), "ranking stable"),  # any defined tau is stable
        (dict(tau_threshold=2.0, plateau=1, min_delta=1e9), "objective plateaued"),
    ],
)
def test_dps_moves_on_by_its_own_rules_in_a_real_run(load_cfg, rule, reason) -> None:
    """Kendall-tau and plateau transitions from the proxies measured in training, with no
    stage bound reached (the bounds are the whole run)."""
    stages = [dict(name=n, objectives=o) for n, o in
              (("convergence", ("angle", "loss_decrease")), ("expressiveness", ("predicted",)),
               ("balanced", ("predicted", "ib")))]  # fmt: skip
    options = {**STRATEGIES["dps"][1], "custom_hooks.0.sampler.stages": stages}
    options.update({f"custom_hooks.0.sampler.{k}": v for k, v in rule.items()})
    runner, _ = _train(_cfg(load_cfg, 24, config=STRATEGIES["dps"][0], **options))
    sampler = next(h for h in runner.hooks if isinstance(h, PathSamplingHook))._sampler
    moves = sampler.stage_scheduler.transitions
    assert [m["dst"] for m in moves] == ["expressiveness", "balanced"]
    assert all(m["reason"].startswith(reason) for m in moves), moves
    if reason == "ranking stable":
        assert -1.0 <= sampler.stage_scheduler.last_tau <= 1.0  # measured, not NaN


def test_pada_data_sampling_and_importance_correction(load_cfg) -> None:
    from mmseg_plugins import DataImportanceHook
    from mmseg_plugins.importance_sampling import ImportancePixelSampler

    config, options = STRATEGIES["pada"]
    cfg = _cfg(
        load_cfg,
        16,
        config=config,
        **{**options, "custom_hooks.1.correction": True},  # mix rises over the run's 16 iters
    )
    runner, _ = _train(cfg)
    hook = next(h for h in runner.hooks if isinstance(h, DataImportanceHook))
    sampler = runner.train_loop.dataloader.sampler
    weights = sampler.weights
    assert weights.seen.sum() > 0 and (weights.scores[weights.seen] > 0).all()
    # refreshed at iterations 4, 8, 12, 16 with tau = iter / 16: the last is pure importance
    expected = weights.scores / weights.scores.sum()
    np.testing.assert_allclose(
        weights.probs,
        np.maximum(expected, 0.1 / weights.size) / np.maximum(expected, 0.1 / weights.size).sum(),
    )
    head_sampler = runner.model.decode_head.sampler
    assert isinstance(head_sampler, ImportancePixelSampler)
    assert head_sampler.image_weights is not None and hook.correction
    label = torch.zeros(4, 8, 8, dtype=torch.long)
    w = head_sampler.sample(torch.zeros(4, 8, 8, 8), label)
    assert w.shape == label.shape and torch.allclose(w[:, 0, 0], head_sampler.image_weights)


def test_evaluate_path_scores_a_path_and_restores_bn(trained) -> None:
    from mmengine.evaluator import Evaluator

    from mmseg_plugins.path_eval import evaluate_path

    runner, _ = trained
    model, val = runner.model, runner.val_loop.dataloader
    evaluator = Evaluator(runner.cfg.val_evaluator)
    evaluator.dataset_meta = val.dataset.metainfo
    before = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    arch = search_space(model).extreme(False)
    calib = calibration_loader(runner.train_loop.dataloader.dataset, 4)
    metrics = evaluate_path(model, arch, calib, 3, val, evaluator, len(val.dataset))
    assert 0.0 < metrics["mIoU"] <= 100.0
    assert current_arch(model) == arch
    for k, v in model.state_dict().items():
        if k in before:
            torch.testing.assert_close(v, before[k])


def test_recalibration_is_reproducible_and_leaves_global_rng_alone(trained) -> None:
    import random

    runner, _ = trained
    model = runner.model
    set_arch(model, search_space(model).sample(np.random.default_rng(3)))
    calib = calibration_loader(runner.train_loop.dataloader.dataset, 4)
    bn = model.backbone.stages[1].downsample.bn
    with bn_buffers_preserved(model):
        np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
        recalibrate_bn(model, calib, 3)
        assert (np.random.get_state()[1] == np_before).all() and random.getstate() == py_before
        first = bn.running_var.clone()
        np.random.rand(), random.random()  # the global streams move between the two calls
        recalibrate_bn(model, calib, 3)
        torch.testing.assert_close(bn.running_var, first, rtol=0, atol=0)
    paths = [[s.img_path for s in b["data_samples"]] for b in list(calib)[:2]]
    assert paths == [[s.img_path for s in b["data_samples"]] for b in list(calib)[:2]]
