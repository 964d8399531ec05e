"""Depth Gradient Refinement (DGR): fixed high-pass responses, SE recalibration, residual fusion.

From the second seed paper's DGR module; its released code does not run (channel mismatches, an
un-initialised ∇³ kernel). What this version does:

- ∇²: the 4-neighbour Laplacian [[0,1,0],[1,-4,1],[0,1,0]] / 4, depthwise, fixed.
- ∇³: the paper's fixed 3×3 kernel [[-1,2,-1],[2,-4,2],[-1,2,-1]] / 4 applied to x *in parallel*
  with ∇² (not stacked on it). It is −δ²ₓδ²ᵧ, a mixed difference that responds to corners and
  diagonal structure the isotropic Laplacian cancels; stacking it on ∇² would give a 5×5, 6th-order
  filter that mostly amplifies noise. (No odd-order operator is isotropic, so "∇³" is a name for this
  higher-order kernel, not a literal third derivative.) Both kernels are scaled to a centre of −1 so
  the three inputs of the fusion have comparable magnitude; borders use replicate padding so the
  image edge is not read as a depth edge.
- [x, ∇²x, ∇³x] (3C) → squeeze-and-excitation over 3C → 3×3 conv (3C → hidden) → activation →
  1×1 conv (hidden → C) → + x. The last conv is zero-initialised, so a freshly added DGR is the
  identity and enabling it does not disturb a loaded checkpoint.

The kernels are non-persistent buffers: they are constants, not weights, and stay out of state dicts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAPLACIAN_KERNEL = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]) / 4.0
THIRD_ORDER_KERNEL = torch.tensor([[-1.0, 2.0, -1.0], [2.0, -4.0, 2.0], [-1.0, 2.0, -1.0]]) / 4.0


class SqueezeExcite(nn.Module):
    """Channel recalibration: global average → bottleneck MLP → sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 4, act_layer: type[nn.Module] = nn.ReLU):
        """
        Args:
            channels: input and output channels.
            reduction: bottleneck is `channels // reduction` wide (at least 8).
            act_layer: activation inside the bottleneck.
        """
        super().__init__()
        hidden = max(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, hidden, kernel_size=1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, channels, kernel_size=1)

    def forward(self, x: Tensor) -> Tensor:
        gate = torch.sigmoid(self.fc2(self.act(self.fc1(x.mean(dim=(2, 3), keepdim=True)))))  # B, C, 1, 1
        return x * gate


class FixedDepthwiseFilter(nn.Module):
    """The same fixed 3×3 kernel applied to every channel, replicate-padded."""

    def __init__(self, kernel: Tensor):
        super().__init__()
        self.register_buffer("kernel", kernel.reshape(1, 1, 3, 3).clone(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        channels = x.shape[1]
        weight = self.kernel.to(dtype=x.dtype).expand(channels, 1, 3, 3)
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=channels)


class DepthGradientRefinement(nn.Module):
    """Residual refinement of a feature map by its fixed second- and higher-order responses."""

    def __init__(self, channels: int, hidden_channels: int | None = None, se_reduction: int = 4,
                 act_layer: type[nn.Module] = nn.GELU):
        """
        Args:
            channels: C of the feature map refined (input = output channels).
            hidden_channels: width of the 3×3 fusion conv; defaults to C.
            se_reduction: bottleneck ratio of the squeeze-and-excitation over 3C.
            act_layer: activation after the fusion conv.
        """
        super().__init__()
        if channels < 1:
            raise ValueError(f"DepthGradientRefinement: channels must be >= 1, got {channels}")
        hidden_channels = hidden_channels or channels
        self.laplacian = FixedDepthwiseFilter(LAPLACIAN_KERNEL)
        self.third_order = FixedDepthwiseFilter(THIRD_ORDER_KERNEL)
        self.se = SqueezeExcite(3 * channels, reduction=se_reduction)
        self.fuse = nn.Conv2d(3 * channels, hidden_channels, kernel_size=3, padding=1)
        self.act = act_layer()
        self.proj = nn.Conv2d(hidden_channels, channels, kernel_size=1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        responses = torch.cat([x, self.laplacian(x), self.third_order(x)], dim=1)  # B, 3C, H, W
        return x + self.proj(self.act(self.fuse(self.se(responses))))
