"""Neural window fully-connected CRF decoder blocks (Yuan et al., NeWCRFs, CVPR 2022).

A NeWCRF block is window attention whose queries/keys come from the backbone feature (the unary
term) and whose values come from the coarser prediction (the pairwise message). Same maths and
keys as the official ``NewCRF`` (``proj_x``, ``proj_v``, ``crf_layer.blocks.{j}``, ``norm_crf``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .layers import DropPath, Mlp, pad_hw_last, stage_window_masks, window_partition, window_reverse
from .swin import RelativeWindowAttention


class CRFWindowAttention(RelativeWindowAttention):
    """Window attention with queries/keys from ``x`` and externally supplied values ``v``."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__(dim, window_size, num_heads, input_name="qk", input_factor=2)

    def forward(self, x: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape  # B*nW, W*W, C
        qk = self.qk(x).reshape(b_, n, 2, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.attend(qk[0], qk[1], v.view(b_, n, self.num_heads, -1).transpose(1, 2), mask)


class CRFBlock(nn.Module):
    """Pre-norm CRF window attention (values un-normalised) + MLP, with residuals."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 mlp_ratio: float = 4.0):
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = CRFWindowAttention(dim, window_size=window_size, num_heads=num_heads)
        self.drop_path = nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, v: torch.Tensor, height: int, width: int,
                mask: torch.Tensor | None) -> torch.Tensor:
        b, _, c = x.shape  # x: B, H*W, C; v: B, H, W, C
        shortcut = x
        x = pad_hw_last(self.norm1(x).view(b, height, width, c), self.window_size)
        v = pad_hw_last(v, self.window_size)
        padded_h, padded_w = x.shape[1], x.shape[2]
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
            v = torch.roll(v, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        tokens = self.window_size * self.window_size
        x_windows = window_partition(x, self.window_size).reshape(-1, tokens, c)
        v_windows = window_partition(v, self.window_size).reshape(-1, tokens, v.shape[-1])
        windows = self.attn(x_windows, v_windows, mask=mask)
        x = window_reverse(windows.view(-1, self.window_size, self.window_size, c), self.window_size,
                           padded_h, padded_w)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x[:, :height, :width, :].reshape(b, height * width, c)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class CRFStage(nn.Module):
    """Two CRF blocks (plain, shifted) sharing one value map; official name ``crf_layer``."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, depth: int = 2, mask_padding: bool = False):
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.mask_padding = mask_padding  # hide the windows' zero padding from attention (official: attended)
        self.blocks = nn.ModuleList([
            CRFBlock(dim, num_heads, window_size=window_size, shift_size=0 if i % 2 == 0 else self.shift_size)
            for i in range(depth)])

    def forward(self, x: torch.Tensor, v: torch.Tensor, height: int, width: int) -> torch.Tensor:
        plain_mask, shifted_mask = stage_window_masks(height, width, self.window_size, self.shift_size,
                                                      self.mask_padding, x)
        for block in self.blocks:
            x = block(x, v, height, width, shifted_mask if block.shift_size > 0 else plain_mask)
        return x


class NewCRF(nn.Module):
    """One decoder level: project feature (``proj_x``) and message (``proj_v``) to ``embed_dim``, CRF, norm."""

    def __init__(self, input_dim: int, embed_dim: int, v_dim: int, window_size: int = 7, num_heads: int = 4,
                 mask_padding: bool = False):
        """
        Args:
            input_dim: channels of the backbone feature at this level.
            embed_dim: CRF width (output channels).
            v_dim: channels of the incoming message (PSP output or pixel-shuffled coarser level).
            window_size: CRF window side (7).
            num_heads: attention heads.
            mask_padding: hide the windows' zero padding from attention (official: attended).
        """
        super().__init__()
        self.embed_dim = embed_dim
        # Official: projections exist only when the widths differ (e.g. base07 has no proj_x).
        self.proj_x = nn.Conv2d(input_dim, embed_dim, 3, padding=1) if input_dim != embed_dim else None
        self.proj_v = nn.Conv2d(v_dim, embed_dim, 3, padding=1) if v_dim != embed_dim else None
        self.crf_layer = CRFStage(embed_dim, num_heads, window_size=window_size, mask_padding=mask_padding)
        self.norm_crf = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.proj_x is not None:
            x = self.proj_x(x)
        if self.proj_v is not None:
            v = self.proj_v(v)
        height, width = x.shape[-2], x.shape[-1]
        x = x.flatten(2).transpose(1, 2)  # B, H*W, C
        v = v.permute(0, 2, 3, 1)  # B, H, W, C
        x = self.norm_crf(self.crf_layer(x, v, height, width))
        return x.view(-1, height, width, self.embed_dim).permute(0, 3, 1, 2).contiguous()
