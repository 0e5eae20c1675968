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


class _Dilated(nn.Module):
    """A dilated ConvBN shared by every dilation, or one per dilation (``d1``, ``d2``...).

    Args:
        dilations: Separate convs for these dilations (None: one conv for all).
        dilation: The static conv's dilation (shared and static case).
        elastic: Build elastic layers.
        **kwargs: ``ConvBN`` arguments.
    """

    def __init__(self, dilations: tuple[int, ...] | None, dilation: int, elastic: bool,
                 **kwargs) -> None:  # fmt: skip
        super().__init__()
        self.separate, self.active = dilations is not None, dilation
        if self.separate:
            self.per = nn.ModuleDict(
                {f"d{d}": ConvBN(dilation=d, elastic=elastic, **kwargs) for d in dilations}
            )
            for d in dilations if elastic else ():
                self.per[f"d{d}"].set_dilation(d)
        else:
            self.conv = ConvBN(dilation=dilation, elastic=elastic, **kwargs)

    def module(self) -> nn.Module:
        return self.per[f"d{self.active}"] if self.separate else self.conv

    def set_path(self, width: int | None, dilation: int) -> None:
        self.active = dilation
        if width is not None:
            self.module().set_out(width)
        if not self.separate:
            self.conv.set_dilation(dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module()(x)


def _dilated(channels_in: int, channels_out: int, kernel, dilation: int, elastic: bool,
             dilations: tuple[int, ...] | None, **kwargs) -> nn.Module:  # fmt: skip
    """A shared dilated ConvBN (same names as before), or per-dilation ones."""
    if dilations is None:
        return ConvBN(channels_in, channels_out, kernel, dilation=dilation, elastic=elastic,
                      **kwargs)  # fmt: skip
    return _Dilated(dilations, dilation, elastic, in_channels=channels_in,
                    out_channels=channels_out, kernel_size=kernel, **kwargs)  # fmt: skip


def _set(module: nn.Module, width: int | None, dilation: int) -> None:
    if isinstance(module, _Dilated):
        module.set_path(width, dilation)
        return
    if width is not None:
        module.set_out(width)
    module.set_dilation(dilation)


class FRBody(nn.Module):
    """Factorized residual body (ERFNet): 3x1, 1x3, then dilated 3x1, 1x3 convolutions.

    Args:
        channels: Channels (largest, when elastic).
        dilation: Dilation of the static body.
        elastic: Build elastic layers.
        dilations: Separate dilated convs per dilation (None: shared).
    """

    def __init__(self, channels: int, dilation: int = 1, elastic: bool = False,
                 dilations: tuple[int, ...] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.conv3x1_1 = ConvBN(channels, channels, (3, 1), elastic=elastic)
        self.conv1x3_1 = ConvBN(channels, channels, (1, 3), elastic=elastic)
        self.conv3x1_2 = _dilated(channels, channels, (3, 1), dilation, elastic, dilations)
        self.conv1x3_2 = _dilated(channels, channels, (1, 3), dilation, elastic, dilations,
                                  act=False)  # fmt: skip

    def set_path(self, width: int, dilation: int) -> None:
        for m in (self.conv3x1_1, self.conv1x3_1):
            m.set_out(width)
        _set(self.conv3x1_2, width, dilation)
        _set(self.conv1x3_2, width, dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv1x3_2(self.conv3x1_2(self.conv1x3_1(self.conv3x1_1(x))))


class IRBody(nn.Module):
    """Inverted residual body: 1x1 expand, dilated depthwise 3x3, 1x1 project.

    Args:
        channels: Channels (largest, when elastic).
        hidden: Expanded channels (largest, when elastic).
        dilation: Dilation of the static body.
        elastic: Build elastic layers.
        dilations: Separate depthwise convs per dilation (None: shared).
    """

    def __init__(self, channels: int, hidden: int, dilation: int = 1, elastic: bool = False,
                 dilations: tuple[int, ...] | None = None) -> None:  # fmt: skip
        super().__init__()
        self.expand = ConvBN(channels, hidden, 1, elastic=elastic)
        self.dw = _dilated(hidden, hidden, 3, dilation, elastic, dilations, depthwise=True)
        self.project = ConvBN(hidden, channels, 1, act=False, elastic=elastic)

    def set_path(self, width: int, hidden: int, dilation: int) -> None:
        self.expand.set_out(hidden)
        self.project.set_out(width)
        _set(self.dw, None, dilation)

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

    The path is set by :meth:`set_path` and the forward runs only that path. The module is
    built for a differentiable mode to come without a rewrite: every candidate is a separate
    body (``fr``, ``ir``) reachable from one forward, widths are prefix slices (a soft channel
    mask is a multiply on the same slices), and depth is a stage-level loop, so a mixture mode
    only adds architecture weights and a weighted sum over the same bodies.

    Args:
        channels: Largest channels of the stage.
        ops: Candidate operators (``'fr'``, ``'ir3'``, ``'ir6'``).
        dilations: Separate dilated convs per dilation (None: one kernel for all).
        zooms: Separate bodies per zoom (None: one body for all); the zoom-1 body keeps the
            names ``fr``/``ir``, the others are ``fr_z2``...
    """

    def __init__(self, channels: int, ops: tuple[str, ...],
                 dilations: tuple[int, ...] | None = None,
                 zooms: tuple[int, ...] | None = None) -> None:  # fmt: skip
        super().__init__()
        max_e = max((expansion(op) for op in ops), default=0)
        for zoom in zooms or (1,):
            if "fr" in ops:
                fr = FRBody(channels, elastic=True, dilations=dilations)
                self.add_module(_name("fr", zoom), fr)
            if max_e:
                ir = IRBody(channels, channels * max_e, elastic=True, dilations=dilations)
                self.add_module(_name("ir", zoom), ir)
        self.separate_zoom = zooms is not None
        self.op, self.dilation, self.zoom = ops[-1], 1, 1

    def body(self, op: str, zoom: int) -> nn.Module:
        """The body that computes ``op`` at ``zoom``."""
        return getattr(
            self, _name("fr" if op == "fr" else "ir", zoom if self.separate_zoom else 1)
        )

    def set_path(self, op: str, dilation: int, zoom: int, width: int) -> None:
        self.op, self.dilation, self.zoom = op, dilation, zoom
        if op == "fr":
            self.body(op, zoom).set_path(width, dilation)
        else:
            self.body(op, zoom).set_path(width, width * expansion(op), dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _residual(x, self.body(self.op, self.zoom), self.op, self.zoom)


class FixedLayer(nn.Module):
    """One chosen operator with static shapes; same child names as :class:`SearchLayer`.

    Args:
        channels: Channels.
        op: Operator.
        dilation: Dilation.
        zoom: Zoom.
        share_dilation: The supernet shares one kernel across dilations.
        share_zoom: The supernet shares one body across zooms.
    """

    def __init__(self, channels: int, op: str, dilation: int, zoom: int,
                 share_dilation: bool = True, share_zoom: bool = True) -> None:  # fmt: skip
        super().__init__()
        self.op, self.dilation, self.zoom = op, dilation, zoom
        dilations = None if share_dilation else (dilation,)
        name = _name("fr" if op == "fr" else "ir", 1 if share_zoom else zoom)
        if op == "fr":
            body = FRBody(channels, dilation, dilations=dilations)
        else:
            body = IRBody(channels, channels * expansion(op), dilation, dilations=dilations)
        self.add_module(name, body)
        self._body = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _residual(x, getattr(self, self._body), self.op, self.zoom)


def _name(kind: str, zoom: int) -> str:
    return kind if zoom == 1 else f"{kind}_z{zoom}"
