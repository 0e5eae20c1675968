"""A small pipeline on a local Ray: every phase's metrics reach MLflow (``file://`` store) and
Weights & Biases (offline) through Tune's own logger callbacks, and the console shows Tune,
raynas' progress and the result, not a line of a phase that does not run nor library chatter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from raynas.tune.pipeline import Pipeline

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.py"
TINY = {
    "supernet.iters": 40,
    "supernet.report_interval": 20,
    "search.num_candidates": 3,
    "search.eval_images": 8,
    "search.calib_batches": 1,
    "retrain.top_k": 1,
    "retrain.iters": 20,
    "retrain.report_interval": 10,
}
PHASES = ("supernet", "search", "retrain")
CHATTER = ("Loads checkpoint by", "token authentication", "Could not import OneDL",
           "MultiScaleDeformableAttention", "pkg_resources is deprecated",
           "per class results", "The prefix is not set")  # fmt: skip


def _wandb_history(run_file: Path) -> list[dict[str, Any]]:
    """The history rows of an offline W&B run file: LevelDB-log records (after a 7-byte W&B
    header; 32 KiB blocks; 7-byte record headers: crc, length, type) of wandb's protobufs."""
    from wandb.proto import wandb_internal_pb2

    data, pos, block, part, rows = run_file.read_bytes(), 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4 : pos + 6], "little"), data[pos + 6]
        part, pos = part + data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind in (1, 4):  # a full record, or the last chunk of one
            record = wandb_internal_pb2.Record.FromString(part)
            part = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json)
                             for i in record.history.item})  # fmt: skip
        elif kind == 0:
            break
    return rows


def _mlflow_runs(uri: str, experiment: str) -> list[Any]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return client.search_runs([found.experiment_id])


def test_every_phase_reaches_mlflow_and_wandb(
    tmp_path: Path, run_options: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mlruns, wandb_dir = (tmp_path / "mlruns").as_uri(), tmp_path / "wandb"
    wandb_dir.mkdir()
    loggers = [dict(type="mlflow", tracking_uri=mlruns),
               dict(type="wandb", mode="offline", dir=str(wandb_dir))]  # fmt: skip
    options = run_options({**TINY, **{f"{p}.loggers": loggers for p in PHASES}})
    Pipeline.create(QUICKSTART, str(tmp_path / "runs"), "tiny", options)
    # MLflow 3 refuses its file store unless asked for it (a database is its default now)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    cmd = [sys.executable, "-m", "raynas.cli", "resume", str(tmp_path / "runs/tiny")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]

    state = json.loads((tmp_path / "runs/tiny/pipeline.json").read_text())
    assert all(state["phases"][p]["done"] for p in (*PHASES, "report"))
    for phase in PHASES:
        assert f"[raynas] {phase}: starting" in out and f"[raynas] {phase}: done in" in out
    assert "[raynas] tse" not in out  # off in the quickstart: no line at all
    assert "Trial status" in out  # Tune's own table
    for line in CHATTER:
        assert line not in out, line

    runs = _mlflow_runs(mlruns, "tiny")
    by_phase: dict[str, list] = {}
    for run in runs:
        by_phase.setdefault(run.data.tags.get("raynas.phase"), []).append(run)
    assert {p: len(r) for p, r in by_phase.items()} == {"supernet": 1, "search": 3, "retrain": 1}
    for phase, phase_runs in by_phase.items():
        for run in phase_runs:
            assert 0 <= run.data.metrics["mIoU"] <= 100, (phase, run.data.metrics)
    assert by_phase["supernet"][0].data.metrics["training_iteration"] == 2  # both reports

    files = sorted((wandb_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 5, list(wandb_dir.rglob("*"))  # one W&B run per trial of 3 phases
    histories = [_wandb_history(f) for f in files]
    assert all(rows and all(0 <= r["mIoU"] <= 100 for r in rows) for rows in histories)
    # search trials report once; the supernet at 20 and 40; the retrain at 10, 20 and its test
    assert sorted(len(rows) for rows in histories) == [1, 1, 1, 2, 3]
    assert [r["training_iteration"] for r in max(histories, key=len)] == [1, 2, 3]
