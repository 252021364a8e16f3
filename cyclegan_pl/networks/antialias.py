"""Blur pooling: the fixed low-pass layers of the anti-aliased networks (docs/method.md#cut-and-fastcut).

CUT's networks replace every strided convolution by a stride-1 convolution followed by
:class:`Downsample`, and every transposed convolution by :class:`Upsample` followed by a stride-1
convolution. Both layers filter each channel on its own (a depthwise convolution) with a fixed
binomial kernel kept as the buffer ``filt``, so the published code's checkpoints, which hold that
buffer, load with ``strict=True`` and the blur is never trained.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Downsample", "Upsample", "binomial_filter"]


def binomial_filter(taps: int) -> torch.Tensor:
    """The 2-D binomial kernel of ``taps`` x ``taps`` (outer product of a Pascal row), summing to 1."""
    row = torch.tensor([math.comb(taps - 1, k) for k in range(taps)], dtype=torch.float64)
    kernel = torch.outer(row, row)
    return (kernel / kernel.sum()).float()


class Downsample(nn.Module):
    """Blur, then keep every other pixel: ``H x W -> ceil(H/2) x ceil(W/2)``.

    Reflection-pads one pixel on each side, then convolves each channel with the 3x3 kernel
    ``outer([1,2,1], [1,2,1]) / 16`` at stride 2.

    Args:
        channels: channels of the input (the kernel is repeated once per channel).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.pad = nn.ReflectionPad2d(1)
        self.register_buffer("filt", binomial_filter(3)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.filt, stride=2, groups=x.shape[1])

    def extra_repr(self) -> str:
        return f"channels={self.channels}"


class Upsample(nn.Module):
    """Insert zeros between pixels and blur: ``H x W -> 2H x 2W``.

    Replication-pads one pixel on each side, runs a depthwise stride-2 transposed convolution
    (padding 2) with the 4x4 kernel ``outer([1,3,3,1], [1,3,3,1]) / 64 * 4`` (the factor 4 keeps
    the mean intensity after zero insertion), then drops the first and the last row and column.

    Args:
        channels: channels of the input (the kernel is repeated once per channel).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.pad = nn.ReplicationPad2d(1)
        self.register_buffer("filt", (binomial_filter(4) * 4)[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (H + 2 - 1) * 2 - 2 * 2 + 4 = 2H + 2 rows before the crop.
        out = F.conv_transpose2d(self.pad(x), self.filt, stride=2, padding=2, groups=x.shape[1])
        return out[:, :, 1:-1, 1:-1]

    def extra_repr(self) -> str:
        return f"channels={self.channels}"
