"""Searchable layers of the supernet and their static (exported) counterparts.

A :class:`SearchLayer` holds every candidate operator of one layer; a :class:`FixedLayer` holds
only the chosen one, under the same child name, so the parameter names of a fixed layer are a
subset of the search layer's and its tensors are prefix slices of the search layer's tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmseg_plugins.models.elastic import ConvBN
from raynas.core.seg_space import expansion

__all__ = ["FRBody", "FixedLayer", "IRBody", "SearchLayer"]


class FRBody(nn.Module):
    """Factorized residual body (ERFNet): 3x1, 1x3, then dilated 3x1, 1x3 convolutions."""

    def __init__(self, channels: int, dilation: int = 1, elastic: bool = False) -> None:
        super().__init__()
        self.conv3x1_1 = ConvBN(channels, channels, (3, 1), elastic=elastic)
        self.conv1x3_1 = ConvBN(channels, channels, (1, 3), elastic=elastic)
        self.conv3x1_2 = ConvBN(channels, channels, (3, 1), dilation=dilation, elastic=elastic)
        self.conv1x3_2 = ConvBN(
            channels, channels, (1, 3), dilation=dilation, act=False, elastic=elastic
        )

    def set_path(self, width: int, dilation: int) -> None:
        for m in (self.conv3x1_1, self.conv1x3_1, self.conv3x1_2, self.conv1x3_2):
            m.set_out(width)
        self.conv3x1_2.set_dilation(dilation)
        self.conv1x3_2.set_dilation(dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x3_2(self.conv3x1_2(self.conv1x3_1(self.conv3x1_1(x))))


class IRBody(nn.Module):
    """Inverted residual body: 1x1 expand, dilated depthwise 3x3, 1x1 project."""

    def __init__(self, channels: int, hidden: int, dilation: int = 1, elastic: bool = False):
        super().__init__()
        self.expand = ConvBN(channels, hidden, 1, elastic=elastic)
        self.dw = ConvBN(hidden, hidden, 3, depthwise=True, dilation=dilation, elastic=elastic)
        self.project = ConvBN(hidden, channels, 1, act=False, elastic=elastic)

    def set_path(self, width: int, hidden: int, dilation: int) -> None:
        self.expand.set_out(hidden)
        self.project.set_out(width)
        self.dw.set_dilation(dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.dw(self.expand(x)))


def _residual(x: torch.Tensor, body: nn.Module, op: str, zoom: int) -> torch.Tensor:
    if zoom == 1:
        y = body(x)
    else:  # the "zoomed" choice: down, conv, up
        y = body(F.avg_pool2d(x, zoom, ceil_mode=True))
        y = F.interpolate(y, size=x.shape[2:], mode="bilinear", align_corners=False)
    return F.relu(x + y) if op == "fr" else x + y


class SearchLayer(nn.Module):
    """All candidate operators of one layer, sharing weights across width and dilation.

    The path is set by :meth:`set_path` and the forward runs only that path. SSR's relaxed
    forward (:mod:`mmseg_plugins.models.relaxed`) mixes the same bodies: every candidate is a
    separate body (``fr``, ``ir``), widths are prefix slices (a soft channel mask is a multiply
    on the same slices) and depth is a stage-level loop.

    Args:
        channels: Largest channels of the stage.
        ops: Candidate operators (``'fr'``, ``'ir3'``, ``'ir6'``).
    """

    def __init__(self, channels: int, ops: tuple[str, ...]) -> None:
        super().__init__()
        if "fr" in ops:
            self.fr = FRBody(channels, elastic=True)
        max_e = max((expansion(op) for op in ops), default=0)
        if max_e:
            self.ir = IRBody(channels, channels * max_e, elastic=True)
        self.op, self.dilation, self.zoom = ops[-1], 1, 1

    def set_path(self, op: str, dilation: int, zoom: int, width: int) -> None:
        self.op, self.dilation, self.zoom = op, dilation, zoom
        if op == "fr":
            self.fr.set_path(width, dilation)
        else:
            self.ir.set_path(width, width * expansion(op), dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = self.fr if self.op == "fr" else self.ir
        return _residual(x, body, self.op, self.zoom)


class FixedLayer(nn.Module):
    """One chosen operator with static shapes; same child names as :class:`SearchLayer`."""

    def __init__(self, channels: int, op: str, dilation: int, zoom: int) -> None:
        super().__init__()
        self.op, self.dilation, self.zoom = op, dilation, zoom
        if op == "fr":
            self.fr = FRBody(channels, dilation)
        else:
            self.ir = IRBody(channels, channels * expansion(op), dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        body = self.fr if self.op == "fr" else self.ir
        return _residual(x, body, self.op, self.zoom)
