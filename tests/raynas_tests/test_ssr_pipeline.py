"""``raynas run`` with ``search=dict(type='ssr')`` at reduced size: supernet -> SSR searches as
Tune trials (one per FLOPs target) -> export -> retrain -> report; the validation set is
unreadable while SSR selects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from raynas.tune.archive import Archive

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[2]

RUN = {
    "supernet.iters": 100,
    "supernet.report_interval": 100,
    "search.ssr": dict(iters=12, shrink_interval=4, arch_optimizer=dict(lr=0.5)),
    "search.param_space": dict(ssr=dict(target_flops=dict(grid=[25e6, 60e6]))),
    "retrain.top_k": 2,
    "retrain.iters": 60,
    "retrain.report_interval": 60,
}


@pytest.mark.slow  # a whole reduced SSR pipeline (2 SSR trials, export, retrain), ~3 min
def test_ssr_pipeline_end_to_end(
    tmp_path: Path, small_options: dict[str, Any], run_options: Callable[..., dict[str, Any]]
) -> None:
    from raynas.tune.pipeline import Pipeline

    opts = run_options(RUN)
    Pipeline.create(ROOT / "configs" / "ssr_quickstart.py", str(tmp_path), "ssr", opts)
    exp, root = tmp_path / "ssr", Path(small_options["data_root"])
    hidden = [root / d / "val" for d in ("img_dir", "ann_dir")]
    for d in hidden:
        d.rename(d.with_name("val-hidden"))
    try:
        _resume(exp, "--until", "search")
    finally:
        for d in hidden:
            d.with_name("val-hidden").rename(d)
    _resume(exp)
    state = json.loads((exp / "pipeline.json").read_text())
    assert all(state["phases"][p]["done"] for p in ("supernet", "search", "retrain", "report"))

    frame = Archive(exp).read().to_pandas()
    search = frame[frame.phase == "search"]
    assert search.trial_id.nunique() == 2 and set(search.split) == {"selection"}
    for _, rows in search.groupby("trial_id"):  # a row per shrink step, the last the candidate
        assert list(rows.sort_values("iteration").path) == ["ssr-step"] * 2 + ["candidate"]
        proxies = [json.loads(p) for p in rows.proxies]
        assert all({"relaxed_mIoU", "entropy_ops", "expected_mflops", "decided_at"} <= set(p)
                   for p in proxies)  # fmt: skip
    targets = {json.loads(p)["target_flops"] for p in search.proxies}
    assert targets == {25e6, 60e6}
    exports = state["phases"]["retrain"]["exports"]
    own = state["phases"]["search"]["checkpoints"]
    assert len(own) == 2 and 1 <= len(exports) <= 2
    candidates = set(search[search.path == "candidate"].arch)
    assert {e["arch"] for e in exports} <= candidates
    final = frame[(frame.phase == "retrain") & (frame.split == "val")]
    assert len(final) == len(exports)
    text = (exp / "report" / "report.md").read_text()
    assert "SSR searches" in text and (exp / "report" / "ssr.png").is_file()
    assert (exp / "best" / "subnet.pth").is_file()


def _resume(exp: Path, *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "raynas.cli", "resume", str(exp), "--quiet", *args],
        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), capture_output=True, text=True,
        timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


@pytest.mark.slow  # a reduced supernet and one SSR trial on Ray, ~2 min
def test_ssr_from_a_calr_supernet_trains_on_its_subnet_schedule(
    tmp_path: Path, run_options: Callable[..., dict[str, Any]]
) -> None:
    """CaLR sets the supernet's learning rate (``param_scheduler = []``); SSR drops the CaLR
    hook, so its trial must take ``subnet_param_scheduler`` (warm-up + poly), stretched to SSR's
    length, instead of training at a constant learning rate."""
    from raynas.tune.pipeline import Pipeline

    config = tmp_path / "ssr_calr.py"
    config.write_text(
        f'_base_ = ["{ROOT / "configs" / "ssr_quickstart.py"}"]\n'
        'custom_hooks = [dict(type="PathSamplingHook", sampler=dict(type="uniform", seed=0)),\n'
        '                dict(type="CaLRHook", gamma_max=4.0, complexity="params")]\n'
        "param_scheduler = []\n"
        "subnet_param_scheduler = {{_base_.param_scheduler}}\n"
        "default_hooks = dict(logger=dict(interval=1))\n"
    )
    run = {**RUN, "search.param_space": dict(ssr=dict(target_flops=dict(grid=[40e6])))}
    Pipeline.create(config, str(tmp_path), "calr", run_options(run))
    _resume(tmp_path / "calr", "--until", "search")
    scalars = next((tmp_path / "calr" / "search").rglob("vis_data/scalars.json"))
    lrs = [r["lr"] for r in map(json.loads, scalars.read_text().splitlines()) if "lr" in r]
    assert len(lrs) >= 2 and lrs[-1] > lrs[0], lrs  # the warm-up, stretched to 12 iterations
