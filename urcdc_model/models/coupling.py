"""Transformer-to-CNN coupling unit (the official ``ConvBlock``, from Conformer, Peng et al. 2021).

The (detached) Swin stage output is normalised and added inside a CNN bottleneck, whose result
replaces the CNN feature: ``relu(x + bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x))) + relu(bn(t))))))))``.
Keys: ``bn``, ``conv1..3``, ``bn1..3``. In training the unit is skipped with probability 0.05.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class CouplingUnit(nn.Module):
    """Fuse a Transformer feature (``transformer_channels``) into a CNN feature (``cnn_channels``)."""

    def __init__(self, cnn_channels: int, transformer_channels: int, skip_prob: float = 0.05):
        """
        Args:
            cnn_channels: channels of the CNN feature (in and out).
            transformer_channels: channels of the Swin stage output; also the bottleneck width.
            skip_prob: probability of passing the CNN feature through unchanged in training.
        """
        super().__init__()
        self.skip_prob = skip_prob
        self.bn = nn.BatchNorm2d(transformer_channels)
        self.act = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cnn_channels, transformer_channels, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(transformer_channels)
        self.act1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(transformer_channels, transformer_channels, kernel_size=3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(transformer_channels)
        self.act2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(transformer_channels, cnn_channels, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(cnn_channels)
        self.act3 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, x_t: torch.Tensor) -> torch.Tensor:
        """x: B,Cc,h,w CNN feature; x_t: B,Ct,>=h,>=w Transformer feature (cropped to x's size)."""
        if self.training and torch.rand(()).item() < self.skip_prob:
            return x
        x_t = x_t[:, :, : x.shape[-2], : x.shape[-1]]
        x_t = self.act(self.bn(x_t))
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.act2(self.bn2(self.conv2(y + x_t)))
        return self.act3(self.bn3(self.conv3(y)) + x)
