"""Population Based Training on a real Tune run of the supernet phase: after an exploit, the
trial continues from the donor's checkpoint with its mutated learning rate in force (the LR
schedule's base equals the mutated value; the current lr is that base times the schedule's
factor, the same factor the donor has at that iteration)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
LR = "optim_wrapper.optimizer.lr"


@pytest.mark.slow  # two supernet trials, 4 reports, exploits between them: ~3 min
def test_pbt_exploit_puts_the_mutated_lr_in_force(tmp_path: Path, run_options: Any) -> None:
    from raynas.tune.pipeline import Pipeline

    run = {"supernet.iters": 40, "supernet.report_interval": 10, "supernet.num_samples": 1,
           "supernet.param_space": {"cfg_options": {LR: dict(grid=[0.0005, 0.02])}},
           "supernet.scheduler": dict(type="pbt", perturbation_interval=1, quantile_fraction=0.5,
                                      resample_probability=1.0, synch=True,
                                      hyperparam_mutations={"cfg_options": {LR: [0.003, 0.007]}}),
           "supernet.max_concurrent": 2, "supernet.resources": dict(cpu=1, threads=1)}  # fmt: skip
    pipe = Pipeline.create(ROOT / "configs/quickstart.py", str(tmp_path), "pbt", run_options(run))
    pipe.run(until="supernet")
    rows = {}  # each trial's reports, as Tune wrote them (with the config of each)
    for result in sorted((tmp_path / "pbt/supernet").glob("train_supernet_*/result.json")):
        lines = [json.loads(x) for x in result.read_text().splitlines()]
        rows[result.parent.name] = {r["iter"]: r for r in lines}
    assert len(rows) == 2
    mutated = 0
    for reports in rows.values():
        for r in reports.values():  # the base in force is the config's, before and after exploit
            assert r["lr_base"] == pytest.approx(r["config"]["cfg_options"][LR], rel=1e-6)
        mutated += reports[40]["config"]["cfg_options"][LR] in (0.003, 0.007)
    assert mutated >= 1  # PBT exploited and mutated a trial
    # at the same iteration both trials are at the same point of the schedule: the current lr
    # is each base times the same factor
    a, b = [r[30]["lr"] / r[30]["lr_base"] for r in rows.values()]
    assert a == pytest.approx(b, rel=1e-6) and 0 < a < 1
