"""The pipeline end to end on Ray (local), and its resume after SIGKILL of the driver."""

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

from raynas.tune.archive import Archive
from raynas.tune.trial import staging_dirs_of

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.py"
MARGIN = 3.0  # mIoU points the retrained subnet must gain over majority-class prediction


def _argv(options: dict[str, Any]) -> list[str]:
    return [f"{k}={_literal(v)}" for k, v in options.items()]


def _literal(v: Any) -> str:
    if isinstance(v, tuple):
        return "(" + ",".join(map(str, v)) + ")"
    return str(v)


SMALL_RUN = {
    "supernet.iters": 300,
    "supernet.report_interval": 150,
    "search.num_candidates": 6,
    "search.eval_images": 16,
    "search.calib_batches": 2,
    "retrain.top_k": 2,
    "retrain.iters": 200,
    "retrain.report_interval": 100,
    "retrain.scheduler": None,  # both top-k retrained to the end (halving: test_halving.py)
}


def _raynas(*args: str, **kw: Any) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-m", "raynas.cli", *args],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kw,
    )


def _finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out[-4000:]
    return out


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 300) -> None:
    """SIGKILLs the driver's whole process group once ``ready()`` holds."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, (
            f"pipeline ended before the kill:\n{proc.stdout.read()[-3000:]}"
        )
        assert time.time() < deadline, "the pipeline did not reach the kill point"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _frame(exp: Path):
    return Archive(exp).read().to_pandas()


@pytest.mark.slow  # the whole pipeline with TSE and a baseline, about 2 min on 2 cores
def test_pipeline_end_to_end(
    tmp_path: Path, small_options: dict[str, Any], run_options: Callable[..., dict[str, Any]]
) -> None:
    """The whole pipeline; the validation set is unreadable while anything selects
    (supernet, search), then back for the retrained models' report."""
    from mmseg.apis import inference_model, init_model

    from raynas.config import load_config, space_and_table
    from raynas.tune.pipeline import Pipeline

    # NSGA-II on mIoU and table latency; mmseg's FastSCNN retrained beside the found models
    # the top-k chosen by the 3 best candidates' selection mIoU after a short fine-tune (the
    # TSE phase's score='mIoU'); the smallest path evaluated first
    # 100 retrain iterations: best 16.2 val mIoU against the majority class's 9.5 (measured)
    run = {**SMALL_RUN, "search.cost": "latency_ms", "report.baselines": ["fastscnn"],
           "search.tse": dict(candidates=3, iters=10, schedule="poly", score="mIoU"),
           "retrain.iters": 100,
           "search.start_with": ["smallest"]}  # fmt: skip
    Pipeline.create(QUICKSTART, str(tmp_path), "e2e", run_options(run))
    root = Path(small_options["data_root"])
    hidden = [root / d / "val" for d in ("img_dir", "ann_dir")]
    for d in hidden:
        d.rename(d.with_name("val-hidden"))
    try:
        out = _finish(_raynas("resume", str(tmp_path / "e2e"), "--until", "search"))
    finally:
        for d in hidden:
            d.with_name("val-hidden").rename(d)
    state = json.loads((tmp_path / "e2e" / "pipeline.json").read_text())
    assert state["phases"]["search"]["done"] and "retrain" not in state["phases"]
    out += _finish(_raynas("resume", str(tmp_path / "e2e"), "--quiet"))
    exp = tmp_path / "e2e"
    state = json.loads((exp / "pipeline.json").read_text())
    assert all(state["phases"][p]["done"] for p in ("supernet", "search", "retrain", "report"))
    assert "[raynas] search:" in out and "eta" in out  # progress was shown

    frame = _frame(exp)
    search = frame[frame.phase == "search"]
    assert len(search) == 6 == search.trial_id.nunique()  # one row per evaluated candidate
    assert set(frame[frame.phase != "retrain"].split) == {"selection"}
    assert (search.latency_ms > 0).all()
    space, table = space_and_table(load_config(QUICKSTART, small_options))
    assert table(space.extreme(False)).flops in set(search.flops)  # start_with=['smallest']
    tse = frame[frame.phase == "tse"]
    assert len(tse) == 3 and set(tse.arch) <= set(search.arch)
    scores = {s["arch"]: s["finetune_mIoU"] for s in state["phases"]["tse"]["scores"]}
    assert len(scores) == 3 and all(0 <= v <= 100 for v in scores.values())
    assert dict(zip(tse.arch, tse.mIoU)) == pytest.approx(scores)  # rows carry the score
    assert all(s["tse"] > 0 for s in state["phases"]["tse"]["scores"])
    exports = [e for e in state["phases"]["retrain"]["exports"] if not e.get("baseline")]
    assert {e["arch"] for e in exports} <= set(scores)  # the top-k came from the re-ranked
    assert exports[0]["arch"] == max(scores, key=scores.get)  # the best fine-tuned first
    assert len(list((exp / "latency").glob("cpu-*-128x128.json"))) == 1  # the device's table
    final = frame[frame.phase == "retrain"].sort_values("iteration").groupby("trial_id").tail(1)
    assert set(final.split) == {"val"}  # the retrained models reported on val
    # top_k=2 Pareto-optimal candidates, fewer when one dominates the others
    names = [e["name"] for e in exports]
    assert 1 <= len(names) <= 2 and names == [f"subnet{i}" for i in range(len(names))]
    assert sorted(final.path) == ["baseline:fastscnn", *names]
    assert len(frame[frame.phase == "supernet"]) == 2 * 2  # largest+smallest at 2 reports
    assert not frame.duplicated(["phase", "trial_id", "iteration", "path"]).any()

    majority = state["phases"]["report"]["baselines"]["majority class"]
    best = state["phases"]["retrain"]["best"]
    assert best["mIoU"] > majority + MARGIN, (best, majority)
    assert best["name"].startswith("subnet")  # a baseline is never the found model
    text = (exp / "report/report.md").read_text()
    assert "Found models against hand-designed ones" in text and "| baseline:fastscnn |" in text
    assert (exp / "report/vs_baselines.png").is_file()
    assert "| model | torch_1t | onnxruntime_1t | torch_2t | onnxruntime_2t |" in text
    assert "Kendall tau" in text  # whether the backends order the models alike

    for f in (
        "report/pareto.png",
        "report/report.md",
        "best/subnet.py",
        "best/subnet.pth",
        "best/arch.yaml",
    ):
        assert (exp / f).is_file(), f
    # each checkpoint stored once, by Tune: none in the trials' mmengine work folders, and no
    # staging folder left behind
    assert not list(exp.rglob("work/**/*.pth"))
    assert len(list((exp / "supernet").rglob("checkpoint_*/checkpoint.pth"))) == 2
    staged = [p for i in set(frame.trial_id) for p in staging_dirs_of(i)]
    assert not staged, staged
    model = init_model(str(exp / "best/subnet.py"), str(exp / "best/subnet.pth"), device="cpu")
    img = next((Path(small_options["data_root"]) / "img_dir" / "val").glob("*.png"))
    pred = inference_model(model, str(img)).pred_sem_seg.data
    assert pred.shape[-2:] == (128, 128)

    report = subprocess.run(
        [sys.executable, "-m", "raynas.cli", "report", str(exp)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "Search Pareto front" in report and "majority class" in report


def _supernet_log(exp: Path) -> list[dict]:
    trial = next((exp / "supernet").glob("train_supernet_*"))
    return [json.loads(line) for line in (trial / "result.json").read_text().splitlines()]


def _state_saved_after_report(exp: Path, n: int) -> bool:
    """The supernet reported ``n`` times and Tune saved its experiment state since: a driver
    killed before that save restarts the trial from the checkpoint the last save knew of (the
    state is saved at most every 10 s, ``TUNE_GLOBAL_CHECKPOINT_S``)."""
    reports = sorted(p.stat().st_mtime for p in (exp / "archive").glob("supernet-*.parquet"))
    states = [p.stat().st_mtime for p in (exp / "supernet").glob("experiment_state-*.json")]
    return len(reports) >= n and bool(states) and max(states) > reports[n - 1]


@pytest.mark.slow  # two kills and resumes, about 75 s on 2 cores (benchmarks/chaos.py: 24 kills)
def test_resume_after_sigkill_in_supernet_and_in_search(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    run = {
        **SMALL_RUN,
        "supernet.iters": 300,
        "supernet.report_interval": 50,
        # one candidate at a time leaves the driver a free core and the kill below a margin
        # of six candidate evaluations (with 2 concurrent trials on 2 cores the driver may
        # process all results in one burst at the end of the phase)
        "search.num_candidates": 8,
        "search.max_concurrent": 1,
    }
    exp = tmp_path / "r"
    archive = Archive(exp)
    proc = _raynas(
        "run",
        str(QUICKSTART),
        "--storage",
        str(tmp_path),
        "--name",
        "r",
        "--cfg-options",
        *_argv(run_options(run)),
    )
    _kill_when(proc, lambda: _state_saved_after_report(exp, 2))

    proc = _raynas("resume", str(exp))
    _kill_when(proc, lambda: len(archive.files("search")) >= 2)  # mid-search
    state = json.loads((exp / "pipeline.json").read_text())
    assert state["phases"]["supernet"]["done"] and not state["phases"].get("search", {}).get(
        "done"
    )

    # retrain and report after a resumed search: test_pipeline_end_to_end
    out = _finish(_raynas("resume", str(exp), "--until", "search"))
    assert "supernet: done earlier, skipped" in out
    state = json.loads((exp / "pipeline.json").read_text())
    assert all(state["phases"][p]["done"] for p in ("supernet", "search"))

    # the supernet trial continued from its checkpoint, not from iteration 0
    log = _supernet_log(exp)
    restored = [r for r in log if r["iterations_since_restore"] < r["training_iteration"]]
    assert restored, "the supernet trial was never restored"
    first = restored[0]
    assert first["iter"] == 50 * first["training_iteration"]

    frame = _frame(exp)
    sup = frame[frame.phase == "supernet"]
    assert sorted(sup.iteration.unique()) == [1, 2, 3, 4, 5, 6]  # no gaps
    assert len(sup) == 12  # largest + smallest per report, no duplicates
    search = frame[frame.phase == "search"]
    assert len(search) == 8 == search.trial_id.nunique()
    assert not frame.duplicated(["phase", "trial_id", "iteration", "path"]).any()
    assert not list(exp.rglob("work/**/*.pth"))  # nor the resumed trial's starting checkpoint
    # the killed run's temporary checkpoint folder went when its trial resumed
    assert not [p for i in set(sup.trial_id) for p in staging_dirs_of(i)]
    # mmengine's losses (logged every 10 iterations): the killed run's up to the checkpoint it
    # resumed from were copied into the experiment folder before that checkpoint was reported
    logged = {r["iter"] for f in (exp / "supernet").rglob("vis_data/scalars.json")
              for r in map(json.loads, f.read_text().splitlines()) if "loss" in r}  # fmt: skip
    assert set(range(10, 301, 10)) <= logged, sorted(logged)


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (read from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.parametrize(  # SIGTERM takes the SIGINT path (same handler): slow run only
    ("sig", "delay_s"),
    [
        pytest.param(signal.SIGTERM, 2.0, marks=pytest.mark.slow),
        pytest.param(signal.SIGKILL, 2.0, marks=pytest.mark.slow),
        pytest.param(signal.SIGINT, 2.0, marks=pytest.mark.slow),
        # inside ray.init: its agents run before it returns
        pytest.param(signal.SIGKILL, 0.0, marks=pytest.mark.slow),
    ],
)
def test_no_trial_process_outlives_the_driver(
    sig: signal.Signals, delay_s: float, tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    run = {**SMALL_RUN, "supernet.iters": 2000, "supernet.report_interval": 1000}
    proc = _raynas("run", str(QUICKSTART), "--storage", str(tmp_path), "--name", "d",
                   "--cfg-options", *_argv(run_options(run)))  # fmt: skip
    deadline = time.time() + 120
    ray_procs = set()
    while not ray_procs:  # Ray's first worker or agent
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read()[-3000:]
        ray_procs = {p for p in _descendants(proc.pid) if "ray::" in _cmdline(p)}
        time.sleep(0.05 if delay_s == 0 else 0.5)
    tree = _descendants(proc.pid)
    time.sleep(delay_s)
    os.kill(proc.pid, sig)  # the driver only, as a terminal, a scheduler or the OOM killer would
    proc.wait(timeout=120)
    deadline = time.time() + 30
    while _alive(tree) and time.time() < deadline:
        time.sleep(0.5)
    survivors = {p: _cmdline(p) for p in _alive(tree)}
    for p in survivors:
        os.kill(p, signal.SIGKILL)
    assert not survivors, f"{signal.Signals(sig).name} of the driver left {survivors}"


def _cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
