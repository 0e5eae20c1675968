"""A pipeline phase on a multi-node Ray cluster simulated on this machine
(``ray.cluster_utils.Cluster``: a head and 2 worker nodes as separate raylets, each advertising
one fake GPU; no CUDA is used), sharing one storage folder; a worker node is removed while
trials run on it and the phase still completes from the trials' checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from raynas.tune.archive import Archive

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # a 3-raylet cluster, about 4 min
ROOT = Path(__file__).resolve().parents[2]


def test_trials_spread_over_nodes_and_survive_a_node_removal(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    from ray.cluster_utils import Cluster

    from raynas.tune.pipeline import Pipeline

    # one fake GPU per worker node and one per trial: each trial lands on its own node
    seeds = {"cfg_options": {"randomness.seed": {"grid": [0, 1]}}}  # 2 trials
    supernet = dict(iters=60, report_interval=20, max_concurrent=2, resources=dict(cpu=1, gpu=1),
                    param_space=seeds)  # fmt: skip
    opts = run_options({"supernet": supernet})
    Pipeline.create(ROOT / "configs" / "quickstart.py", str(tmp_path), "mn", opts)
    exp = tmp_path / "mn"
    cluster = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1))
    nodes = [cluster.add_node(num_cpus=2, num_gpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "raynas.cli", "resume", str(exp), "--until", "supernet",
             "--address", cluster.address, "--quiet"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.time() + 600
        while len(hosts := _trial_nodes(exp)) < 2:  # both trials reported (and checkpointed)
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            assert time.time() < deadline, "no report of both trials"
            time.sleep(0.5)
        assert len(set(hosts.values())) == 2  # the two trials ran on different nodes
        cluster.remove_node(nodes[0])  # the trial there dies; Tune retries it elsewhere
        out, _ = proc.communicate(timeout=900)
        assert proc.returncode == 0, out[-4000:]
    finally:
        cluster.shutdown()
    state = json.loads((exp / "pipeline.json").read_text())["phases"]["supernet"]
    assert state["done"]
    frame = Archive(exp).read("supernet").to_pandas()
    assert not frame.duplicated(["trial_id", "iteration", "path"]).any()
    for _, rows in frame.groupby("trial_id"):  # largest + smallest at iterations 20, 40, 60
        assert sorted(set(rows.iteration)) == [1, 2, 3] and len(rows) == 6
    moved = []  # the trial of the removed node failed there and went on elsewhere
    for trial in (exp / "supernet").glob("train_supernet_*"):
        lines = (trial / "result.json").read_text().splitlines()
        nodes = [json.loads(line)["node_id"] for line in lines]
        if len(set(nodes)) > 1:
            moved.append(trial)
            assert (trial / "error.txt").is_file() and nodes[0] == hosts[trial.name]
            assert [json.loads(line)["iter"] for line in lines] == [20, 40, 60]
    assert len(moved) == 1


def _trial_nodes(exp: Path) -> dict[str, str]:
    """The Ray node each supernet trial first reported from."""
    out = {}
    for trial in (exp / "supernet").glob("train_supernet_*"):
        result = trial / "result.json"
        lines = result.read_text().splitlines() if result.is_file() else []
        if lines and list(trial.glob("checkpoint_*")):
            out[trial.name] = json.loads(lines[0])["node_id"]
    return out
