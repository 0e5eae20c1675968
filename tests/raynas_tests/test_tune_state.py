"""A Tune state that a kill left half-written is set aside before a restore."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

from raynas.tune.storage import Storage
from raynas.tune.tune_state import set_aside_incomplete_sessions


def _session(folder: Path, session: str, state: bytes, searcher: bytes) -> None:
    (folder / f"experiment_state-{session}.json").write_bytes(state)
    (folder / f"search_gen_state-{session}.json").write_bytes(pickle.dumps({"counter": 1}))
    (folder / f"searcher-state-{session}.pkl").write_bytes(searcher)


def test_incomplete_sessions_are_moved_aside_and_complete_ones_kept(tmp_path: Path) -> None:
    good = pickle.dumps({"space": [1, 2]})
    _session(tmp_path, "2026-01-01_00-00-01", json.dumps({"trials": []}).encode(), good)
    _session(tmp_path, "2026-01-01_00-00-02", b"", good)  # killed while writing the state
    _session(tmp_path, "2026-01-01_00-00-03", b"{}", good[:-5])  # truncated pickle
    (tmp_path / "tuner.pkl").write_bytes(good)
    bad = set_aside_incomplete_sessions(Storage(tmp_path))
    assert bad == ["2026-01-01_00-00-02", "2026-01-01_00-00-03"]
    left = sorted(p.name for p in tmp_path.glob("experiment_state-*"))
    assert left == ["experiment_state-2026-01-01_00-00-01.json"]
    assert len(list((tmp_path / ".incomplete").iterdir())) == 6  # moved, not deleted
    assert (tmp_path / "tuner.pkl").exists()
    assert set_aside_incomplete_sessions(Storage(tmp_path)) == []


def test_nothing_complete_means_a_fresh_start(tmp_path: Path) -> None:
    _session(tmp_path, "2026-01-01_00-00-01", b"", pickle.dumps(1))
    (tmp_path / "tuner.pkl").write_bytes(pickle.dumps(1))
    assert set_aside_incomplete_sessions(Storage(tmp_path)) == ["2026-01-01_00-00-01"]
    assert not (tmp_path / "tuner.pkl").exists()
