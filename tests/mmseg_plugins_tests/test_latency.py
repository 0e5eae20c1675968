"""Latency of a path: end-to-end measurement and the lookup table (values, not speed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.config import Config

import mmseg_plugins  # noqa: F401  (registers the modules)
from mmseg_plugins.arch import current_arch, search_space, set_arch
from mmseg_plugins.latency import LatencyTable, measure_latency

CFG = Path(__file__).resolve().parents[2] / "configs/_base_/models/segsupernet.py"
SIZE = (64, 64)


@pytest.fixture(scope="module")
def supernet():
    from mmseg.registry import MODELS

    torch.manual_seed(0)
    return MODELS.build(Config.fromfile(str(CFG)).model)


def test_measure_latency_keeps_mode_and_weights(supernet) -> None:
    supernet.train()
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    ms = measure_latency(supernet, SIZE, warmup=1, runs=3)
    assert ms > 0 and supernet.training
    after = supernet.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # eval mode: BN untouched


def test_table_predicts_fixed_part_plus_layers_and_restores_the_path(supernet) -> None:
    space = search_space(supernet)
    rng = np.random.default_rng(0)
    active = set_arch(supernet, space.sample(rng))
    lut = LatencyTable(supernet.backbone.settings, SIZE, runs=3)
    arch = space.sample(rng)
    total = lut.predict(arch, supernet)
    key = LatencyTable.fixed_key(arch)
    assert total == pytest.approx(lut.entries[key] + lut.layers(arch))
    assert current_arch(supernet) == active
    layer_entries = [k for k in lut.entries if not k.startswith("fixed/")]
    depths = [int(arch[f"backbone.stage{i}.depth"]) for i in range(3)]
    assert 1 <= len(layer_entries) <= sum(depths)

    # a path differing only in its layers reuses the fixed entry
    label = "backbone.stage0.layer0.dilation"
    other = dict(arch, **{label: 8 if arch[label] != 8 else 1})
    assert LatencyTable.fixed_key(other) == key
    n_fixed = sum(k.startswith("fixed/") for k in lut.entries)
    lut.predict(other, supernet)
    assert sum(k.startswith("fixed/") for k in lut.entries) == n_fixed


def test_saved_table_predicts_without_a_model(supernet, tmp_path: Path) -> None:
    space = search_space(supernet)
    lut = LatencyTable(supernet.backbone.settings, SIZE, runs=3)
    arch = space.extreme(False)
    expected = lut.predict(arch, supernet)
    lut.save(tmp_path / "lut.json")
    loaded = LatencyTable(supernet.backbone.settings, SIZE).load(tmp_path / "lut.json")
    assert loaded.predict(arch) == expected
    with pytest.raises(KeyError, match=r"fixed/.*pass the supernet"):
        loaded.predict(space.extreme(True))
    with pytest.raises(ValueError, match="measured at"):
        LatencyTable(supernet.backbone.settings, (96, 96)).load(tmp_path / "lut.json")


def test_table_belongs_to_one_device_and_input_size(supernet, tmp_path: Path) -> None:
    from mmseg_plugins.latency import device_key

    table = LatencyTable(supernet.backbone.settings, SIZE, runs=2)
    assert table.device_key == device_key("cpu") and table.device_key.startswith("cpu-")
    table.predict(search_space(supernet).extreme(False), supernet)
    table.save(tmp_path / "t.json")
    other = LatencyTable(supernet.backbone.settings, SIZE, runs=2)
    other.device_key = "cuda-SomeGPU"
    with pytest.raises(ValueError, match="measured on cpu-"):
        other.load(tmp_path / "t.json")
    with pytest.raises(ValueError, match="measured at"):
        LatencyTable(supernet.backbone.settings, (32, 32)).load(tmp_path / "t.json")
    # keyed by dtype and batch too: a float64 table is another table
    assert table.device_key.endswith("-float32-b1")
    double = LatencyTable(supernet.backbone.settings, SIZE, runs=1, dtype=torch.float64)
    assert double.device_key == device_key("cpu", torch.float64) != table.device_key
    assert double.layer(0, 32, "fr", 1, 1) > 0  # measured in float64 without a dtype clash
    with pytest.raises(ValueError, match=r"measured on cpu-.*float32"):
        double.load(tmp_path / "t.json")


def test_latency_constraint_excludes_paths_above_the_bound() -> None:
    from raynas.tune.phases.search import _feasible

    bound = {"latency_ms": (None, 3.0), "flops": (None, 80e6)}
    assert _feasible({"flops": 50e6, "latency_ms": 2.9}, bound)
    assert not _feasible({"flops": 50e6, "latency_ms": 3.1}, bound)
    assert not _feasible({"flops": 90e6, "latency_ms": 1.0}, bound)
    assert _feasible({"flops": 50e6, "latency_ms": None}, bound)  # not measured: not checked


def test_ssr_expected_latency_of_a_one_hot_path_is_the_tables(supernet, tmp_path: Path) -> None:
    """SSR's latency cost: every entry the relaxed path reaches is measured once, without
    touching the RNG, and kept; on one-hot weights the expectation is the table's prediction."""
    from mmseg_plugins.latency import LatencyCost
    from raynas.core.ssr import ArchWeights

    space = search_space(supernet)
    weights = ArchWeights(space)
    state = torch.get_rng_state()
    cost = LatencyCost(tmp_path / "lut.json", runs=1)
    cost.measure(supernet, weights)
    assert torch.equal(torch.get_rng_state(), state)
    fixed = sum(k.startswith("fixed/") for k in cost.table.entries)
    # layers: 3 stages x 3 widths x 3 ops x 4 dilations x 2 zooms; fixed parts: the needed
    # stages' widths x fusion x head channels (9 x 3 for '8+16', 27 x 3 for the two others)
    assert (len(cost.table.entries) - fixed, fixed) == (216, 27 + 81 + 81)
    uniform = float(cost.expected(weights))
    low, high = (cost.predict(space.extreme(big)) for big in (False, True))
    assert low < uniform < high
    weights = weights.double()  # float64: the sum is the table's to the last digits
    for seed in range(3):
        arch = space.canonical(space.sample(np.random.default_rng(seed)))
        weights.onehot_(arch)
        assert float(cost.expected(weights)) == pytest.approx(cost.predict(arch), rel=1e-9)
    again = LatencyCost(tmp_path / "lut.json", runs=1)
    stamp = (tmp_path / "lut.json").stat().st_mtime_ns
    again.measure(supernet, ArchWeights(space))  # read back: nothing measured, nothing written
    assert again.table.entries == cost.table.entries
    assert (tmp_path / "lut.json").stat().st_mtime_ns == stamp
