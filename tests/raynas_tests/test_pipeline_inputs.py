"""Bad pipeline input fails early with a message naming the problem; nothing is overwritten."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from raynas.cli import main
from raynas.tune.options import resolve_tune_cfg
from raynas.tune.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.py"


def test_unknown_tune_cfg_keys_are_named() -> None:
    with pytest.raises(KeyError, match=r"'search.num_candidate'.*num_candidates"):
        resolve_tune_cfg({"search": {"num_candidate": 3}})
    with pytest.raises(KeyError, match=r"unknown tune_cfg key 'serach'"):
        resolve_tune_cfg({"serach": {}})
    with pytest.raises(ValueError, match=r"retrain\.init"):
        resolve_tune_cfg({"retrain": {"init": "pretrained"}})


def test_cli_reports_bad_key_and_missing_dataset(tmp_path: Path, capsys) -> None:
    args = ["run", str(QUICKSTART), "--storage", str(tmp_path)]
    assert main([*args, "--cfg-options", "tune_cfg.supernet.itres=5"]) == 2
    assert "tune_cfg.supernet" in capsys.readouterr().err
    missing = {
        f"{s}_dataloader.dataset.{k}": v
        for s in ("train", "val")
        for k, v in (("data_root", str(tmp_path / "nowhere")), ("synth", None))
    }
    opts = [f"{k}={v}" for k, v in missing.items()]
    assert main([*args, "--name", "m", "--cfg-options", *opts]) == 2
    assert "dataset not found" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_check_runs_every_pre_run_check_without_training(
    tmp_path: Path, run_options, capsys
) -> None:
    opts = [f"{k}={v}".replace(" ", "") for k, v in run_options().items()]
    gpu = ["tune_cfg.supernet.resources.gpu=1"]
    assert main(["check", str(QUICKSTART), "--cfg-options", *opts, *gpu]) == 0
    out = capsys.readouterr().out
    assert "every check passed" in out and "flops at 128x128: 15.73e6" in out
    assert "supernet: 7200 iterations, trial resources {'cpu': 2.0, 'gpu': 1.0}" in out
    assert "search: 24 candidates" in out and "retrain: 6000 iterations" in out
    assert ("sees none" in out) == (not torch.cuda.is_available())
    bad = [*opts, "tune_cfg.search.constraints.flops=(None,1e3)"]
    assert main(["check", str(QUICKSTART), "--cfg-options", *bad]) == 2
    assert "admits no architecture" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written, nothing trained


def test_existing_experiment_is_not_overwritten(tmp_path: Path, small_options: dict) -> None:
    Pipeline.create(QUICKSTART, str(tmp_path), "exp", small_options)
    state = (tmp_path / "exp" / "pipeline.json").read_bytes()
    with pytest.raises(FileExistsError, match="raynas resume"):
        Pipeline.create(QUICKSTART, str(tmp_path), "exp", small_options)
    assert (tmp_path / "exp" / "pipeline.json").read_bytes() == state


def test_not_an_experiment(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a raynas experiment"):
        Pipeline(tmp_path)


def test_arch_outside_the_space_and_checkpoint_of_another_space(tmp_path: Path) -> None:
    from raynas.export import build_supernet, load_supernet_weights

    cfg = Config.fromfile(str(ROOT / "configs/_base_/models/segsupernet.py"))
    model = build_supernet(cfg)
    other = cfg.copy()
    other.model.backbone.arch_settings.max_depths = (2, 2, 2)
    other_model = build_supernet(other)
    ckpt = tmp_path / "other.pth"
    torch.save({"state_dict": other_model.state_dict(), "meta": {}}, ckpt)
    with pytest.raises(ValueError, match="does not match this config's supernet"):
        load_supernet_weights(model, ckpt)

    bad = tmp_path / "bad.yaml"
    bad.write_text("arch:\n  backbone.stage0.depth: 9\n")
    sup = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"
    code = main(
        [
            "export",
            str(sup),
            "--checkpoint",
            str(ckpt),
            "--arch",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2 and not (tmp_path / "o").exists()


def test_progress_counts_iterations_of_running_trials(capsys) -> None:
    from types import SimpleNamespace

    from raynas.tune.callbacks import ProgressCallback

    progress = ProgressCallback("supernet", 2, iters=100, every_s=0)
    trials = [SimpleNamespace(trial_id=t, status="RUNNING") for t in "ab"]
    progress.on_trial_result(0, trials, trials[0], {"iter": 50, "mIoU": 10.0, "flops": 2e6})
    trials[1].status = "TERMINATED"
    progress.on_trial_result(0, trials, trials[1], {"iter": 100, "mIoU": 12.0})
    lines = capsys.readouterr().out.splitlines()
    assert "0/2 trials done, 2 running, iter 50/200, best mIoU 10.00 (2.0 MFLOPs)" in lines[0]
    assert "1/2 trials done, 1 running, iter 150/200, best mIoU 12.00" in lines[1]
    assert "eta" in lines[1]


def test_progress_counts_a_halving_plan(capsys) -> None:
    """Under successive halving a trial stopped at a rung counts the iterations it trained,
    against the plan's budget (here 3 trials of 8 iterations, rungs at 2 and 6)."""
    from types import SimpleNamespace

    from raynas.tune.callbacks import ProgressCallback
    from raynas.tune.halving import budget

    plan = budget(3, 8, 3, 2)[0]
    progress = ProgressCallback("retrain", 3, iters=8, every_s=0, budget=plan)
    trials = [SimpleNamespace(trial_id=t, status="RUNNING") for t in "abc"]
    for trial, it in zip(trials, (2, 2, 8), strict=True):
        progress.on_trial_result(0, trials, trial, {"iter": it, "mIoU": 1.0})
    trials[0].status = trials[1].status = "TERMINATED"
    progress.on_trial_complete(0, trials, trials[1])
    trials[2].status = "TERMINATED"
    progress.on_trial_complete(0, trials, trials[2])
    lines = capsys.readouterr().out.splitlines()
    assert plan == 12 and "iter 4/12" in lines[1]
    assert "2/3 trials done, 1 running, iter 12/12" in lines[-2]
    assert "3/3 trials done, 0 running, iter 12/12" in lines[-1] and "eta 0:00" in lines[-1]


def test_resume_on_another_number_of_workers(tmp_path: Path, small_options: dict, capsys) -> None:
    """``raynas resume --workers N``: data-parallel phases only, N >= 2, kept in
    ``pipeline.json`` for every later resume; refusals name the option and the reason."""
    Pipeline.create(QUICKSTART, str(tmp_path), "one", small_options)
    assert main(["resume", str(tmp_path / "one"), "--workers", "2"]) == 2
    assert "no unfinished phase of this experiment is data-parallel" in capsys.readouterr().err
    dp = {**small_options, "tune_cfg.supernet.resources": dict(workers=2, cpu_per_worker=1)}
    Pipeline.create(QUICKSTART, str(tmp_path), "dp", dp)
    with pytest.raises(ValueError, match=r"--workers 1: .* 2 or more workers"):
        Pipeline(tmp_path / "dp").set_workers(1)
    assert Pipeline(tmp_path / "dp").set_workers(3) == ["supernet"]
    assert "supernet: continues on 3 data-parallel workers (was 2)" in capsys.readouterr().out
    again = Pipeline(tmp_path / "dp")
    assert again.opts["supernet"]["resources"]["workers"] == 3
    assert again.opts["retrain"]["resources"].get("workers", 1) == 1  # single-process stays
