"""FLOPs and parameters of any supernet path from closed-form per-layer tables (pure Python).

The counting rules are mmengine's ``FlopAnalyzer`` rules in eval mode, so the figures agree with
``mmengine.analysis`` run on the exported static subnet (checked in the tests): a convolution
counts ``prod(weight.shape) * H_out * W_out`` (multiplies only, no bias), a BatchNorm
``2 * numel``, a bilinear resize ``4 * numel(output)``; ReLU, additions and pooling count 0.
The figures are for one image of ``input_size`` through backbone and decode head (the logits at
1/8 resolution, 1/4 with ``head.detail``, as ``EncoderDecoder`` returns them in ``tensor`` mode).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from raynas.core.seg_space import (
    HEAD,
    BackboneSettings,
    HeadSettings,
    expansion,
    fusion_scales,
    has_detail,
    needed_stages,
    stage_arch,
    stage_width,
)

if TYPE_CHECKING:
    from raynas.core.space import SearchSpace

__all__ = ["Complexity", "PathComplexity", "detail_branch"]


@dataclass(frozen=True)
class Complexity:
    """FLOPs (multiply-accumulates, mmengine's convention) and parameters of a path."""

    flops: int
    params: int

    def __add__(self, other: Complexity) -> Complexity:
        return Complexity(self.flops + other.flops, self.params + other.params)

    def __mul__(self, n: int) -> Complexity:
        return Complexity(self.flops * n, self.params * n)


_ZERO = Complexity(0, 0)


def _down(size: tuple[int, int], stride: int = 2) -> tuple[int, int]:
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


@lru_cache(maxsize=65536)
def _conv_bn(
    cin: int,
    cout: int,
    k: tuple[int, int],
    size: tuple[int, int],
    depthwise: bool = False,
    bn: bool = True,
    bias: bool = False,
) -> Complexity:
    weights = cout * (1 if depthwise else cin) * k[0] * k[1]
    flops = weights * size[0] * size[1]
    params = weights + (cout if bias else 0)
    if bn:
        flops += 2 * cout * size[0] * size[1]
        params += 2 * cout
    return Complexity(flops, params)


@lru_cache(maxsize=65536)
def _layer(op: str, zoom: int, width: int, size: tuple[int, int]) -> Complexity:
    inner = size if zoom == 1 else _down(size, zoom)
    if op == "fr":
        body = (_conv_bn(width, width, (3, 1), inner) + _conv_bn(width, width, (1, 3), inner)) * 2
    else:
        hidden = width * expansion(op)
        body = (
            _conv_bn(width, hidden, (1, 1), inner)
            + _conv_bn(hidden, hidden, (3, 3), inner, depthwise=True)
            + _conv_bn(hidden, width, (1, 1), inner)
        )
    resize = 4 * width * size[0] * size[1] if zoom != 1 else 0
    return body + Complexity(resize, 0)


class PathComplexity:
    """Closed-form FLOPs/params of supernet paths.

    Args:
        backbone: Backbone search settings.
        head: Head search settings.
        num_classes: Output channels of the classifier.
        input_size: ``(H, W)`` of the input image.
    """

    def __init__(
        self,
        backbone: BackboneSettings,
        head: HeadSettings,
        num_classes: int,
        input_size: tuple[int, int],
    ) -> None:
        self.backbone, self.head = backbone, head
        self.num_classes, self.input_size = num_classes, tuple(input_size)

    @classmethod
    def from_model_cfg(cls, model: Mapping[str, Any], input_size: tuple[int, int]):
        """From an mmseg supernet model config (``cfg.model``)."""
        head = model["decode_head"]
        return cls(
            BackboneSettings.from_cfg(model["backbone"].get("arch_settings")),
            HeadSettings.from_cfg(head),
            int(head.get("out_channels") or head["num_classes"]),
            input_size,
        )

    def __call__(self, arch: Mapping[str, Any]) -> Complexity:
        c0, c1 = self.backbone.stem_channels
        size = _down(self.input_size)
        total = _conv_bn(3, c0, (3, 3), size)
        size = _down(size)
        total += _conv_bn(c0, c1, (3, 3), size)
        cin, widths, sizes = c1, [], []
        for i in range(needed_stages(arch[f"{HEAD}fusion"])):
            channels = self.backbone.stage_channels[i]
            _, ratio, layers = stage_arch(arch, i)
            width = stage_width(channels, ratio)
            size = _down(size)
            total += _conv_bn(cin, width, (3, 3), size)
            for op, _dilation, zoom in layers:
                total += _layer(op, zoom, width, size)
            cin = width
            widths.append(width)
            sizes.append(size)
        return total + self._head(arch, widths, sizes)

    def span(self, space: SearchSpace, key: str) -> tuple[float, float]:
        """The ``key`` (``'flops'`` or ``'params'``) of the cheapest and the dearest path of
        ``space`` (:meth:`SearchSpace.cost_range`)."""
        return space.cost_range(lambda arch: getattr(self(arch), key))

    def _head(
        self, arch: Mapping[str, Any], widths: list[int], sizes: list[tuple[int, int]]
    ) -> Complexity:
        ch = int(arch[f"{HEAD}channels"])
        total = _ZERO
        for i in fusion_scales(arch[f"{HEAD}fusion"]):
            total += _conv_bn(widths[i], ch, (1, 1), sizes[i])
            if sizes[i] != sizes[0]:
                total += Complexity(4 * ch * sizes[0][0] * sizes[0][1], 0)
        total += _conv_bn(ch, ch, (3, 3), sizes[0])
        out = sizes[0]
        if has_detail(arch):
            out = _down(_down(self.input_size))
            total += detail_branch(self.backbone.stem_channels[-1], ch, out)
        return total + _conv_bn(ch, self.num_classes, (1, 1), out, bn=False, bias=True)


def detail_branch(stem: int, ch: int, size: tuple[int, int]) -> Complexity:
    """The head's detail branch at 1/4 (``size``): the stem's ``stem`` channels projected to
    ``ch``, the 1/8 features resized, a depthwise and a pointwise conv."""
    resize = Complexity(4 * ch * size[0] * size[1], 0)
    lateral = _conv_bn(stem, ch, (1, 1), size)
    refine = _conv_bn(ch, ch, (3, 3), size, depthwise=True) + _conv_bn(ch, ch, (1, 1), size)
    return lateral + resize + refine
