"""Small building blocks shared by the Swin backbone and the NeWCRF decoder.

Everything here is written to trace cleanly to ONNX with dynamic H/W: padding amounts and the
shifted-window attention mask are computed from tensor shapes inside the graph, and no Python
branch depends on a spatial size.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Swin's mask value for token pairs from different regions of a shifted window (official: -100).
SHIFTED_WINDOW_MASK_VALUE = -100.0


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at eval time or when ``drop_prob`` is 0)."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)
        mask = x.new_empty(shape).bernoulli_(keep_prob)
        return x * mask / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(nn.Module):
    """Linear -> GELU (exact, as the official code) -> Linear; dropout slots kept for parity."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.0):
        """
        Args:
            in_features: input and output channels.
            hidden_features: hidden width (``mlp_ratio * in_features``).
            drop: dropout after each linear (0 in all URCDC configs).
        """
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def window_partition(x: torch.Tensor, window_size: int) -> torch.Tensor:
    """B, H, W, C -> B*nW, window_size, window_size, C (H, W multiples of window_size)."""
    b, h, w, c = x.shape
    x = x.view(b, h // window_size, window_size, w // window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size, window_size, c)


def window_reverse(windows: torch.Tensor, window_size: int, height: int, width: int) -> torch.Tensor:
    """B*nW, window_size, window_size, C -> B, H, W, C (inverse of ``window_partition``)."""
    c = windows.shape[-1]
    x = windows.view(-1, height // window_size, width // window_size, window_size, window_size, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, c)


def pad_amount(size: int, multiple: int) -> int:
    """How much to pad ``size`` up to a multiple (0 when already aligned)."""
    return (multiple - size % multiple) % multiple


def relative_position_index(window_size: int) -> torch.Tensor:
    """Index into the (2W-1)^2 relative-position-bias table for every token pair of a window."""
    # numpy: a constant built once, also when the model is created on the meta device.
    rows, cols = np.meshgrid(np.arange(window_size), np.arange(window_size), indexing="ij")
    coords = np.stack([rows.ravel(), cols.ravel()])  # 2, W*W
    relative = coords[:, :, None] - coords[:, None, :] + (window_size - 1)  # 2, W*W, W*W
    return torch.from_numpy(relative[0] * (2 * window_size - 1) + relative[1]).to(torch.int64)


def shifted_window_mask(padded_h: int, padded_w: int, window_size: int, shift_size: int,
                        device: torch.device) -> torch.Tensor:
    """Attention mask (nW, W*W, W*W) of 0 / -100 for shifted windows, computed in-graph.

    Same regions as the official slice assignment: rows [0, Hp-W), [Hp-W, Hp-shift), [Hp-shift, Hp)
    (likewise columns) get labels 0..8; token pairs with different labels are masked.
    """
    rows = torch.arange(padded_h, device=device)
    cols = torch.arange(padded_w, device=device)
    region_h = (rows >= padded_h - window_size).long() + (rows >= padded_h - shift_size).long()
    region_w = (cols >= padded_w - window_size).long() + (cols >= padded_w - shift_size).long()
    region = (region_h[:, None] * 3 + region_w[None, :]).to(torch.float32)  # Hp, Wp
    windows = window_partition(region[None, :, :, None], window_size).reshape(-1, window_size * window_size)
    different = windows[:, None, :] != windows[:, :, None]
    return torch.where(different, torch.full_like(different, SHIFTED_WINDOW_MASK_VALUE, dtype=torch.float32),
                       torch.zeros_like(different, dtype=torch.float32))


def padded_key_mask(height: int, width: int, window_size: int, shift_size: int,
                    device: torch.device) -> torch.Tensor:
    """Attention mask (nW, 1, W*W) of 0 / -100 that hides the zero tokens padded at the bottom/right.

    The official Swin lets every token attend to them, so how much of a window is padding (up to
    6 of 7 rows at the last stage) changes the features with the input size, hence the depth scale.
    ``shift_size`` > 0 rolls the padding as the shifted blocks roll their tokens.
    """
    padded_h, padded_w = height + pad_amount(height, window_size), width + pad_amount(width, window_size)
    rows = torch.arange(padded_h, device=device)
    cols = torch.arange(padded_w, device=device)
    padding = ((rows >= height)[:, None] | (cols >= width)[None, :]).to(torch.float32)  # Hp, Wp
    if shift_size > 0:
        padding = torch.roll(padding, shifts=(-shift_size, -shift_size), dims=(0, 1))
    windows = window_partition(padding[None, :, :, None], window_size).reshape(-1, 1, window_size * window_size)
    return windows * SHIFTED_WINDOW_MASK_VALUE


def stage_window_masks(height: int, width: int, window_size: int, shift_size: int, mask_padding: bool,
                       like: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
    """The masks of a stage's plain and shifted blocks: (None or the padding mask, shift mask [+ padding])."""
    shifted = shifted_window_mask(height + pad_amount(height, window_size), width + pad_amount(width, window_size),
                                  window_size, shift_size, like.device).to(like.dtype)
    if not mask_padding:
        return None, shifted
    plain = padded_key_mask(height, width, window_size, 0, like.device).to(like.dtype)
    return plain, shifted + padded_key_mask(height, width, window_size, shift_size, like.device).to(like.dtype)


def adaptive_avg_pool2d(x: torch.Tensor, output_size: int) -> torch.Tensor:
    """``nn.AdaptiveAvgPool2d`` written as two averaging matmuls so it exports with dynamic H/W.

    Bin i covers [floor(i*H/n), ceil((i+1)*H/n)), exactly PyTorch's adaptive-pool bins.
    """
    h, w = x.shape[-2], x.shape[-1]
    pool_h = _adaptive_bins(h, output_size, x)  # n, H
    pool_w = _adaptive_bins(w, output_size, x)  # n, W
    return pool_h @ x @ pool_w.transpose(0, 1)


def _adaptive_bins(size: int, output_size: int, like: torch.Tensor) -> torch.Tensor:
    idx = torch.arange(output_size, device=like.device)
    start = torch.div(idx * size, output_size, rounding_mode="floor")
    end = torch.div((idx + 1) * size + output_size - 1, output_size, rounding_mode="floor")
    pos = torch.arange(size, device=like.device)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    weights = inside.to(like.dtype)
    return weights / weights.sum(dim=1, keepdim=True)


def pad_hw_last(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad a B, H, W, C tensor at the bottom/right to multiples of ``multiple``."""
    h, w = x.shape[1], x.shape[2]
    return F.pad(x, (0, 0, 0, pad_amount(w, multiple), 0, pad_amount(h, multiple)))
