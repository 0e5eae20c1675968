"""The report's SSR table reads the Runner's iteration, says when every row was decided and
rounds the mIoUs."""

from __future__ import annotations

import json

import pandas as pd

from raynas.report_ssr import ssr_markdown, ssr_steps


def _row(trial: str, report: int, it: int, path: str, relaxed: float, **extra) -> dict:
    proxies = dict(iter=it, candidates_left=130 - report, expected_mflops=40.0,
                   entropy_ops=0.9, relaxed_mIoU=relaxed, target_flops=25e6, **extra)  # fmt: skip
    return dict(phase="search", trial_id=trial, iteration=report, path=path, mIoU=15.5,
                flops=18.1e6, proxies=json.dumps(proxies))  # fmt: skip


def test_ssr_table_shows_runner_iterations_and_rounded_miou() -> None:
    frame = pd.DataFrame(
        [_row("a", 1, 12, "ssr-step", 16.0), _row("a", 2, 24, "candidate", 16.190000534)]
    )
    steps = ssr_steps(frame)
    assert list(steps.iteration) == [12, 24] and "iter" not in steps.columns
    last = ssr_markdown(frame).splitlines()[-1]
    assert last.startswith("| a | 25 MFLOPs | 24 | - | 128 | 40.0 | 18.1 | 16.19 | 15.50 | 0.69 |")
    decided = dict(rows=3.0, decided_at={"backbone.stage0.depth": 12, "head.fusion": 24,
                                         "backbone.stage0.layer0.op": 24})  # fmt: skip
    frame = pd.DataFrame([_row("b", 2, 24, "candidate", 16.0, **decided)])
    text = ssr_markdown(frame)
    assert "| b | 25 MFLOPs | 24 | 3/3 (by 24) | 128 |" in text
    assert "- b: rows decided at iteration 12: 1 depth; 24: 1 head, 1 ops" in text
    frame = pd.DataFrame([_row("c", 2, 24, "candidate", 16.0, rows=3.0, decided_at={"x": 12})])
    assert "| c | 25 MFLOPs | 24 | 1/3 | 128 |" in ssr_markdown(frame)
