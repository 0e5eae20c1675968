"""Data-parallel supernet trials (Ray Train's TorchTrainer inside a Tune trial, gloo on CPU,
2 workers): the loss curve of 2 workers x batch b against 1 process x batch 2b, and the
strategies' state identical on both ranks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from mmengine.hooks import Hook
from mmengine.runner import Runner

from raynas.config import apply_selection_split, load_config
from raynas.tune.trial import staging_dirs_of

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("in_process_ray")]
ROOT = Path(__file__).resolve().parents[2]
UNIFORM = ROOT / "configs/supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"
ITERS, BATCH = 20, 4
# Per-rank BN statistics (b images instead of 2b) and the summation order are the differences:
# measured 0.04-0.1% over the first 5 iterations with 1 thread (1.1% at 10, 10% at 20) and
# 0.06-0.84% with 2 threads, drifting as the weights part ways.
TOLERANCE = ((5, 0.02), (10, 0.05), (20, 0.25))


def _options(
    run_options: Callable[..., dict[str, Any]], batch: int, tune: dict[str, Any] | None = None
) -> dict[str, Any]:
    """``run_options(tune)`` with ``batch`` and the same data on both sides of a comparison."""
    opts = run_options(tune)
    opts.update({
        "randomness.seed": 0,
        "train_dataloader.batch_size": batch,
        "train_pipeline.2.prob": 0.0,  # no random flips: the same images on both sides
        "train_dataloader.dataset.pipeline.2.prob": 0.0,
        "default_hooks.logger.interval": 1,
    })  # fmt: skip
    return opts


class _Losses(Hook):
    """The training loss of every iteration (numbered from 1, as mmengine's logs)."""

    def __init__(self) -> None:
        self.loss: dict[int, float] = {}

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.loss[runner.iter + 1] = float(outputs["loss"].detach())


def _killed_at_first_checkpoint(exp: Path, phase: str) -> list[str]:
    """Runs ``raynas resume EXP --until PHASE`` and kills it (the driver, its Ray and the
    workers) once the phase has a Ray Train checkpoint; returns the resume command."""
    resume = [sys.executable, "-m", "raynas.cli", "resume", str(exp), "--until", phase,
              "--quiet"]  # fmt: skip
    proc = subprocess.Popen(resume, cwd=ROOT, start_new_session=True)
    deadline = time.time() + 600
    while not list((exp / phase / "ddp").glob("*/checkpoint_*/checkpoint.pth")):
        assert proc.poll() is None and time.time() < deadline, "no checkpoint before the kill"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(2)
    return resume


def _scalars(work: Path, key: str) -> dict[int, float]:
    """``key`` per iteration from mmengine's scalar logs under ``work`` (a resumed run's
    later log wins)."""
    out: dict[int, float] = {}
    for f in sorted(work.rglob("vis_data/scalars.json"), key=lambda p: p.parent.parent.name):
        out.update({r["iter"]: r[key] for r in map(json.loads, f.read_text().splitlines())
                    if key in r})  # fmt: skip
    return out


@pytest.mark.slow  # a 2-worker and a 1-worker supernet trial on Ray Train, about 50 s
def test_two_workers_match_one_worker_with_twice_the_batch(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    from raynas.tune.pipeline import Pipeline

    run = {"supernet": dict(iters=ITERS, report_interval=ITERS,
                            resources=dict(workers=2, cpu_per_worker=1)),
           "ray.num_cpus": 3}  # fmt: skip
    pipeline = Pipeline.create(UNIFORM.parent.parent / "quickstart.py", str(tmp_path), "ddp",
                               _options(run_options, BATCH, run))  # fmt: skip
    pipeline.run(until="supernet", quiet=True)
    state = json.loads((tmp_path / "ddp" / "pipeline.json").read_text())["phases"]["supernet"]
    assert state["done"] and Path(state["checkpoint"]).is_dir()
    ddp = _scalars(tmp_path / "ddp" / "supernet", "loss_all_ranks")

    cfg = load_config(UNIFORM, _options(run_options, 2 * BATCH))
    apply_selection_split(cfg)
    cfg.work_dir, cfg.log_level = str(tmp_path / "single"), "WARNING"
    cfg.train_cfg.max_iters = cfg.train_cfg.val_interval = ITERS
    runner, losses = Runner.from_cfg(cfg), _Losses()
    runner.register_hook(losses)
    runner.train()
    single = losses.loss
    assert sorted(ddp) == sorted(single) == list(range(1, ITERS + 1))
    diffs = [abs(ddp[i] - single[i]) / single[i] for i in single]
    for first, tolerance in TOLERANCE:
        assert max(diffs[:first]) < tolerance, [round(d, 4) for d in diffs]
    assert single[ITERS] < single[1] and ddp[ITERS] < ddp[1]  # both learn


@pytest.mark.slow  # two 2-worker pipelines, about 4 min on 2 cores
@pytest.mark.parametrize("config", ["segsupernet_dps", "segsupernet_pada"])
def test_strategies_keep_one_state_across_two_workers(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]], config: str
) -> None:
    """DPS (rounds on rank 0) and PA&DA (importances gathered from both ranks, disjoint data
    shards): training ends with the sampler's state identical on both ranks (checked by
    ``PathSamplingHook.after_train``, which fails the trial otherwise)."""
    from raynas.tune.pipeline import Pipeline

    path = next(UNIFORM.parent.glob(f"{config}_*.py"))
    run = {"supernet": dict(iters=24, report_interval=24,
                            resources=dict(workers=2, cpu_per_worker=1)),
           "ray.num_cpus": 3}  # fmt: skip
    Pipeline.create(path, str(tmp_path), "ddp", _options(run_options, BATCH, run))
    Pipeline(tmp_path / "ddp").run(until="supernet", quiet=True)
    state = json.loads((tmp_path / "ddp" / "pipeline.json").read_text())["phases"]["supernet"]
    assert state["done"]
    log = next((tmp_path / "ddp" / "supernet").rglob("work/*/*.log")).read_text()
    assert "identical on 2 ranks" in log


