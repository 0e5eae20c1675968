"""TSE fine-tunes back to back in one process, as the ranking benchmark and a reused trial
actor run them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from raynas.core.seg_space import space_from_model_cfg
from raynas.export import build_supernet
from raynas.tse import tse_score

pytestmark = pytest.mark.integration  # trains with the Runner for seconds to a minute


def test_fine_tunes_within_one_second_do_not_share_a_folder(
    load_cfg: Callable[..., Any], tmp_path: Path
) -> None:
    """mmengine names a Runner's logger and visualizer by config name and start second: the
    second of two 1-iteration fine-tunes used to write into the first one's removed folder."""
    cfg = load_cfg("supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py")
    torch.save({"state_dict": build_supernet(cfg).state_dict(), "meta": {}}, tmp_path / "s.pth")
    arch = space_from_model_cfg(cfg.model).extreme(False)
    scores = [tse_score(cfg, tmp_path / "s.pth", arch, iters=1)["tse"] for _ in range(2)]
    assert len(scores) == 2 and all(0 < s < 100 for s in scores)  # 1 loss each, both ran


def test_a_decayed_fine_tune_is_scored_on_the_selection_split(
    load_cfg: Callable[..., Any], tmp_path: Path
) -> None:
    """``evaluate=True`` adds the fine-tuned path's mIoU; a schedule other than 'constant' or
    'poly' is refused before anything is trained."""
    from raynas.config import apply_selection_split
    from raynas.core.errors import InvalidValueError

    cfg = load_cfg("supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py")
    apply_selection_split(cfg)
    torch.save({"state_dict": build_supernet(cfg).state_dict(), "meta": {}}, tmp_path / "s.pth")
    arch = space_from_model_cfg(cfg.model).extreme(False)
    out = tse_score(cfg, tmp_path / "s.pth", arch, iters=2, schedule="poly", evaluate=True)
    assert len(out["losses"]) == 2 and 0.0 <= out["mIoU"] <= 100.0
    with pytest.raises(InvalidValueError, match="schedule"):
        tse_score(cfg, tmp_path / "s.pth", arch, iters=2, schedule="cosine")
