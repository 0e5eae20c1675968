"""TSE (Ru et al., NeurIPS 2021): rank architectures by a short fine-tune's summed training loss.

A candidate is exported from the supernet (inherited weights, BN recalibrated), fine-tuned for
``iters`` iterations at a constant learning rate on the training split, and scored by the sum
of its minibatch training losses (lower is better; the one-shot use of the official code:
one pass, constant lr 1e-3). The fine-tuned weights are thrown away: TSE only ranks.
With ``evaluate=True`` the fine-tuned path's selection-split mIoU is measured too (a short
retrain as a ranking proxy; ``schedule='poly'`` decays the learning rate to 0 over the
fine-tune, so the score is read at a settled point; experiments/ranking_variants/run.py).
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from mmengine.config import Config
from mmengine.hooks import Hook
from torch import nn

from raynas.core.errors import InvalidValueError

__all__ = ["tse_score"]


class _LossSum(Hook):
    priority = "LOWEST"

    def __init__(self) -> None:
        self.losses: list[float] = []

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None,
                         outputs: dict | None = None) -> None:  # fmt: skip
        self.losses.append(float(outputs["loss"].detach()))


def tse_score(
    cfg: Config,
    checkpoint: str | Path,
    arch: Mapping[str, Any],
    iters: int = 50,
    lr: float = 1e-3,
    model: nn.Module | None = None,
    calib_loader: Iterable | None = None,
    work_dir: str | Path | None = None,
    schedule: str = "constant",
    evaluate: bool = False,
) -> dict[str, Any]:
    """TSE of one path: ``{'tse': sum of losses, 'losses': [...]}`` (and ``'mIoU'``).

    Args:
        cfg: The supernet's config (its training split and optimizer type are used).
        checkpoint: The supernet checkpoint.
        arch: The path.
        iters: Fine-tuning iterations.
        lr: The constant learning rate.
        model: An already loaded supernet to reuse.
        calib_loader: A BN calibration loader to reuse.
        work_dir: Where the fine-tune writes (default: a temporary folder, removed).
        schedule: 'constant' or 'poly' (power 0.9, down to 0 at ``iters``).
        evaluate: Also return the fine-tuned path's mIoU on the config's ``val_dataloader``
            (the selection split of a config whose ``selection_split`` is applied).
    """
    if schedule not in ("constant", "poly"):
        raise InvalidValueError(f"schedule must be 'constant' or 'poly', got {schedule!r}")
    from mmengine.runner import Runner

    from raynas.config import load_config
    from raynas.export import export_subnet

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work_dir or tmp)
        export_subnet(cfg, checkpoint, arch, work / "subnet", model=model,
                      calib_loader=calib_loader)  # fmt: skip
        sub = load_config(work / "subnet" / "subnet.py")
        sub.work_dir, sub.log_level = str(work / "work"), "WARNING"
        # mmengine keeps one logger and visualizer per name (the experiment's: config name and
        # start second; mmseg's visualizer: 'visualizer'), so a later fine-tune in this process
        # would write into an earlier one's removed folder
        sub.experiment_name = f"tse-{uuid.uuid4().hex[:12]}"
        if sub.get("visualizer"):
            sub.visualizer.name = sub.experiment_name
        sub.load_from = str(work / "subnet" / "subnet.pth")
        sub.optim_wrapper.optimizer.lr = lr
        poly = dict(type="PolyLR", eta_min=0.0, power=0.9, begin=0, end=iters, by_epoch=False)
        sub.param_scheduler = [] if schedule == "constant" else [poly]
        sub.train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters + 1)
        sub.default_hooks.checkpoint = dict(type="CheckpointHook", interval=iters + 1,
                                            by_epoch=False, save_last=False)  # fmt: skip
        runner = Runner.from_cfg(sub)
        hook = _LossSum()
        runner.register_hook(hook)
        runner.train()
        out = {"tse": float(sum(hook.losses)), "losses": hook.losses}
        if evaluate:
            out["mIoU"] = float(runner.val()["mIoU"])
    return out
