"""Pyramid pooling head (PSPNet, Zhao et al. 2017) on the last Swin stage, as in NeWCRFs.

Keys follow mmcv's ``ConvModule`` (``conv`` then ``bn`` or ``gn``), so official checkpoints load.
Note the official ``PPM`` switches its norm to GroupNorm(256) at pool scale 1 and never switches
back, so with scales (1, 2, 3, 6) *every* pyramid branch uses GroupNorm; only the bottleneck uses
BatchNorm. We reproduce that. Adaptive pooling is written as matmuls so it exports with dynamic H/W.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import adaptive_avg_pool2d


class ConvNormAct(nn.Module):
    """Conv (no bias) -> BatchNorm or GroupNorm -> ReLU, named like mmcv's ``ConvModule``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, gn_groups: int | None = None):
        """
        Args:
            in_channels: input channels.
            out_channels: output channels.
            kernel_size: 1 or 3 (same padding).
            gn_groups: use GroupNorm with this many groups (key ``gn``); BatchNorm (key ``bn``) when None.
        """
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.norm_name = "gn" if gn_groups else "bn"
        norm = nn.GroupNorm(gn_groups, out_channels) if gn_groups else nn.BatchNorm2d(out_channels)
        self.add_module(self.norm_name, norm)
        self.activate = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(getattr(self, self.norm_name)(self.conv(x)))


class PoolBranch(nn.Module):
    """Adaptive average pool to ``scale`` x ``scale`` then ConvNormAct; key ``1`` as the official Sequential."""

    def __init__(self, scale: int, in_channels: int, channels: int, gn_groups: int | None):
        super().__init__()
        self.scale = scale
        self.add_module("1", ConvNormAct(in_channels, channels, 1, gn_groups=gn_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = adaptive_avg_pool2d(x, self.scale)
        return getattr(self, "1")(pooled)


class PSPHead(nn.Module):
    """Concat the input with its pooled-and-upsampled pyramid, fuse with a 3x3 ConvNormAct."""

    def __init__(self, in_channels: int, channels: int = 512, pool_scales: Sequence[int] = (1, 2, 3, 6),
                 gn_groups: int = 256):
        """
        Args:
            in_channels: channels of the last backbone stage.
            channels: output channels (512 official).
            pool_scales: pyramid bin counts.
            gn_groups: GroupNorm groups of the pyramid branches (official 256).
        """
        super().__init__()
        self.psp_modules = nn.ModuleList([PoolBranch(s, in_channels, channels, gn_groups) for s in pool_scales])
        self.bottleneck = ConvNormAct(in_channels + len(pool_scales) * channels, channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2], x.shape[-1])
        pyramid = [x] + [F.interpolate(branch(x), size=size, mode="bilinear", align_corners=False)
                         for branch in self.psp_modules]
        return self.bottleneck(torch.cat(pyramid, dim=1))
