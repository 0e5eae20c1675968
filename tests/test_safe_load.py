"""Checkpoints load with weights_only=True; foreign pickled classes are refused clearly."""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader, load_checkpoint

from mmseg_plugins.safe_load import UnsafeCheckpointError


class Payload:
    """Any class outside the allow-list (would run code on unpickling)."""


def test_mmengine_types_load(tmp_path: Path) -> None:
    buf = HistoryBuffer()
    buf.update(np.float64(1.5))
    path = tmp_path / "ok.pth"
    torch.save(
        {
            "meta": {"hub": {"loss": buf, "n": np.int64(3)}},
            "state_dict": collections.OrderedDict(w=torch.ones(2)),
        },
        path,
    )
    out = CheckpointLoader.load_checkpoint(str(path))
    assert out["meta"]["hub"]["loss"].current() == 1.5
    assert torch.equal(out["state_dict"]["w"], torch.ones(2))


def test_foreign_class_is_refused_with_our_message(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"x": Payload()}}, path)
    with pytest.raises(UnsafeCheckpointError, match="refused to load checkpoint") as err:
        load_checkpoint(torch.nn.Linear(1, 1), str(path))
    assert "Payload" in str(err.value) and "add_safe_globals" in str(err.value)
