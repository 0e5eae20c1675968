"""Measures the DPS proxies of many paths on one fixed held-out mini-batch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmseg_plugins.arch import current_arch, path_parameters, set_arch
from mmseg_plugins.bn_calib import bn_buffers_preserved
from raynas.core.proxies import angle_score, batch_miou, ms_ib_score
from raynas.core.space import Arch

__all__ = ["ProxyEvaluator"]


class ProxyEvaluator:
    """One forward per path on a held-out batch gives its loss, mIoU and features.

    BN uses the batch's statistics (running statistics are shared by all paths and so are
    not the path's own) and is left untouched; dropout is off.

    Args:
        model: The supernet segmentor.
        batch: A batch from an mmengine dataloader (``inputs``, ``data_samples``).
        init_state: The supernet's weights at initialisation (for the angle proxy).
        ib_beta: Beta of the IB score.
    """

    def __init__(
        self,
        model: nn.Module,
        batch: Mapping[str, Any],
        init_state: Mapping[str, torch.Tensor],
        ib_beta: float = 0.5,
    ) -> None:
        self.model, self.init_state, self.ib_beta = model, init_state, ib_beta
        data = model.data_preprocessor(batch, False)
        self.inputs = data["inputs"]
        self.labels = torch.stack([s.gt_sem_seg.data[0] for s in data["data_samples"]]).long()
        self.num_classes = model.decode_head.num_classes

    @torch.no_grad()
    def measure(self, archs: Sequence[Arch], needs: set[str]) -> dict[str, np.ndarray]:
        model = self.model
        previous = current_arch(model)
        out: dict[str, list[float]] = {k: [] for k in needs}
        with bn_buffers_preserved(model):
            model.train()
            for m in model.modules():
                if isinstance(m, nn.Dropout | nn.Dropout2d):
                    m.eval()
            for arch in archs:
                set_arch(model, arch)
                feats = model.extract_feat(self.inputs)
                logits = model.decode_head.forward(feats)
                if "loss" in needs:
                    up = F.interpolate(
                        logits, size=self.labels.shape[-2:], mode="bilinear", align_corners=False
                    )
                    out["loss"].append(float(F.cross_entropy(up, self.labels, ignore_index=255)))
                if "mIoU" in needs:
                    out["mIoU"].append(batch_miou(logits, self.labels, self.num_classes))
                if "ib" in needs:
                    out["ib"].append(
                        ms_ib_score(
                            feats, self.inputs, self.labels, self.num_classes, self.ib_beta
                        )
                    )
                if "angle" in needs:
                    now = [t for _, t in path_parameters(model, arch)]
                    then = [t for _, t in path_parameters(model, arch, self.init_state)]
                    out["angle"].append(angle_score(then, now))
        set_arch(model, previous)
        return {k: np.asarray(v, float) for k, v in out.items()}
