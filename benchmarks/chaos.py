"""Chaos: a reduced pipeline killed at 20+ random moments over every phase, resumed each time.

Kills: SIGKILL of the driver at random delays after each phase starts (and right between
phases), SIGTERM and SIGINT (Ctrl-C) of the driver, and SIGKILL of a trial's worker process
(not the driver) in the middle of a supernet and of a retrain trial. After every driver death
no process of the local Ray instance may survive. Figures: runs completed, archive rows lost
and duplicated (against an uninterrupted run of the same config), iterations recomputed per
kill (from mmengine's per-attempt scalar logs), and, all phases at ``max_concurrent=1``,
whether the final archive and best model equal the uninterrupted run's.

Run:  python -m benchmarks.chaos [--kills 26] [--seed 0]      (slow: about 15-20 min)
Writes benchmarks/results/chaos-seed<SEED>.{json,md} and prints the table.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import torch

from benchmarks import harness

ROOT = harness.ROOT
RAY_MARKERS = ("raylet", "gcs_server", "ray::", "default_worker.py", "ray/dashboard")
SMALL = dict(
    supernet=dict(iters=300, report_interval=100, resources=dict(cpu=2), max_concurrent=1),
    search=dict(num_candidates=8, eval_images=16, calib_batches=2, max_concurrent=1,
                resources=dict(cpu=2), searcher=dict(type="nsga2", population_size=4, seed=0)),
    retrain=dict(top_k=2, iters=200, report_interval=100, max_concurrent=1, resources=dict(cpu=2)),
)  # fmt: skip


def ray_processes() -> list[tuple[int, str]]:
    """Processes of any local Ray instance (pid, command line)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(m in args for m in RAY_MARKERS):
            found.append((int(proc.name), args.strip()[:120]))
    return found


def wait_ray_gone(timeout: float = 30.0) -> tuple[float, list[tuple[int, str]]]:
    """Seconds until no Ray process is left, and the survivors (killed) after ``timeout``."""
    start = time.time()
    while time.time() - start < timeout:
        if not ray_processes():
            return time.time() - start, []
        time.sleep(0.25)
    survivors = ray_processes()
    for pid, _ in survivors:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return time.time() - start, survivors


class Driver:
    """A ``raynas`` driver process whose output lines are time-stamped as they arrive."""

    def __init__(self, args: list[str], log: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "raynas.cli", *args], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: list[tuple[float, str]] = []
        self.log = log.open("a")
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append((time.time(), line.rstrip()))
            self.log.write(line)
            self.log.flush()

    def seen(self, text: str) -> float | None:
        return next((t for t, line in self.lines if text in line), None)

    def phase(self) -> str:
        started = [line for _, line in self.lines if line.endswith(": starting")]
        return started[-1].split()[1].rstrip(":") if started else "start"


def trial_worker_pid() -> int | None:
    """The Ray worker process running a trial (its title names the trainable's actor)."""
    for pid, args in ray_processes():
        if "ray::ImplicitFunc" in args or "ray::_Inner" in args:
            return pid
    return None


def plan(kills: int, seed: int, durations: dict[str, float]) -> list[dict]:
    """Kill slots in pipeline order: the phase, the delay after it starts, signal and target.

    Random SIGKILLs of the driver, shared out over the phases by their length, plus one each
    of: SIGTERM and SIGKILL of a trial worker in the supernet, a SIGKILL right after the
    supernet is done, SIGKILL of a trial worker and SIGINT in the retrain phase.
    """
    rng = random.Random(seed)
    slots = []
    for phase, share in (("supernet", 0.4), ("search", 0.2), ("retrain", 0.3), ("report", 0.1)):
        n = max(1, round(kills * share))
        # within the first 60% of the phase: a resumed phase ends sooner than a fresh one
        delays = sorted(rng.uniform(0.5, max(1.0, 0.6 * durations[phase])) for _ in range(n))
        slots += [dict(phase=phase, delay=d, how="SIGKILL", target="driver") for d in delays]
    specials = [
        dict(phase="supernet", delay=durations["supernet"] / 3, how="SIGKILL", target="worker"),
        dict(phase="supernet", delay=durations["supernet"] / 2, how="SIGTERM", target="driver"),
        dict(phase="search", delay=0.0, how="SIGKILL", target="between"),
        dict(phase="retrain", delay=durations["retrain"] / 3, how="SIGKILL", target="worker"),
        dict(phase="retrain", delay=durations["retrain"] / 4, how="SIGINT", target="driver"),
    ]
    return sorted(specials + slots, key=lambda s: PHASES.index(s["phase"]))


