"""The documented cluster route on a real local head: ``ray start --head`` on loopback, the
pipeline submitted with ``ray job submit --working-dir``, the job stopped mid-way, and the
experiment resumed by a second submit, to the end."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # a head, two jobs: about 3 min on 2 cores
ROOT = Path(__file__).resolve().parents[2]
TINY = {"supernet.iters": 60, "supernet.report_interval": 20, "search.num_candidates": 3,
        "search.eval_images": 8, "search.calib_batches": 1, "retrain.top_k": 1,
        "retrain.iters": 20, "retrain.report_interval": 10}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, **kw: Any) -> subprocess.CompletedProcess:
    """The ``ray`` CLI; job commands send the head's token (Ray 2.60 turns token authentication
    on for a head started with ``ray start``; the token is in ``~/.ray/auth_token``)."""
    ray = Path(sys.executable).with_name("ray")
    kw.setdefault("env", dict(os.environ, RAY_AUTH_MODE="token"))
    return subprocess.run([str(ray), *args], capture_output=True, text=True, timeout=300, **kw)


def _submit(dashboard: str, *raynas_args: str) -> str:
    deadline = time.time() + 120
    while True:  # a head just started (on a busy machine) may not have its job agent yet
        out = _ray("job", "submit", "--address", dashboard, "--working-dir", str(ROOT),
                   "--no-wait", "--", "raynas", *raynas_args)  # fmt: skip
        if "No available agent" not in out.stdout + out.stderr or time.time() > deadline:
            break
        time.sleep(5)
    assert out.returncode == 0, out.stdout + out.stderr
    return re.search(r"raysubmit_\w+", out.stdout + out.stderr).group(0)


def _status(dashboard: str, job: str) -> str:
    out = _ray("job", "status", "--address", dashboard, job)
    text = out.stdout + out.stderr
    # "Status for job 'X': RUNNING", "Job 'X' succeeded", "Job 'X' was stopped", ...
    found = re.search(r"\b(pending|running|stopping|stopped|succeeded|failed)\b", text, re.I)
    return found[0].upper() if found else f"unknown ({text.strip()[-300:]})"


def _wait(dashboard: str, job: str, until: set[str], timeout: float = 900) -> str:
    deadline = time.time() + timeout
    while (status := _status(dashboard, job)) not in until:
        assert time.time() < deadline, f"job {job} still {status}"
        time.sleep(2)
    return status


def test_submit_stop_and_resume_on_a_local_head(tmp_path: Path, run_options: Any) -> None:
    port, dash = _free_port(), _free_port()
    dashboard = f"http://127.0.0.1:{dash}"
    env = dict(os.environ, RAY_ADDRESS=f"127.0.0.1:{port}", RAY_AUTH_MODE="token")
    started = _ray("start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                   "--num-cpus=2", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                   f"--dashboard-port={dash}", env=env)  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        opts = [f"{k}={v}".replace(" ", "") for k, v in run_options(TINY).items()]
        exp = tmp_path / "runs" / "job"
        job = _submit(dashboard, "run", "configs/quickstart.py", "--address", "auto",
                      "--storage", str(tmp_path / "runs"), "--name", "job", "--quiet",
                      "--cfg-options", *opts)  # fmt: skip
        deadline = time.time() + 600
        while not list((exp / "archive").glob("supernet-*.parquet")):  # its first report
            assert _status(dashboard, job) in ("PENDING", "RUNNING"), _ray(
                "job", "logs", "--address", dashboard, job).stdout[-3000:]  # fmt: skip
            assert time.time() < deadline, "the supernet never reported"
            time.sleep(1)
        assert _ray("job", "stop", "--address", dashboard, job).returncode == 0
        assert _wait(dashboard, job, {"STOPPED", "FAILED", "SUCCEEDED"}) == "STOPPED"
        state = json.loads((exp / "pipeline.json").read_text())["phases"]
        assert not state.get("supernet", {}).get("done")
        again = _submit(dashboard, "resume", str(exp), "--address", "auto", "--quiet")
        status = _wait(dashboard, again, {"STOPPED", "FAILED", "SUCCEEDED"})
        logs = _ray("job", "logs", "--address", dashboard, again).stdout
        assert status == "SUCCEEDED", logs[-4000:]
        assert "restoring the interrupted Tune experiment" in logs
        state = json.loads((exp / "pipeline.json").read_text())["phases"]
        assert all(state[p]["done"] for p in ("supernet", "search", "retrain", "report"))
        assert (exp / "best" / "subnet.pth").is_file()
    finally:
        _ray("stop", "--force", env=env)
