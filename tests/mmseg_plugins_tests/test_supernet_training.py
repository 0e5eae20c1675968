"""Supernet training through the mmengine Runner: path validation, resume, BN recalibration."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from mmseg_plugins import PathSamplingHook, recalibrate_bn, search_space, set_arch
from mmseg_plugins.bn_calib import bn_buffers_preserved, calibration_loader

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
        self.losses[runner.iter] = float(outputs["loss"])

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.metrics.append(dict(metrics or {}))


def _cfg(load_cfg, max_iters: int, work_dir: str | None = None, **extra):
    cfg = load_cfg(
        CONFIG,
        **{
            "train_cfg.max_iters": max_iters,
            "train_cfg.val_interval": max_iters,
            "default_hooks.checkpoint.interval": 10,
            "param_scheduler.0.end": 60,
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


def _train(cfg, resume: bool = False) -> tuple[Runner, Recorder]:
    cfg.resume = resume
    runner = Runner.from_cfg(cfg)
    rec = Recorder()
    runner.register_hook(rec)
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
            "param_scheduler.0.end": 400,
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


def test_resume_continues_the_same_paths_and_losses(load_cfg, tmp_path: Path) -> None:
    _, full = _train(_cfg(load_cfg, 20, str(tmp_path / "full")))
    _train(_cfg(load_cfg, 10, str(tmp_path / "cut")))
    assert (tmp_path / "cut" / "iter_10.pth").is_file()
    runner, resumed = _train(_cfg(load_cfg, 20, str(tmp_path / "cut")), resume=True)
    assert runner.iter == 20 and sorted(resumed.archs) == list(range(10, 20))
    for it in range(10, 20):
        assert resumed.archs[it] == full.archs[it]
        assert resumed.losses[it] == pytest.approx(full.losses[it], rel=1e-4)


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