def run_reference(config: Path, storage: Path, log: Path) -> dict:
    start = time.time()
    driver = Driver(["run", str(config), "--storage", str(storage), "--name", "reference"], log)
    code = driver.proc.wait()
    times = {}
    for phase in ("supernet", "search", "retrain", "report"):
        t0, t1 = driver.seen(f"{phase}: starting"), driver.seen(f"{phase}: done in")
        times[phase] = (t1 - t0) if t0 and t1 else 1.0
    wait_ray_gone()
    return dict(code=code, wall_s=time.time() - start, durations=times)


def chaos(config: Path, storage: Path, slots: list[dict], log: Path) -> dict:
    exp = storage / "chaos"
    events, attempt, failures = [], 0, 0
    pending = list(slots)
    while True:
        args = ["resume", str(exp)] if (exp / "pipeline.json").exists() else [
            "run", str(config), "--storage", str(storage), "--name", "chaos"]  # fmt: skip
        driver = Driver(args, log)
        attempt += 1
        struck = False
        while driver.proc.poll() is None and not struck:
            struck = _next_slot(driver, pending, events)
        driver.proc.wait()
        if _report_done(exp):
            events += [dict(s, done="skipped: run finished") for s in pending]
            break
        failures += not struck
        if failures >= 3:
            events.append(dict(phase="?", delay=0, how="-", target="-", done="driver failed"))
            break
    return dict(attempts=attempt, events=events, exp=str(exp))


def _next_slot(driver: Driver, pending: list[dict], events: list[dict]) -> bool:
    """Acts on the first pending slot when its moment comes; True once the driver is hit."""
    if not pending:
        time.sleep(0.2)
        return False
    slot = pending[0]
    between = slot["target"] == "between"
    marker = f"{_before(slot['phase'])}: done in" if between else f"{slot['phase']}: starting"
    t0 = driver.seen(marker)
    late = between and t0 is not None and time.time() - t0 > 1.0
    if _passed(driver, slot["phase"]) or late:
        events.append(dict(slot, done="skipped: phase over"))
        pending.pop(0)
        return False
    if t0 is None or time.time() < t0 + slot["delay"]:
        time.sleep(0.05)
        return False
    pending.pop(0)
    event = _strike(driver, slot)
    events.append(event)
    return event["target"] != "worker"


PHASES = ("supernet", "search", "retrain", "report")


def _before(phase: str) -> str:
    return PHASES[PHASES.index(phase) - 1]


def _passed(driver: Driver, phase: str) -> bool:
    """The phase is over in this attempt: done earlier, or a later phase has started."""
    later = PHASES[PHASES.index(phase) + 1 :]
    return bool(driver.seen(f"{phase}: done earlier")) or any(
        driver.seen(f"{p}: starting") for p in later
    )


def _report_done(exp: Path) -> bool:
    if not (exp / "pipeline.json").exists():
        return False
    state = json.loads((exp / "pipeline.json").read_text())
    return bool(state["phases"].get("report", {}).get("done"))


def _strike(driver: Driver, slot: dict) -> dict:
    event = dict(slot, phase_seen=driver.phase(), t=time.time())
    if slot["target"] == "worker":
        deadline = time.time() + 60  # a trial may still be starting (or being restored)
        while (pid := trial_worker_pid()) is None and time.time() < deadline:
            if driver.proc.poll() is not None:
                break
            time.sleep(0.2)
        event["worker_pid"] = pid
        if pid is None:
            event["done"] = "no trial worker found"
            return event
        os.kill(pid, signal.SIGKILL)
        event["done"] = "worker killed; Tune retries the trial"
        return event
    driver.proc.send_signal(getattr(signal, slot["how"]))
    try:
        driver.proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        driver.proc.kill()
        driver.proc.wait()
    gone_s, survivors = wait_ray_gone()
    event.update(done="driver killed", exit=driver.proc.returncode, ray_gone_s=gone_s,
                 survivors=survivors)  # fmt: skip
    return event


def archive(exp: Path) -> pd.DataFrame:
    return pd.read_parquet(exp / "archive")


def _keys(frame: pd.DataFrame) -> pd.Series:
    return (
        frame["phase"]
        + "|"
        + frame["iteration"].astype(str)
        + "|"
        + frame["path"].astype(str)
        + "|"
        + frame["arch"].astype(str)
    )


def compare(reference: Path, chaos_exp: Path) -> dict:
    ref, got = archive(reference), archive(chaos_exp)
    ref_keys, got_keys = _keys(ref), _keys(got)
    trial_keys = got["trial_id"] + "|" + got_keys
    lost = sorted(set(ref_keys) - set(got_keys))
    duplicated = int(trial_keys.duplicated().sum())
    merged = ref.assign(key=ref_keys).merge(
        got.assign(key=got_keys), on="key", suffixes=("_r", "_c")
    )
    miou_equal = bool(((merged["mIoU_r"] - merged["mIoU_c"]).abs().fillna(0) < 1e-9).all())
    best = [torch.load(p / "best" / "subnet.pth", weights_only=True)["state_dict"]
            for p in (reference, chaos_exp)]  # fmt: skip
    best_equal = best[0].keys() == best[1].keys() and all(
        torch.equal(best[0][k], best[1][k]) for k in best[0]
    )
    return dict(
        reference_rows=len(ref), chaos_rows=len(got), lost=len(lost), lost_keys=lost[:10],
        extra=len(set(got_keys) - set(ref_keys)), duplicated=duplicated,
        archive_equal=bool(not lost and len(ref) == len(got) and miou_equal),
        miou_equal_on_common_rows=miou_equal, best_model_equal=bool(best_equal),
    )  # fmt: skip


