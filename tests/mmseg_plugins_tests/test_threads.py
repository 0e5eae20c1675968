"""The thread count of a training process, measured on the model's own step, leaves the model
and every random stream as they were."""

from __future__ import annotations

import torch

from mmseg_plugins.arch import current_arch
from mmseg_plugins.threads import fastest_threads
from raynas.export import build_supernet

CONFIG = "supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


def test_fastest_threads_picks_a_candidate_and_touches_nothing(make_cfg, tmp_path) -> None:
    model = build_supernet(make_cfg(CONFIG, tmp_path)).double()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    arch, threads = current_arch(model), torch.get_num_threads()
    rng = torch.get_rng_state()
    try:
        best, times = fastest_threads(model, batch=2, size=(64, 64), candidates=(1, 2), steps=2)
        assert best in (1, 2) and torch.get_num_threads() == best
        assert set(times) == {1, 2} and all(t > 0 for t in times.values())
        assert times[best] == min(times.values())
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(torch.get_rng_state(), rng)  # an exact resume is unaffected
    assert current_arch(model) == arch
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():  # BN statistics included
        assert torch.equal(value, before[key]), key
