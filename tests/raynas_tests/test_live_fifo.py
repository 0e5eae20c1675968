"""LiveFIFOScheduler in a real Tune run: Tune's FIFO order, retried trials re-chosen, and a
choice made among the unfinished trials only."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # 12 Tune trials, ~20 s (the tracking test
# runs the scheduler in the default tier)


def test_live_fifo_runs_every_trial_in_order_among_live_trials_only(
    tmp_path: Path, in_process_ray: None
) -> None:
    import ray
    from ray import tune

    from raynas.tune.factories import build_trial_scheduler
    from raynas.tune.live_fifo import LiveFIFOScheduler

    def trial(config: dict) -> None:  # nested: Ray's workers get it by value
        marker = Path(config["dir"]) / f"failed-{config['i']}"
        if config["i"] == 3 and not marker.exists():  # one trial fails once, then is retried
            marker.touch()
            raise RuntimeError("first attempt fails")
        tune.report({"i": config["i"]})

    class Watch(tune.Callback):
        def __init__(self) -> None:
            self.started: list[int] = []
            self.live: list[int] = []

        def on_trial_start(self, iteration: int, trials: list, trial, **info) -> None:
            self.started.append(trial.config["i"])
            self.live.append(scheduler.live_trials)

    n, scheduler, watch = 12, build_trial_scheduler(None), Watch()
    assert isinstance(scheduler, LiveFIFOScheduler)
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    grid = tune.Tuner(
        tune.with_resources(trial, {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(n))), "dir": str(tmp_path)},
        tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=2),
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "runs"),
            verbose=0,
            callbacks=[watch],
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    ).fit()
    assert sorted(r.metrics["i"] for r in grid) == list(range(n)) and not grid.errors
    first = [i for k, i in enumerate(watch.started) if i not in watch.started[:k]]
    # first starts in the order the trials were added (2 start at once: either order)
    assert sorted(first) == list(range(n))
    assert all(abs(pos - i) <= 1 for pos, i in enumerate(first)), first
    assert watch.started.count(3) == 2  # the failed trial was chosen again and completed
    # chosen among the unfinished trials: a handful at any time, not the 12 of the run
    assert max(watch.live) <= 6 and scheduler.live_trials == 0
