"""Searchable decode head (``SearchableHead``) and its static form (``FixedHead``).

The head projects the chosen stage outputs to ``channels`` with 1x1 convs (``lateral``),
upsamples them to 1/8, sums them, refines with a 3x3 conv (``fuse``) and classifies. With a
detail branch (``head.detail=1``) it then upsamples to 1/4, adds the stem's 1/4 features
projected by a 1x1 conv (``detail_lateral``), refines with a depthwise-separable conv
(``detail_dw``, ``detail_pw``) and classifies at 1/4, as DeepLabV3+'s decoder does with a full
3x3 conv (8x the FLOPs at 64 channels). The backbone must return the stem's output last
(``stem_out=True``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import nn

from mmseg_plugins.models.elastic import ConvBN, ElasticConv2d
from mmseg_plugins.models.relaxed import relaxed_head
from raynas.core.seg_space import SCALES, HeadSettings, fusion_scales, has_detail
from raynas.core.space import Arch

__all__ = ["FixedHead", "SearchableHead"]


def _lateral_key(index: int) -> str:
    return f"s{SCALES[index]}"


def _detail_modules(detail_channels: int, channels: int, elastic: bool) -> dict[str, nn.Module]:
    return dict(
        detail_lateral=ConvBN(detail_channels, channels, 1, elastic=elastic),
        detail_dw=ConvBN(channels, channels, 3, depthwise=True, elastic=elastic),
        detail_pw=ConvBN(channels, channels, 1, elastic=elastic),
    )


class _FusionHead(BaseDecodeHead):
    fused: tuple[int, ...]
    detail: bool

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        feats = self._transform_inputs(inputs)
        size = feats[0].shape[2:]
        out = None
        for i in self.fused:
            y = self.lateral[_lateral_key(i)](feats[i])
            if y.shape[2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=self.align_corners)
            out = y if out is None else out + y
        out = self.fuse(out)
        if self.detail:
            out = self.refine(out, self.stem_features(inputs))
        return self.cls_seg(out)

    def stem_features(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The stem's 1/4 features, which a ``stem_out=True`` backbone returns last."""
        if len(inputs) <= len(self.in_index):
            raise ValueError(
                "head.detail needs the stem's 1/4 features: set model.backbone.stem_out=True"
            )
        return inputs[-1]

    def refine(
        self, x: torch.Tensor, stem: torch.Tensor, mask: torch.Tensor | float = 1.0
    ) -> torch.Tensor:
        """The detail branch: ``x`` (1/8) upsampled, plus the projected stem features (1/4).

        Args:
            x: The fused 1/8 features.
            stem: The stem's 1/4 features.
            mask: SSR's soft channel mask, applied after every conv.
        """
        d = self.detail_lateral(stem) * mask
        x = F.interpolate(x, size=d.shape[2:], mode="bilinear", align_corners=self.align_corners)
        return self.detail_pw(self.detail_dw(x + d) * mask) * mask


@MODELS.register_module()
class SearchableHead(_FusionHead):
    """Head whose fused stages and channels are chosen per path.

    Args:
        in_channels: Largest channels of the three stage outputs.
        channels: Largest head channels (must be at least ``max(channel_choices)``).
        fusions: ``head.fusion`` choices, e.g. ``('8+16', '8+32', '8+16+32')``.
        channel_choices: ``head.channels`` choices.
        details: ``head.detail`` choices: ``()`` no detail branch (no label), ``(0, 1)``
            searched, ``(1,)`` always.
        detail_channels: Channels of the stem's 1/4 output (``stem_channels[-1]``); needed
            with ``details``.
        **kwargs: ``BaseDecodeHead`` arguments (``num_classes``, ``loss_decode``...).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        fusions: Sequence[str] = HeadSettings.fusions,
        channel_choices: Sequence[int] = HeadSettings.channel_choices,
        details: Sequence[int] = HeadSettings.details,
        detail_channels: int | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("in_index", [0, 1, 2])
        kwargs.setdefault("input_transform", "multiple_select")
        super().__init__(list(in_channels), channels, **kwargs)
        self.search = HeadSettings(tuple(fusions), tuple(channel_choices), tuple(details))
        if details and not detail_channels:
            raise ValueError(
                "decode_head.details needs decode_head.detail_channels: the backbone's "
                "stem_channels[-1] (32 by default)"
            )
        if channels < max(channel_choices):
            raise ValueError(f"channels={channels} < max(channel_choices)={max(channel_choices)}")
        self.lateral = nn.ModuleDict(
            {
                _lateral_key(i): ConvBN(c, channels, 1, elastic=True)
                for i, c in enumerate(in_channels)
            }
        )
        self.fuse = ConvBN(channels, channels, 3, elastic=True)
        self.conv_seg = ElasticConv2d(channels, self.out_channels, 1, bias=True)
        self.fused = fusion_scales(self.search.fusions[-1])
        self.detail = bool(details) and max(details) == 1
        if details:
            for name, module in _detail_modules(detail_channels, channels, True).items():
                self.add_module(name, module)
        object.__setattr__(self, "relaxed", None)  # SSR's ArchWeights, not a submodule

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The active path's logits, or the relaxed mixture's when ``relaxed`` is set."""
        if self.relaxed is not None:
            return relaxed_head(self, inputs, self.relaxed)
        return super().forward(inputs)

    def set_arch(self, arch: Arch) -> None:
        """Sets ``fusion``, ``channels`` and ``detail`` (labels without ``head.``)."""
        self.fused = fusion_scales(arch["fusion"])
        self.detail = has_detail({f"head.{k}": v for k, v in arch.items()})
        for m in (*self.lateral.values(), self.fuse, *self._detail_convs()):
            m.set_out(int(arch["channels"]))

    def _detail_convs(self) -> tuple[nn.Module, ...]:
        if not self.search.details:
            return ()
        return self.detail_lateral, self.detail_dw, self.detail_pw


@MODELS.register_module()
class FixedHead(_FusionHead):
    """Static head of one path, with the same parameter names as :class:`SearchableHead`.

    Args:
        arch: Head sub-arch ``{'fusion': ..., 'channels': ..., 'detail': ...}`` (``head.``
            prefix allowed; no ``detail``: no detail branch).
        in_channels: Channels of the three stage outputs of the chosen path.
        detail_channels: Channels of the stem's 1/4 output (with ``detail=1``).
        **kwargs: ``BaseDecodeHead`` arguments; ``channels`` comes from the arch.
    """

    def __init__(
        self,
        arch: Mapping[str, Any],
        in_channels: Sequence[int],
        detail_channels: int | None = None,
        **kwargs: Any,
    ) -> None:
        arch = {k.removeprefix("head."): v for k, v in arch.items()}
        for key in ("fusions", "channel_choices", "details"):
            kwargs.pop(key, None)
        kwargs["channels"] = int(arch["channels"])
        kwargs.setdefault("in_index", [0, 1, 2])
        kwargs.setdefault("input_transform", "multiple_select")
        super().__init__(list(in_channels), **kwargs)
        self.fused = fusion_scales(arch["fusion"])
        self.lateral = nn.ModuleDict(
            {_lateral_key(i): ConvBN(in_channels[i], self.channels, 1) for i in self.fused}
        )
        self.fuse = ConvBN(self.channels, self.channels, 3)
        self.detail = has_detail({f"head.{k}": v for k, v in arch.items()})
        if self.detail:
            if not detail_channels:
                raise ValueError("FixedHead with detail=1 needs detail_channels")
            for name, module in _detail_modules(detail_channels, self.channels, False).items():
                self.add_module(name, module)
