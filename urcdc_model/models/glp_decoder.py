"""CNN-branch decoder: GLPDepth's selective feature fusion (Kim et al., 2022), as in URCDC-Depth.

Keys as the official ``Decoder_CNN`` (``bot_conv``, ``skip_conv1``, ``skip_conv2``, ``fusion1..3``).
Upsampling goes to the skip feature's size (identical to the official x2 when H, W are multiples of
32, and also valid for other sizes, where DenseNet's pooling floors odd sizes).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def _upsample_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class SelectiveFeatureFusion(nn.Module):
    """Predict two sigmoid maps from [local, global] and blend the two features with them."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(2 * channels, channels, 3, padding=1), nn.BatchNorm2d(channels),
                                   nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(channels, channels // 2, 3, padding=1),
                                   nn.BatchNorm2d(channels // 2), nn.ReLU())
        self.conv3 = nn.Conv2d(channels // 2, 2, 3, padding=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x_local: torch.Tensor, x_global: torch.Tensor) -> torch.Tensor:
        attn = self.sigmoid(self.conv3(self.conv2(self.conv1(torch.cat((x_local, x_global), dim=1)))))
        return x_local * attn[:, 0:1] + x_global * attn[:, 1:2]


class GLPDecoder(nn.Module):
    """Four CNN features (H/4..H/32) -> one ``channels``-wide map at 4x the H/4 resolution."""

    def __init__(self, in_channels: Sequence[int], channels: int):
        """
        Args:
            in_channels: channels of the H/32, H/16 and H/8 features (official: 2208, 384, 192).
            channels: decoder width; must equal the H/4 feature's channels (official: 96).
        """
        super().__init__()
        self.bot_conv = nn.Conv2d(in_channels[0], channels, kernel_size=1)
        self.skip_conv1 = nn.Conv2d(in_channels[1], channels, kernel_size=1)
        self.skip_conv2 = nn.Conv2d(in_channels[2], channels, kernel_size=1)
        self.fusion1 = SelectiveFeatureFusion(channels)
        self.fusion2 = SelectiveFeatureFusion(channels)
        self.fusion3 = SelectiveFeatureFusion(channels)

    def forward(self, x_1: torch.Tensor, x_2: torch.Tensor, x_3: torch.Tensor, x_4: torch.Tensor) -> torch.Tensor:
        out = self.fusion1(self.skip_conv1(x_3), _upsample_to(self.bot_conv(x_4), x_3.shape[-2:]))  # H/16
        out = self.fusion2(self.skip_conv2(x_2), _upsample_to(out, x_2.shape[-2:]))  # H/8
        out = self.fusion3(x_1, _upsample_to(out, x_1.shape[-2:]))  # H/4
        return _upsample2(_upsample2(out))  # H
