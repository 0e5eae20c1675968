"""Successive halving (``tune_cfg.retrain.scheduler=dict(type='successive_halving')``) on real
Tune runs: the budget fixed in advance, the best kept at every rung, a paused trial resumed
from its checkpoint, and a run killed mid-way that resumes to the same pick (Tune restores no
scheduler state: the decisions are read back from their file)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from raynas.tune.halving import budget, rungs

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]

# Six trials whose score at report t is quality * t: the order never changes, so the kept set
# at each rung is known; each report sleeps `pace` s and checkpoints its step.
SCRIPT = textwrap.dedent("""
    import json, os, sys, tempfile, time
    from pathlib import Path
    import ray
    from ray import tune
    from raynas.tune.halving import SuccessiveHalving

    out, pace = Path(sys.argv[1]), float(sys.argv[2])
    state = out / "halving.json"

    class Store:
        def write(self, text):
            state.write_text(text)

        def read(self):
            return state.read_text() if state.exists() else None

    def train(config):
        ckpt, start = tune.get_checkpoint(), 0
        if ckpt:
            start = json.loads((Path(ckpt.path) / "s.json").read_text())["step"]
        for step in range(start + 1, 10):
            time.sleep(pace)
            with tempfile.TemporaryDirectory() as d:
                (Path(d) / "s.json").write_text(json.dumps({"step": step}))
                with open(out / "log.txt", "a") as f:
                    f.write(f"{config['q']} {step}\\n")
                tune.report({"mIoU": config["q"] * step, "step": step},
                            checkpoint=tune.Checkpoint.from_directory(d))

    sched = SuccessiveHalving(6, max_t=9, eta=3, grace=1, store=Store())
    ray.init(num_cpus=1, include_dashboard=False)
    exp = str(out / "exp")
    if tune.Tuner.can_restore(exp):
        tuner = tune.Tuner.restore(exp, trainable=train, resume_unfinished=True,
                                   resume_errored=True)  # its scheduler: as first pickled
    else:
        tuner = tune.Tuner(train, param_space={"q": tune.grid_search([3, 1, 6, 2, 5, 4])},
                           tune_config=tune.TuneConfig(scheduler=sched),
                           run_config=tune.RunConfig(storage_path=str(out), name="exp",
                                                     verbose=0))
    grid = tuner.fit()
    best = max((r for r in grid if r.metrics["step"] == 9), key=lambda r: r.metrics["mIoU"])
    print("PICK", best.config["q"], flush=True)
""")


def test_the_budget_is_fixed_in_advance() -> None:
    assert rungs(9, 3, 1) == [1, 3]
    assert budget(6, 9, 3, 1) == (6 * 1 + 2 * 2 + 1 * 6, [2, 1])  # 16 reports, 1.78 trainings
    assert budget(6, 16, 2, 2)[0] == 6 * 2 + 3 * 2 + 2 * 4 + 1 * 8  # 34 reports, 2.1 trainings


def _run(out: Path, pace: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(out), str(pace)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip


def _output(proc: subprocess.Popen, timeout: float = 300) -> str:
    """The run's output; its whole process group killed if it does not end in time."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, out[-3000:]
    return out


def _trained(out: Path) -> dict[int, int]:
    steps: dict[int, set] = {}
    for q, step in (line.split() for line in (out / "log.txt").read_text().splitlines()):
        steps.setdefault(int(q), set()).add(int(step))
    return {q: max(s) for q, s in steps.items()}


def test_halving_keeps_the_best_at_each_rung_on_a_real_tune_run(tmp_path: Path) -> None:
    out = _output(_run(tmp_path, 0.0))
    assert "PICK 6" in out
    # reports trained: all six to rung 1, the best two (6, 5) to rung 3, the best (6) to 9
    assert _trained(tmp_path) == {3: 1, 1: 1, 2: 1, 4: 1, 5: 3, 6: 9}
    state = json.loads((tmp_path / "halving.json").read_text())
    assert [len(state["kept"][r]) for r in ("1", "3")] == [2, 1]
    assert sum(1 for _ in (tmp_path / "log.txt").read_text().splitlines()) == 16  # budget()


@pytest.mark.slow  # two Ray starts, ~1 min
def test_a_run_killed_mid_way_resumes_to_the_same_pick(tmp_path: Path) -> None:
    proc = _run(tmp_path, 0.5)
    deadline = time.time() + 240
    while not (tmp_path / "halving.json").is_file() or '"1":' not in json.loads(
        (tmp_path / "halving.json").read_text()
    )["kept"].__repr__().replace("'", '"'):
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        time.sleep(0.2)
    time.sleep(1.0)  # a kept trial is training past rung 1
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    out = _output(_run(tmp_path, 0.0))
    assert "PICK 6" in out
    trained = _trained(tmp_path)
    assert trained[6] == 9 and all(trained[q] == 1 for q in (1, 2, 3, 4)) and trained[5] <= 3


@pytest.mark.slow  # the quickstart with 6 candidates halved, ~4 min on 2 cores
def test_retrain_phase_halves_the_top_six(tmp_path: Path, run_options: Any) -> None:
    from raynas.tune.pipeline import Pipeline

    run = {"supernet.iters": 200, "supernet.report_interval": 100, "search.num_candidates": 12,
           "search.eval_images": 8, "search.calib_batches": 1, "retrain.top_k": 6,
           "retrain.iters": 90, "retrain.report_interval": 10,
           "retrain.scheduler": dict(type="successive_halving", eta=3, grace=1)}  # fmt: skip
    quick = ROOT / "configs/quickstart.py"
    Pipeline.create(quick, str(tmp_path), "sh", run_options(run))
    proc = subprocess.run([sys.executable, "-m", "raynas.cli", "resume", str(tmp_path / "sh")],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    state = json.loads((tmp_path / "sh/pipeline.json").read_text())
    retrain = state["phases"]["retrain"]
    assert len(retrain["exports"]) == 6
    trained = {n: max(int(i) for i in s) for n, s in retrain["halving"]["scores"].items()}
    assert sorted(trained.values()) == [10, 10, 10, 10, 30, 90]  # 5 of 6 stopped early
    assert retrain["halving"]["budget_iters"] == sum(trained.values()) == 160  # 1.78 x 90
    assert trained[retrain["best"]["name"]] == 90
    report = (tmp_path / "sh/report/report.md").read_text()
    assert "## Retrain: successive halving" in report and "search's order alone" in report
