"""Searchable decode head (``SearchableHead``) and its static form (``FixedHead``).

The head projects the chosen stage outputs to ``channels`` with 1x1 convs (``lateral``),
upsamples them to 1/8, sums them, refines with a 3x3 conv (``fuse``) and classifies.
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
from raynas.core.seg_space import SCALES, HeadSettings, fusion_scales
from raynas.core.space import Arch

__all__ = ["FixedHead", "SearchableHead"]


def _lateral_key(index: int) -> str:
    return f"s{SCALES[index]}"


class _FusionHead(BaseDecodeHead):
    fused: tuple[int, ...]

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        feats = self._transform_inputs(inputs)
        size = feats[0].shape[2:]
        out = None
        for i in self.fused:
            y = self.lateral[_lateral_key(i)](feats[i])
            if y.shape[2:] != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=self.align_corners)
            out = y if out is None else out + y
        return self.cls_seg(self.fuse(out))


@MODELS.register_module()
class SearchableHead(_FusionHead):
    """Head whose fused stages and channels are chosen per path.

    Args:
        in_channels: Largest channels of the three stage outputs.
        channels: Largest head channels (must be at least ``max(channel_choices)``).
        fusions: ``head.fusion`` choices, e.g. ``('8+16', '8+32', '8+16+32')``.
        channel_choices: ``head.channels`` choices.
        **kwargs: ``BaseDecodeHead`` arguments (``num_classes``, ``loss_decode``...).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int,
        fusions: Sequence[str] = HeadSettings.fusions,
        channel_choices: Sequence[int] = HeadSettings.channel_choices,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("in_index", [0, 1, 2])
        kwargs.setdefault("input_transform", "multiple_select")
        super().__init__(list(in_channels), channels, **kwargs)
        self.search = HeadSettings(tuple(fusions), tuple(channel_choices))
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
        object.__setattr__(self, "relaxed", None)  # SSR's ArchWeights, not a submodule

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """The active path's logits, or the relaxed mixture's when ``relaxed`` is set."""
        if self.relaxed is not None:
            return relaxed_head(self, inputs, self.relaxed)
        return super().forward(inputs)

    def set_arch(self, arch: Arch) -> None:
        """Sets ``fusion`` and ``channels`` (labels without ``head.``)."""
        self.fused = fusion_scales(arch["fusion"])
        for m in (*self.lateral.values(), self.fuse):
            m.set_out(int(arch["channels"]))


@MODELS.register_module()
class FixedHead(_FusionHead):
    """Static head of one path, with the same parameter names as :class:`SearchableHead`.

    Args:
        arch: Head sub-arch ``{'fusion': ..., 'channels': ...}`` (``head.`` prefix allowed).
        in_channels: Channels of the three stage outputs of the chosen path.
        **kwargs: ``BaseDecodeHead`` arguments; ``channels`` comes from the arch.
    """

    def __init__(self, arch: Mapping[str, Any], in_channels: Sequence[int], **kwargs: Any):
        arch = {k.removeprefix("head."): v for k, v in arch.items()}
        for key in ("fusions", "channel_choices"):
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
