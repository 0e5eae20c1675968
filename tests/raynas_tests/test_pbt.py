"""Population Based Training on a real Tune run of the supernet phase: after an exploit, the
trial continues from the donor's checkpoint with its mutated learning rate in force (the LR
schedule's base equals the mutated value; the current lr is that base times the schedule's
factor, the same factor the donor has at that iteration)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
LR = "optim_wrapper.optimizer.lr"


@pytest.mark.slow  # two supernet trials, 4 reports, exploits between them: ~3 min
def test_pbt_exploit_puts_the_mutated_lr_in_force(tmp_path: Path, run_options: Any) -> None:
    from ray.tune import ExperimentAnalysis

    from raynas.tune.pipeline import Pipeline

    run = {"supernet.iters": 40, "supernet.report_interval": 10, "supernet.num_samples": 1,
           "supernet.param_space": {"cfg_options": {LR: dict(grid=[0.0005, 0.02])}},
           "supernet.scheduler": dict(type="pbt", perturbation_interval=1, quantile_fraction=0.5,
                                      resample_probability=1.0, synch=True,
                                      hyperparam_mutations={"cfg_options": {LR: [0.003, 0.007]}}),
           "supernet.max_concurrent": 2, "supernet.resources": dict(cpu=1, threads=1)}  # fmt: skip
    pipe = Pipeline.create(ROOT / "configs/quickstart.py", str(tmp_path), "pbt", run_options(run))
    pipe.run(until="supernet")
    trials = ExperimentAnalysis(str(tmp_path / "pbt/supernet")).trials
    assert len(trials) == 2
    lasts = [t.last_result for t in trials]
    for trial, last in zip(trials, lasts, strict=True):
        assert last["iter"] == 40
        assert last["lr_base"] == pytest.approx(trial.config["cfg_options"][LR], rel=1e-6)
    assert any(t.config["cfg_options"][LR] in (0.003, 0.007) for t in trials)  # exploited
    # both at the end of the same schedule: the same factor of their own base
    ratios = [last["lr"] / last["lr_base"] for last in lasts]
    assert ratios[0] == pytest.approx(ratios[1], rel=1e-6) and 0 < ratios[0] < 1
