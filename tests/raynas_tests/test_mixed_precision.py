"""Mixed precision as an option of the training phases: the option is checked, the trial's
config gets mmengine's AmpOptimWrapper, the supernet's elastic layers run under autocast, and
a GPU trial trains in bf16 and fp16 (``gpu`` marker: skipped without a CUDA device)."""

from __future__ import annotations

import pytest
import torch

from raynas.config import mixed_precision
from raynas.core.errors import InvalidValueError
from raynas.tune.options import resolve_tune_cfg

SUPERNET = "supernet/segsupernet_uniform_1xb8-2k_synthseg-128x128.py"


def test_amp_option_is_checked_by_name() -> None:
    with pytest.raises(InvalidValueError, match=r"supernet\.amp must be None, 'bf16' or 'fp16'"):
        resolve_tune_cfg({"supernet": {"amp": "int8", "resources": {"gpu": 1}}})
    with pytest.raises(InvalidValueError, match=r"retrain\.amp='bf16'.*no GPU.*resources\.gpu"):
        resolve_tune_cfg({"retrain": {"amp": "bf16"}})
    retrain = {"amp": "bf16", "resources": {"workers": 2, "gpu_per_worker": 1}}
    opts = resolve_tune_cfg({"supernet": {"amp": "fp16", "resources": {"gpu": 1}},
                             "retrain": retrain})  # fmt: skip
    assert opts["supernet"]["amp"] == "fp16" and opts["retrain"]["amp"] == "bf16"


@pytest.mark.parametrize(("amp", "dtype"), [("bf16", "bfloat16"), ("fp16", "float16")])
def test_trial_config_trains_with_amp_optim_wrapper(make_cfg, tmp_path, amp, dtype) -> None:
    cfg = make_cfg(SUPERNET, tmp_path)
    before = dict(cfg.optim_wrapper)
    mixed_precision(cfg, amp)
    wrapper = cfg.optim_wrapper
    assert wrapper["type"] == "AmpOptimWrapper" and wrapper["dtype"] == dtype
    assert wrapper.get("loss_scale") == ("dynamic" if amp == "fp16" else None)
    assert (
        wrapper["optimizer"] == before["optimizer"] and wrapper["clip_grad"] == before["clip_grad"]
    )
    mixed_precision(cfg, None)
    assert cfg.optim_wrapper["type"] == "AmpOptimWrapper"  # None leaves it as it is


def test_elastic_layers_under_bf16_autocast_follow_float32(make_cfg, tmp_path) -> None:
    from mmseg_plugins import search_space, set_arch
    from raynas.export import build_supernet

    torch.manual_seed(0)
    model = build_supernet(make_cfg(SUPERNET, tmp_path)).eval()
    space, x = search_space(model), torch.randn(2, 3, 128, 128)
    for arch in (space.extreme(True), space.extreme(False)):
        set_arch(model, arch)
        with torch.no_grad():
            full = model._forward(x)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                half = model._forward(x)
        assert half.dtype == torch.bfloat16 and half.shape == full.shape
        rel = (half.float() - full).norm() / full.norm()
        assert rel < 0.05, rel  # bf16 keeps 8 bits of mantissa: a few percent at most
        assert next(model.parameters()).dtype == torch.float32  # weights stay float32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_supernet_trains_in_mixed_precision_on_cuda(make_cfg, tmp_path, amp) -> None:
    from mmengine.runner import Runner

    cfg = make_cfg(SUPERNET, tmp_path, **{"train_cfg.max_iters": 5, "train_cfg.val_interval": 5})
    mixed_precision(cfg, amp)
    runner = Runner.from_cfg(cfg)
    runner.train()
    assert runner.iter == 5 and type(runner.optim_wrapper).__name__ == "AmpOptimWrapper"
