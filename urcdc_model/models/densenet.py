"""DenseNet feature extractor (Huang et al., 2017) with torchvision's layout and key names.

Written by hand because torchvision is not available here; the module tree matches
``torchvision.models.densenet161().features`` (``conv0``, ``norm0``, ``relu0``, ``pool0``,
``denseblock{i}.denselayer{j}.{norm1,relu1,conv1,norm2,relu2,conv2}``, ``transition{i}.{norm,relu,conv,pool}``,
``norm5``), so torchvision / official URCDC weights load by name. Growth rate, block sizes and stem
width are arguments, which gives the light CNN of the ``nano`` variant.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn


class DenseLayer(nn.Module):
    """BN-ReLU-Conv1x1 (bottleneck) -> BN-ReLU-Conv3x3 producing ``growth_rate`` new channels."""

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, kernel_size=1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, kernel_size=3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, dim=1)
        x = self.conv1(self.relu1(self.norm1(x)))
        return self.conv2(self.relu2(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers, each seeing the concatenation of all earlier outputs."""

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int):
        super().__init__()
        for i in range(num_layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(in_channels + i * growth_rate, growth_rate, bn_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, dim=1)


class Transition(nn.Sequential):
    """BN-ReLU-Conv1x1 halving channels, then 2x2 average pooling (floors odd sizes)."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)


class DenseNetFeatures(nn.Sequential):
    """``densenet.features``: stem, dense blocks with transitions, final ``norm5`` (no ReLU after it)."""

    # Outputs the coupling units attach to (official ``feat_names`` minus relu0).
    TAPS = ("pool0", "transition1", "transition2", "norm5")

    def __init__(self, growth_rate: int = 48, block_config: Sequence[int] = (6, 12, 36, 24),
                 num_init_features: int = 96, bn_size: int = 4):
        """
        Args:
            growth_rate: channels each dense layer adds (48 for DenseNet-161).
            block_config: dense layers per block.
            num_init_features: stem width.
            bn_size: bottleneck width multiplier.
        """
        super().__init__()
        self.conv0 = nn.Conv2d(3, num_init_features, kernel_size=7, stride=2, padding=3, bias=False)
        self.norm0 = nn.BatchNorm2d(num_init_features)
        self.relu0 = nn.ReLU(inplace=True)
        self.pool0 = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        channels = num_init_features
        self.tap_channels = [channels]
        for i, num_layers in enumerate(block_config):
            self.add_module(f"denseblock{i + 1}", DenseBlock(num_layers, channels, growth_rate, bn_size))
            channels += num_layers * growth_rate
            if i != len(block_config) - 1:
                self.add_module(f"transition{i + 1}", Transition(channels, channels // 2))
                channels //= 2
                if i < 2:
                    self.tap_channels.append(channels)
        self.norm5 = nn.BatchNorm2d(channels)
        self.tap_channels.append(channels)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's init: Kaiming-normal convs, unit BatchNorms."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
