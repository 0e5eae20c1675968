"""Supernet backbone (``SegSuperNet``) and the static backbone of one path (``SegSubNet``).

Stem to 1/4, then three stages at 1/8, 1/16 and 1/32. Each stage is a stride-2 ``downsample``
conv and up to ``max_depths[i]`` residual layers; every layer chooses operator, dilation and
resolution, every stage its depth and width (see :mod:`raynas.core.seg_space`). With
``stem_out=True`` the stem's 1/4 output is returned last, for the head's detail branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS
from torch import nn

from mmseg_plugins.models.blocks import FixedLayer, SearchLayer
from mmseg_plugins.models.elastic import ConvBN
from mmseg_plugins.models.relaxed import relaxed_backbone
from raynas.core.seg_space import BackboneSettings, stage_arch, stage_width
from raynas.core.space import Arch

__all__ = ["SegSubNet", "SegSuperNet"]


class _Stage(nn.Module):
    def __init__(self, downsample: nn.Module, layers: list[nn.Module]) -> None:
        super().__init__()
        self.downsample = downsample
        self.layers = nn.ModuleList(layers)
        self.depth = len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.downsample(x)
        for layer in self.layers[: self.depth]:
            x = layer(x)
        return x


def _stem(settings: BackboneSettings) -> nn.Sequential:
    c0, c1 = settings.stem_channels
    return nn.Sequential(ConvBN(3, c0, 3, stride=2), ConvBN(c0, c1, 3, stride=2))


class _Backbone(BaseModule):
    out_indices: tuple[int, ...]
    num_stages: int
    stem_out: bool

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """Stage outputs at ``out_indices`` (None for stages the path does not compute), then
        the stem's output if ``stem_out``."""
        x = stem = self.stem(x)
        outs: list[torch.Tensor | None] = [None] * len(self.settings.max_depths)
        for i, stage in enumerate(self.stages[: self.num_stages]):
            x = stage(x)
            outs[i] = x
        return self.outputs(outs, stem)

    def outputs(self, stages: list, stem: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The returned tuple of the stage outputs and the stem's output."""
        return tuple(stages[i] for i in self.out_indices) + ((stem,) if self.stem_out else ())


@MODELS.register_module()
class SegSuperNet(_Backbone):
    """Weight-sharing supernet backbone.

    Args:
        arch_settings: :class:`raynas.core.seg_space.BackboneSettings` fields.
        out_indices: Stages whose outputs are returned.
        stem_out: Also return the stem's 1/4 output, last (for ``head.detail``).
        init_cfg: mmengine init config.
    """

    def __init__(
        self,
        arch_settings: Mapping[str, Any] | None = None,
        out_indices: tuple[int, ...] = (0, 1, 2),
        stem_out: bool = False,
        init_cfg: dict | list | None = None,
    ) -> None:
        super().__init__(init_cfg)
        self.settings = BackboneSettings.from_cfg(arch_settings)
        self.out_indices, self.stem_out = tuple(out_indices), stem_out
        self.stem = _stem(self.settings)
        stages, cin = [], self.settings.stem_channels[-1]
        for i, depth in enumerate(self.settings.max_depths):
            cmax = self.settings.max_width(i)
            down = ConvBN(cin, cmax, 3, stride=2, elastic=True)
            stages.append(
                _Stage(down, [SearchLayer(cmax, self.settings.ops) for _ in range(depth)])
            )
            cin = cmax
        self.stages = nn.ModuleList(stages)
        self.num_stages = len(stages)
        object.__setattr__(self, "relaxed", None)  # SSR's ArchWeights, not a submodule

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        """The active path's stage outputs, or the relaxed mixture when ``relaxed`` is set."""
        if self.relaxed is not None:
            return relaxed_backbone(self, x, self.relaxed)
        return super().forward(x)

    def set_arch(self, arch: Arch, num_stages: int | None = None) -> None:
        """Sets the active path from a backbone sub-arch (labels without ``backbone.``).

        Args:
            arch: The backbone sub-arch.
            num_stages: Stages to compute (the head's deepest fused stage + 1); default all.
        """
        full = {f"backbone.{k}": v for k, v in arch.items()}
        self.num_stages = len(self.stages) if num_stages is None else num_stages
        for i, stage in enumerate(self.stages[: self.num_stages]):
            depth, ratio, layers = stage_arch(full, i)
            width = stage_width(self.settings.stage_channels[i], ratio)
            stage.depth = depth
            stage.downsample.set_out(width)
            for layer, (op, dilation, zoom) in zip(stage.layers, layers):
                layer.set_path(op, dilation, zoom, width)


@MODELS.register_module()
class SegSubNet(_Backbone):
    """The static backbone of one path: plain convolutions, no search machinery.

    Parameter names equal the supernet's names for the same path, so supernet weights load
    into it by key (see :func:`mmseg_plugins.arch.subnet_state_dict`).

    Args:
        arch: Backbone sub-arch (labels without ``backbone.``) or a full arch.
        arch_settings: The supernet's :class:`raynas.core.seg_space.BackboneSettings` fields.
        out_indices: Stages whose outputs are returned (None for stages not computed).
        num_stages: Stages the path computes (the head's deepest fused stage + 1).
        stem_out: Also return the stem's 1/4 output, last.
        init_cfg: mmengine init config (e.g. ``Pretrained`` with inherited weights).
    """

    def __init__(
        self,
        arch: Mapping[str, Any],
        arch_settings: Mapping[str, Any] | None = None,
        out_indices: tuple[int, ...] = (0, 1, 2),
        num_stages: int = 3,
        stem_out: bool = False,
        init_cfg: dict | list | None = None,
    ) -> None:
        super().__init__(init_cfg)
        self.settings = BackboneSettings.from_cfg(arch_settings)
        self.out_indices, self.stem_out = tuple(out_indices), stem_out
        full = {(k if k.startswith("backbone.") else f"backbone.{k}"): v for k, v in arch.items()}
        self.stem = _stem(self.settings)
        stages, cin = [], self.settings.stem_channels[-1]
        for i in range(num_stages):
            _, ratio, layers = stage_arch(full, i)
            width = stage_width(self.settings.stage_channels[i], ratio)
            stages.append(
                _Stage(
                    ConvBN(cin, width, 3, stride=2), [FixedLayer(width, *spec) for spec in layers]
                )
            )
            cin = width
        self.stages = nn.ModuleList(stages)
        self.num_stages = num_stages
