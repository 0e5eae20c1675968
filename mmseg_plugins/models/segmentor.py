"""``SuperNetEncoderDecoder``: mmseg's EncoderDecoder that can train several paths per step."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmseg.models.segmentors import EncoderDecoder
from mmseg.registry import MODELS

from raynas.core.distill import PathStep
from raynas.core.space import Arch

__all__ = ["SuperNetEncoderDecoder", "kd_loss"]


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Pixel-wise KL(teacher || student) of softened logits, times ``temperature ** 2``."""
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(student, teacher.shape[-2:], mode="bilinear", align_corners=False)
    log_p = F.log_softmax(student / temperature, dim=1)
    q = F.softmax(teacher / temperature, dim=1)
    return F.kl_div(log_p, q, reduction="none").sum(1).mean() * temperature**2


def _check_detail(backbone: Any, head: Any) -> None:
    """A head with a detail branch needs the backbone's stem output, with its channels."""
    if not getattr(getattr(head, "search", None), "details", ()):
        return
    if not getattr(backbone, "stem_out", False):
        raise ValueError("model.decode_head.details needs model.backbone.stem_out=True")
    stem = backbone.settings.stem_channels[-1]
    if head.detail_lateral.conv.in_channels != stem:
        raise ValueError(
            f"model.decode_head.detail_channels={head.detail_lateral.conv.in_channels} differs "
            f"from the backbone's stem_channels[-1]={stem}; set it to {stem}"
        )


@MODELS.register_module()
class SuperNetEncoderDecoder(EncoderDecoder):
    """An ``EncoderDecoder`` whose train step can run a plan of several paths.

    Without a plan it is exactly mmseg's ``EncoderDecoder``. With one
    (:class:`~raynas.core.distill.PathStep` s, set by
    :class:`~mmseg_plugins.hooks.PathSamplingHook` when it has a ``distill`` config), every
    step activates its path, computes its loss and back-propagates; gradients accumulate
    and the optimizer steps once. The logged ``loss`` is the sampled path's; the accuracy of
    every trained path is kept in :attr:`step_accuracy` for the distiller.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        _check_detail(self.backbone, self.decode_head)
        self.plan: Sequence[PathStep] | None = None
        self.activate: Callable[[Arch], Any] | None = None
        self.temperature = 1.0
        self.step_accuracy: list[tuple[Arch, float]] = []

    def train_step(self, data: Any, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        if not self.plan:
            return super().train_step(data, optim_wrapper)
        if self.with_auxiliary_head:
            raise NotImplementedError("multi-path steps do not support auxiliary heads")
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
        log_vars: dict[str, torch.Tensor] = {}
        teacher, self.step_accuracy = None, []
        for step in self.plan:
            self.activate(step.arch)
            with optim_wrapper.optim_context(self):
                if step.role == "frozen":
                    with torch.no_grad():
                        teacher = self._logits(data["inputs"])
                    continue
                logits = self._logits(data["inputs"])
                loss, parts = self._step_loss(step, logits, teacher, data["data_samples"])
            optim_wrapper.backward(loss)
            if step.role == "teacher":
                teacher = logits.detach()
            self.step_accuracy.append((step.arch, float(parts["acc_seg"])))
            if step.sampled:
                log_vars.update(loss=loss.detach(), **parts)
            log_vars[f"loss_{step.role}"] = log_vars.get(f"loss_{step.role}", 0) + loss.detach()
        optim_wrapper.step()
        optim_wrapper.zero_grad()
        self.activate(next(s.arch for s in self.plan if s.sampled))
        return log_vars

    def _logits(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.decode_head.forward(self.extract_feat(inputs))

    def _step_loss(
        self, step: PathStep, logits: torch.Tensor, teacher: torch.Tensor | None, samples: Any
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        losses = self.decode_head.loss_by_feat(logits, samples)
        ce = sum(v for k, v in losses.items() if k.startswith("loss"))
        parts = {"acc_seg": losses["acc_seg"].detach()}
        if step.role != "student" or teacher is None or step.kd_weight == 0:
            return ce, parts
        kd = kd_loss(logits, teacher, self.temperature)
        parts["loss_kd"] = kd.detach()
        return step.ce_weight * ce + step.kd_weight * kd, parts
