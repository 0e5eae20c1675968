"""The segmentation search space's settings: dilations measured against the input size."""

from __future__ import annotations

from pathlib import Path

import pytest

from raynas.core.seg_space import BackboneSettings

ROOT = Path(__file__).resolve().parents[2]


def test_dilations_past_the_feature_map_are_named() -> None:
    notes = BackboneSettings().degenerate_dilations((128, 128))
    assert notes == [
        "stage0 at 1/16 (8x8 maps, zoomed): dilation(s) [8]",
        "stage1 at 1/32 (4x4 maps, zoomed): dilation(s) [4, 8]",
        "stage1 at 1/16 (8x8 maps): dilation(s) [8]",
        "stage2 at 1/64 (2x2 maps, zoomed): dilation(s) [2, 4, 8]",
        "stage2 at 1/32 (4x4 maps): dilation(s) [4, 8]",
    ]
    assert BackboneSettings().degenerate_dilations((1024, 2048)) == []  # Cityscapes
    assert BackboneSettings(dilations=(1, 2), zooms=(1,)).degenerate_dilations((128, 128)) == []


def _space(config: str, capsys: pytest.CaptureFixture) -> str:
    from raynas.cli import main

    assert main(["space", str(ROOT / config)]) == 0
    return capsys.readouterr().out


def test_raynas_space_prints_the_note(capsys: pytest.CaptureFixture) -> None:
    out = _space("configs/ssr_quickstart.py", capsys)  # the base space's dilations and zooms
    assert "6.722e+18 distinct architectures" in out
    assert "note: at the 128x128 input" in out and "stage2 at 1/32 (4x4 maps)" in out
    out = _space("configs/quickstart.py", capsys)  # sized to the input: dilation 1 or 2, no zoom
    assert "1.216e+12 distinct architectures" in out  # with head.detail
    assert "note:" not in out
    # what search.constraints can ask, from the cheapest path (not the first choices: 17.81e6)
    assert "flops at 128x128: 15.73e6 (cheapest path) to 135.1e6 (dearest path)" in out
    assert "params: 63.82e3 (cheapest path) to 1.771e6 (dearest path)" in out


def test_paths_differing_only_in_degenerate_dilations_share_one_function() -> None:
    """Found in a search: two 'different' top-2 paths, identical but for a dilation of 4 or 8
    on a zoomed 4x4 map, retrained to the same 57.31 mIoU. Folded, they are one network."""
    import numpy as np
    import pandas as pd

    from raynas.core.seg_space import HeadSettings, build_space, functional_arch
    from raynas.report import select_top_k

    settings = BackboneSettings()
    space = build_space(settings, HeadSettings())
    arch = space.canonical(space.sample(np.random.default_rng(0)))
    label = "backbone.stage1.layer0"
    a4, a8 = (dict(arch, **{f"{label}.zoom": 2, f"{label}.dilation": d}) for d in (4, 8))
    a2 = dict(a4, **{f"{label}.dilation": 2})
    key = {k: functional_arch(a, settings, (128, 128)) for k, a in (("4", a4), ("8", a8),
                                                                   ("2", a2))}  # fmt: skip
    assert key["4"] == key["8"] != key["2"]  # 2 < 4: still reads neighbours on a 4x4 map
    assert functional_arch(a8, settings, (1024, 2048)) == a8  # nothing folds at Cityscapes size
    frame = pd.DataFrame([dict(arch=str(a), function=str(key[k]), mIoU=57.31, flops=22.9e6,
                               feasible=True) for k, a in (("4", a4), ("8", a8))])  # fmt: skip
    assert len(select_top_k(frame, 2)) == 1


def test_cost_range_finds_paths_cheaper_than_the_first_choices() -> None:
    """The first choice of every label is not the cheapest path: a zoomed layer's resizes can
    cost more than it saves (CI refused an SSR latency target the space reached). The range is
    exact on a small conditional space, and bounds every sampled path of the real one."""
    import itertools

    import numpy as np

    from raynas.core.complexity import PathComplexity
    from raynas.core.seg_space import HeadSettings, build_space
    from raynas.core.space import SearchSpace

    cost_of = {
        "depth": {1: 1.0, 2: 0.0},
        "a": {"x": 5.0, "y": 2.0, "z": 9.0},
        "b": {0: 0.5, 1: 4.0},
    }
    space = SearchSpace(dict(depth=(1, 2), a=("x", "y", "z"), b=(1, 0)), {"b": (("depth", (2,)),)})

    def cost(arch: dict) -> float:
        return sum(cost_of[k][v] for k, v in arch.items() if space.is_active(arch, k))

    every = [cost(dict(zip(space.choices, v))) for v in itertools.product(*space.choices.values())]
    assert space.cost_range(cost) == (min(every), max(every)) == (2.5, 13.0)
    # depth 2 is cheaper only with b=0, which is inactive at depth 1
    assert cost(space.extreme(False)) == 6.0

    settings, size = BackboneSettings(), (128, 128)
    space = build_space(settings, HeadSettings())
    table = PathComplexity(settings, HeadSettings(), 2, size)
    low, high = space.cost_range(lambda arch: table(arch).flops)
    rng = np.random.default_rng(0)
    sampled = [table(space.sample(rng)).flops for _ in range(300)]
    assert low < table(space.extreme(False)).flops and low <= min(sampled)
    assert high >= max(sampled)