def recomputed_iterations(exp: Path) -> list[int]:
    """Per interrupted attempt of a training trial: iterations run past the checkpoint that
    the next attempt resumed from (mmengine's scalars every 10 iterations, one folder each)."""
    out = []
    for phase in ("supernet", "retrain"):
        for work in (exp / phase).glob("*/work"):
            attempts = []
            for scalars in sorted(work.glob("*/vis_data/scalars.json")):
                iters = [json.loads(x)["iter"] for x in scalars.read_text().splitlines()
                         if '"loss"' in x]  # fmt: skip
                if iters:
                    attempts.append((min(iters), max(iters)))
            for (_, reached), (first, _) in itertools.pairwise(attempts):
                out.append(max(0, reached - (first - 10)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=26)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", type=Path, help="keep the experiments in this folder")
    args = ap.parse_args()
    from raynas.data.synth import SynthSpec, generate

    if ray_processes():
        sys.exit(f"another Ray instance runs here: {ray_processes()[:3]}; stop it first")
    tmp = Path(args.keep or tempfile.mkdtemp(prefix="raynas-chaos-"))
    data = generate(tmp / "synthseg", SynthSpec(num_train=200, num_val=40), overwrite=True)
    config = tmp / "chaos.py"
    config.write_text(
        f"_base_ = ['{ROOT / 'configs/quickstart.py'}']\n"
        + "".join(
            f"{s}_dataloader = dict(dataset=dict(data_root='{data}', synth=None))\n"
            for s in ("train", "val", "test")
        )
        + f"tune_cfg = {SMALL!r}\n"
    )
    storage, log = tmp / "runs", harness.CACHE / "chaos.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    start = time.time()
    ref = run_reference(config, storage, log)
    print(f"reference run: exit {ref['code']}, {ref['wall_s']:.0f} s, phases {ref['durations']}")
    slots = plan(args.kills, args.seed, ref["durations"])
    result = chaos(config, storage, slots, log)
    partial = harness.CACHE / "chaos-partial.json"  # kept if what follows fails
    partial.write_text(json.dumps(result, indent=2, default=str))
    result["compare"] = compare(storage / "reference", storage / "chaos")
    result["recomputed"] = recomputed_iterations(storage / "chaos")
    result["reference"] = ref
    result["completed"] = _report_done(storage / "chaos")
    result["wall_s"] = time.time() - start
    write(result, args)
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)


def write(result: dict, args: argparse.Namespace) -> None:
    events = result["events"]
    struck = [
        e
        for e in events
        if e.get("done") in ("driver killed", "worker killed; Tune retries the trial")
    ]
    survivors = sum(len(e.get("survivors", [])) for e in events)
    rec, cmp = result["recomputed"], result["compare"]
    lines = [
        f"kills planned {len(events)}, delivered {len(struck)} over {result['attempts']} driver "
        f"starts; seed {args.seed}; wall {result['wall_s']:.0f} s "
        f"(uninterrupted run {result['reference']['wall_s']:.0f} s)",
        "",
        "| kills | completed | rows lost | rows duplicated | extra rows | recomputed iterations "
        "per kill (max / mean) | Ray processes outliving the driver | archive equal | "
        "best model equal |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| {len(struck)} | {'100%' if result['completed'] else 'NO'} | {cmp['lost']} | "
        f"{cmp['duplicated']} | {cmp['extra']} | {max(rec, default=0)} / "
        f"{sum(rec) / max(1, len(rec)):.0f} | {survivors} | {cmp['archive_equal']} | "
        f"{cmp['best_model_equal']} |",
        "",
        "| # | phase planned | phase seen | delay s | signal | target | outcome | Ray gone s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, e in enumerate(events):
        gone = f"{e['ray_gone_s']:.1f}" if "ray_gone_s" in e else ""
        lines.append(f"| {i} | {e['phase']} | {e.get('phase_seen', '')} | {e['delay']:.1f} | "
                     f"{e['how']} | {e['target']} | {e['done']} | {gone} |")  # fmt: skip
    harness.write(
        f"chaos-seed{args.seed}", json.loads(json.dumps(result, default=str)), "\n".join(lines)
    )


if __name__ == "__main__":
    main()
