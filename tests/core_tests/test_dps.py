"""DPS: the predictor scores paths it did not measure, and cost enters only when weighted."""

from __future__ import annotations

import numpy as np

from raynas.core.dps import DPSSampler
from raynas.core.seg_space import BackboneSettings, HeadSettings, build_space

SPACE = build_space(BackboneSettings(), HeadSettings())


def _true_miou(arch: dict) -> float:
    """A learnable synthetic target: a fixed linear function of the encoding."""
    w = np.random.default_rng(123).normal(size=len(SPACE.encode(arch)))
    return float(SPACE.encode(arch) @ w)


def _round(sampler: DPSSampler, iteration: int) -> dict:
    cand = sampler.candidates
    scores = {k: np.zeros(len(cand)) for k in sampler.needs()}
    scores["mIoU"] = np.array([_true_miou(a) for a in cand])
    return sampler.on_round(iteration, scores, [1.0] * len(cand))


def test_predictor_scores_unmeasured_paths_with_a_held_out_tau() -> None:
    sampler = DPSSampler(SPACE, seed=0, pool_size=40, num_selected=8, measure_fraction=0.5,
                         stages=[dict(name="expressiveness", objectives=("predicted",))],
                         predictor=dict(steps=300))  # fmt: skip
    sampler.set_run_length(1000)
    logs = [_round(sampler, 100 * (i + 1)) for i in range(6)]
    assert logs[0]["measured"] == 40  # nothing to predict from yet
    assert all(log["measured"] == 20 for log in logs[1:])  # half measured, half predicted
    taus = [log["predictor_tau"] for log in logs[1:]]
    assert all(np.isfinite(taus)) and np.mean(taus) > 0.3, taus  # on paths it never saw


def test_cost_is_an_objective_only_when_weighted() -> None:
    def selected_flops(weight: float) -> float:
        sampler = DPSSampler(SPACE, seed=1, pool_size=30, num_selected=6, cost_weight=weight,
                             stages=[dict(name="balanced", objectives=("mIoU",))])  # fmt: skip
        sampler.set_run_length(100)
        flops = {SPACE.key(a): float(i + 1) for i, a in enumerate(sampler.pool)}
        sampler.set_cost(lambda a: flops[SPACE.key(a)])
        pool = list(sampler.pool)
        sampler.on_round(10, {"mIoU": np.ones(30), "loss": np.ones(30)}, [0.0] * 30)
        return float(np.mean([flops[SPACE.key(a)] for a in sampler.selected if a in pool]))

    # equal mIoU: without a cost weight the selection is not pulled to cheap paths
    assert selected_flops(0.0) > 5.0  # (FLOPs as an objective would pick the 6 cheapest)
    assert selected_flops(1.0) <= 3.5  # with it, the 6 cheapest of 30 (mean 3.5)
