"""Benchmarks that take a phase from an earlier experiment (``--supernet-from``) take it only
from one trained under the same config: :func:`benchmarks.harness.pipeline` on real
experiment folders (``Pipeline.create``, no training)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import harness
from raynas.tune.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "configs" / "quickstart.py"


@pytest.fixture
def donor(tmp_path: Path) -> Path:
    """An experiment whose supernet phase is done, with its archive file."""
    Pipeline.create(QUICKSTART, str(tmp_path), "donor", {"randomness.seed": 3})
    exp = tmp_path / "donor"
    state = harness.state(exp)
    state["phases"]["supernet"] = {"done": True, "checkpoint": "supernet/x.pth"}
    (exp / "pipeline.json").write_text(json.dumps(state))
    (exp / "archive").mkdir()
    (exp / "archive" / "supernet-abc-1.parquet").write_bytes(b"rows")
    return exp


def test_same_supernet_config_is_adopted(donor: Path) -> None:
    """A run that differs only in a phase it runs itself takes the donor's phase and files."""
    exp = harness.pipeline(QUICKSTART, donor.parent, "new", donor, "supernet",
                           **{"randomness.seed": 3, "tune_cfg.retrain.iters": 500})  # fmt: skip
    assert harness.state(exp)["phases"]["supernet"]["checkpoint"] == "supernet/x.pth"
    assert (exp / "archive" / "supernet-abc-1.parquet").read_bytes() == b"rows"
    assert harness.donor_differences(exp, donor, ("supernet",)) == []


def test_other_supernet_config_is_refused(donor: Path) -> None:
    """A changed supernet length names the key and both values; nothing is left behind."""
    with pytest.raises(ValueError, match=r"tune_cfg\.supernet\.iters: 7200 -> 1200") as err:
        harness.pipeline(QUICKSTART, donor.parent, "new", donor, "supernet",
                         **{"randomness.seed": 3, "tune_cfg.supernet.iters": 1200})  # fmt: skip
    assert "same config" in str(err.value)
    assert not (donor.parent / "new").exists()


def test_seed_differs_only_where_allowed(donor: Path) -> None:
    """Another seed is refused unless the caller says it may differ (a second yardstick
    seed retraining the donor's search)."""
    with pytest.raises(ValueError, match=r"randomness\.seed: 3 -> 4"):
        harness.pipeline(QUICKSTART, donor.parent, "s4", donor, "supernet",
                         **{"randomness.seed": 4})  # fmt: skip
    exp = harness.pipeline(QUICKSTART, donor.parent, "s4", donor, "supernet", ("supernet",),
                           ("randomness.seed",), **{"randomness.seed": 4})  # fmt: skip
    assert harness.state(exp)["phases"]["supernet"]["done"]
