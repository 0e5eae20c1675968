"""Elastic layers: one weight tensor serves every width by prefix slicing (once-for-all style).

An elastic layer takes its input channels from the input tensor and its output channels and
dilation from attributes set by ``set_arch``; setting them changes no parameter shape. Every
slice is a prefix (``weight[:out, :in]``), so a path's weights are the prefix slices of the
supernet's tensors, which :func:`mmseg_plugins.arch.subnet_state_dict` relies on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvBN", "ElasticBatchNorm2d", "ElasticConv2d"]


class ElasticConv2d(nn.Conv2d):
    """A ``Conv2d`` with elastic input/output channels and dilation.

    Args:
        in_channels: Largest input channels.
        out_channels: Largest output channels.
        kernel_size: Kernel size.
        stride: Stride.
        depthwise: Depthwise conv (groups follow the input channels).
        bias: Add a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        depthwise: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            groups=in_channels if depthwise else 1,
            bias=bias,
        )
        self.depthwise = depthwise
        self.active_out = out_channels
        self.active_dilation = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = x.shape[1]
        cout = cin if self.depthwise else self.active_out
        weight = self.weight[:cout] if self.depthwise else self.weight[:cout, :cin]
        bias = None if self.bias is None else self.bias[:cout]
        d = self.active_dilation
        pad = (d * (self.kernel_size[0] // 2), d * (self.kernel_size[1] // 2))
        return F.conv2d(x, weight, bias, self.stride, pad, d, cin if self.depthwise else 1)


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """A ``BatchNorm2d`` that normalises the first ``C`` channels of a ``C``-channel input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:  # cumulative moving average, as nn.BatchNorm2d
                factor = 1.0 / float(self.num_batches_tracked)
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            None if self.running_mean is None else self.running_mean[:c],
            None if self.running_var is None else self.running_var[:c],
            self.weight[:c],
            self.bias[:c],
            use_batch,
            factor,
            self.eps,
        )


class ConvBN(nn.Sequential):
    """Conv + BN (+ optional ReLU), elastic or static, with stable child names ``conv``/``bn``.

    Args:
        in_channels: Input channels (largest, when elastic).
        out_channels: Output channels (largest, when elastic).
        kernel_size: Kernel size.
        stride: Stride.
        depthwise: Depthwise conv.
        dilation: Dilation of a static conv (elastic convs take it from ``set_dilation``).
        act: Append a ReLU.
        elastic: Build elastic layers.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        depthwise: bool = False,
        dilation: int = 1,
        act: bool = True,
        elastic: bool = False,
    ) -> None:
        super().__init__()
        k = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
        if elastic:
            self.conv = ElasticConv2d(in_channels, out_channels, k, stride, depthwise)
            self.bn = ElasticBatchNorm2d(out_channels)
        else:
            pad = (dilation * (k[0] // 2), dilation * (k[1] // 2))
            self.conv = nn.Conv2d(
                in_channels,
                out_channels,
                k,
                stride,
                pad,
                dilation,
                groups=in_channels if depthwise else 1,
                bias=False,
            )
            self.bn = nn.BatchNorm2d(out_channels)
        if act:
            self.act = nn.ReLU(inplace=True)

    def set_out(self, channels: int) -> None:
        self.conv.active_out = channels

    def set_dilation(self, dilation: int) -> None:
        self.conv.active_dilation = dilation