@pytest.mark.slow  # two 2-worker pipelines and a kill, about 5 min on 2 cores
def test_a_killed_two_worker_trial_resumes_exactly(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    from raynas.tune.pipeline import Pipeline

    run = {"supernet": dict(iters=40, report_interval=20,
                            resources=dict(workers=2, cpu_per_worker=1)),
           "ray.num_cpus": 3}  # fmt: skip
    config = UNIFORM.parent.parent / "quickstart.py"
    for name in ("full", "cut"):
        Pipeline.create(config, str(tmp_path), name, _options(run_options, BATCH, run))
    Pipeline(tmp_path / "full").run(until="supernet", quiet=True)
    cut = tmp_path / "cut"
    resume = _killed_at_first_checkpoint(cut, "supernet")
    assert subprocess.run(resume, cwd=ROOT).returncode == 0
    full = _scalars(tmp_path / "full" / "supernet", "loss_all_ranks")
    resumed = _scalars(cut / "supernet", "loss_all_ranks")
    assert sorted(resumed) == sorted(full) == list(range(1, 41))
    for it in range(21, 41):  # after the checkpoint at 20: the same losses
        assert resumed[it] == pytest.approx(full[it], rel=1e-4), it


@pytest.mark.slow  # a whole reduced pipeline, about 4 min on 2 cores
def test_retrain_trials_run_on_two_workers(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    """Retraining on 2 workers: inherited weights fetched on each worker, the val test after
    training on every rank, the checkpoint handed to Tune for the report's ``best/``."""
    from raynas.tune.pipeline import Pipeline

    run = {
        "supernet": dict(iters=40, report_interval=40),
        "search": dict(num_candidates=4, eval_images=16, calib_batches=1),
        "retrain": dict(top_k=1, iters=20, report_interval=20, max_concurrent=1,
                        resources=dict(workers=2, cpu_per_worker=1)),
        "ray.num_cpus": 3,
    }  # fmt: skip
    Pipeline.create(UNIFORM.parent.parent / "quickstart.py", str(tmp_path), "rt",
                    _options(run_options, BATCH, run))  # fmt: skip
    Pipeline(tmp_path / "rt").run(quiet=True)
    exp = tmp_path / "rt"
    best = json.loads((exp / "pipeline.json").read_text())["phases"]["retrain"]["best"]
    assert best["mIoU"] > 0 and (exp / "best" / "subnet.pth").is_file()
    from raynas.tune.archive import Archive

    frame = Archive(exp).read("retrain").to_pandas()
    assert set(frame.split) == {"selection", "val"} and len(frame) == 2
    assert list((exp / "retrain" / "ddp").glob("*/checkpoint_*/checkpoint.pth"))


@pytest.mark.slow  # a 2-worker pipeline killed, then resumed on 3 workers, about 4 min
def test_a_killed_two_worker_trial_resumes_on_three(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    """``raynas resume --workers 3``: the trial continues from its 2-worker checkpoint on 3
    ranks (mmengine resumes at the checkpoint's iteration) and the phase completes."""
    from raynas.tune.pipeline import Pipeline

    run = {"supernet": dict(iters=40, report_interval=20,
                            resources=dict(workers=2, cpu_per_worker=1)),
           "ray.num_cpus": 4}  # fmt: skip
    Pipeline.create(UNIFORM.parent.parent / "quickstart.py", str(tmp_path), "cut",
                    _options(run_options, BATCH, run))  # fmt: skip
    cut = tmp_path / "cut"
    resume = _killed_at_first_checkpoint(cut, "supernet")
    out = subprocess.run([*resume, "--workers", "3"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "continues on 3 data-parallel workers (was 2)" in out.stdout
    state = json.loads((cut / "pipeline.json").read_text())["phases"]["supernet"]
    assert state["done"] and state["workers"] == 3
    logs = [p.read_text() for p in (cut / "supernet").rglob("work/*/*.log")]
    assert any("resumed epoch: 0, iter: 20" in t for t in logs)
    (result,) = (cut / "supernet").glob("train_supernet_*/result.json")
    reports = [json.loads(line) for line in result.read_text().splitlines()]
    assert reports[-1]["iter"] == 40 and reports[-1]["workers"] == 3
    # rank 0 copied its logs into the experiment folder before reporting the checkpoint at
    # 20, at which the driver was killed: the killed run's iterations 1-20, the resumed 21-40
    losses = _scalars(cut / "supernet", "loss_all_ranks")
    assert sorted(losses) == list(range(1, 41))
    # the killed run's temporary checkpoint folder went when its trial ran again
    trial_id = "_".join(result.parent.name.split("_")[2:4])  # train_supernet_ID_NUM_...
    assert not staging_dirs_of(trial_id)


def _ssr_state(exp: Path) -> dict[str, Any]:
    """The architecture weights (alpha, masks) of the search trial's last Ray Train checkpoint."""
    from mmseg_plugins.checkpoint import SSR_KEY, read_meta
    from mmseg_plugins.safe_load import load_local

    last = sorted((exp / "search" / "ddp").glob("*/checkpoint_*/checkpoint.pth"))[-1]
    return read_meta(load_local(str(last), map_location="cpu"), SSR_KEY)["weights"]


@pytest.mark.slow  # two 2-worker SSR searches, one killed and resumed: 3 min on 2 cores
def test_a_two_worker_ssr_search_keeps_one_state_and_resumes_exactly(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    """SSR on 2 ranks (gloo): alpha identical on both (checked when training ends, else the
    trial fails), and a search killed after its first checkpoint resumes to the same alpha and
    masks as an uninterrupted one."""
    from raynas.tune.pipeline import Pipeline

    run = {"supernet": dict(iters=12, report_interval=12),
           "search.ssr": dict(iters=12, shrink_interval=6),
           "search.param_space.ssr.target_flops": dict(grid=[50e6]),
           "search.resources": dict(workers=2, cpu_per_worker=1),
           "search.max_concurrent": 1, "ray.num_cpus": 3}  # fmt: skip
    config = UNIFORM.parent.parent / "ssr_quickstart.py"
    for name in ("full", "cut"):
        Pipeline.create(config, str(tmp_path), name, _options(run_options, BATCH, run))
    Pipeline(tmp_path / "full").run(until="search", quiet=True)
    log = next((tmp_path / "full" / "search").rglob("work/*/*.log")).read_text()
    assert "SSR architecture weights identical on 2 ranks" in log
    cut = tmp_path / "cut"
    resume = _killed_at_first_checkpoint(cut, "search")
    assert subprocess.run(resume, cwd=ROOT).returncode == 0
    logs = [p.read_text() for p in (cut / "search").rglob("work/*/*.log")]
    assert any("resumed epoch: 0, iter: 6" in t for t in logs)
    full, resumed = _ssr_state(tmp_path / "full"), _ssr_state(cut)
    assert sorted(full) == sorted(resumed)
    for key, value in full.items():
        assert torch.allclose(resumed[key].double(), value.double(), atol=1e-6), key
