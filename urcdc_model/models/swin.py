"""Swin Transformer backbone (Liu et al., 2021), as used by NeWCRFs / URCDC-Depth.

Same maths and state-dict keys as the official detection-style backbone (``patch_embed``,
``layers.{i}.blocks.{j}``, ``layers.{i}.downsample``, one LayerNorm ``norm{i}`` per output stage).
Differences from the original: padding and the shifted-window mask are computed from tensor
shapes (exportable with dynamic H/W); the DenseNet branch the official backbone also holds lives
in ``urcdc.CoupledBackbone``.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from .layers import (DropPath, Mlp, pad_amount, pad_hw_last, relative_position_index, stage_window_masks,
                     window_partition, window_reverse)


class RelativeWindowAttention(nn.Module):
    """What Swin's and NeWCRF's window attentions share: the relative position bias, the scaled
    softmax attention with an optional shift mask, and the output projection.

    Subclasses differ only in the input projection, registered here under the official key name
    (``qkv`` for Swin, ``qk`` for NeWCRF, whose values come from outside) so parameters are created
    in the official order.
    """

    def __init__(self, dim: int, window_size: int, num_heads: int, input_name: str, input_factor: int):
        """
        Args:
            dim: token channels.
            window_size: side of the square window.
            num_heads: attention heads (``dim`` must divide evenly).
            input_name, input_factor: the input projection's key and its output width / ``dim``.
        """
        super().__init__()
        self.window_size = window_size
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window_size - 1) ** 2, num_heads))
        # Persistent: the official checkpoints contain it, so strict loading needs the key.
        self.register_buffer("relative_position_index", relative_position_index(window_size))
        self.add_module(input_name, nn.Linear(dim, dim * input_factor))
        self.attn_drop = nn.Dropout(0.0)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.0)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """q, k, v: B*nW, nH, N, C/nH -> B*nW, N, C after the output projection."""
        tokens = q.shape[2]
        attn = (q * self.scale) @ k.transpose(-2, -1)
        attn = attn + relative_bias(self.relative_position_bias_table, self.relative_position_index, tokens)
        attn = masked_softmax(attn, mask, self.num_heads)
        x = (self.attn_drop(attn) @ v).transpose(1, 2).flatten(2)
        return self.proj_drop(self.proj(x))


class WindowAttention(RelativeWindowAttention):
    """Multi-head self-attention inside a window, with a learned relative position bias."""

    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__(dim, window_size, num_heads, input_name="qkv", input_factor=3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        b_, n, c = x.shape  # B*nW, W*W, C
        qkv = self.qkv(x).reshape(b_, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        return self.attend(qkv[0], qkv[1], qkv[2], mask)


def relative_bias(table: torch.Tensor, index: torch.Tensor, tokens: int) -> torch.Tensor:
    """nH, N, N bias gathered from the (2W-1)^2 x nH table; leading 1 for broadcasting."""
    bias = table[index.view(-1)].view(tokens, tokens, -1).permute(2, 0, 1)
    return bias.unsqueeze(0)


def masked_softmax(attn: torch.Tensor, mask: torch.Tensor | None, num_heads: int) -> torch.Tensor:
    """Softmax over keys, adding a per-window mask (nW, N, N), or (nW, 1, N) for keys only, when given."""
    if mask is not None:
        n_windows, n = mask.shape[0], attn.shape[-1]
        attn = attn.view(-1, n_windows, num_heads, n, n) + mask.unsqueeze(1).unsqueeze(0)
        attn = attn.view(-1, num_heads, n, n)
    return attn.softmax(dim=-1)


class SwinBlock(nn.Module):
    """Pre-norm (shifted) window attention + MLP, each with a residual."""

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, shift_size: int = 0,
                 mlp_ratio: float = 4.0, drop_path: float = 0.0):
        """
        Args:
            dim: token channels.
            num_heads: attention heads.
            window_size: window side.
            shift_size: cyclic shift (0 or window_size // 2).
            mlp_ratio: MLP hidden width / dim.
            drop_path: stochastic-depth rate of this block.
        """
        super().__init__()
        self.window_size = window_size
        self.shift_size = shift_size
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, window_size=window_size, num_heads=num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, height: int, width: int, mask: torch.Tensor | None) -> torch.Tensor:
        """``mask``: this block's attention mask (the stage's shift mask when shifted), or None."""
        b, _, c = x.shape  # B, H*W, C
        shortcut = x
        x = pad_hw_last(self.norm1(x).view(b, height, width, c), self.window_size)
        padded_h, padded_w = x.shape[1], x.shape[2]
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        windows = window_partition(x, self.window_size).reshape(-1, self.window_size * self.window_size, c)
        windows = self.attn(windows, mask=mask)
        x = window_reverse(windows.view(-1, self.window_size, self.window_size, c), self.window_size,
                           padded_h, padded_w)
        if self.shift_size > 0:
            x = torch.roll(x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
        x = x[:, :height, :width, :].reshape(b, height * width, c)
        x = shortcut + self.drop_path(x)
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging(nn.Module):
    """2x2 neighbourhood concat -> LayerNorm -> Linear(4C, 2C): halves H and W (odd sizes padded)."""

    def __init__(self, dim: int):
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        b, _, c = x.shape
        x = x.view(b, height, width, c)
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
        return self.reduction(self.norm(x.view(b, -1, 4 * c)))  # B, H/2*W/2, 2C


class SwinStage(nn.Module):
    """``depth`` blocks alternating plain and shifted windows, then optional patch merging."""

    def __init__(self, dim: int, depth: int, num_heads: int, window_size: int = 7, mlp_ratio: float = 4.0,
                 drop_path: Sequence[float] = (), downsample: bool = True, mask_padding: bool = False):
        """
        Args:
            dim: token channels of this stage.
            depth: number of blocks.
            num_heads: attention heads.
            window_size: window side.
            mlp_ratio: MLP hidden width / dim.
            drop_path: per-block stochastic-depth rates (zeros when empty).
            downsample: end with ``PatchMerging`` (all stages but the last).
            mask_padding: hide the windows' zero padding from attention (official: attended).
        """
        super().__init__()
        self.window_size = window_size
        self.shift_size = window_size // 2
        self.mask_padding = mask_padding
        rates = list(drop_path) or [0.0] * depth
        self.blocks = nn.ModuleList([
            SwinBlock(dim, num_heads, window_size=window_size, shift_size=0 if i % 2 == 0 else self.shift_size,
                      mlp_ratio=mlp_ratio, drop_path=rates[i])
            for i in range(depth)])
        self.downsample = PatchMerging(dim) if downsample else None

    def forward(self, x: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (stage output B,H*W,C; merged tokens B,ceil(H/2)*ceil(W/2),2C or None)."""
        plain_mask, shifted_mask = stage_window_masks(height, width, self.window_size, self.shift_size,
                                                      self.mask_padding, x)
        for block in self.blocks:
            x = block(x, height, width, shifted_mask if block.shift_size > 0 else plain_mask)
        down = self.downsample(x, height, width) if self.downsample is not None else None
        return x, down


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection (Conv k=s=patch) + LayerNorm; pads H, W to the patch size."""

    def __init__(self, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96):
        super().__init__()
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        x = F.pad(x, (0, pad_amount(w, self.patch_size), 0, pad_amount(h, self.patch_size)))
        x = self.proj(x)  # B, C, H/4, W/4
        hp, wp = x.shape[-2], x.shape[-1]
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x.transpose(1, 2).reshape(-1, self.embed_dim, hp, wp)


class SwinTransformer(nn.Module):
    """Four-stage Swin backbone returning B,C_i,H/2^(i+2),W/2^(i+2) maps, each after ``norm{i}``."""

    def __init__(self, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 7, patch_size: int = 4,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.3, ape_grid: Sequence[int] = (),
                 ray_focal_px: float = 0.0, mask_padding: bool = False):
        """
        Args:
            embed_dim: channels of stage 0 (doubled each stage).
            depths: blocks per stage.
            num_heads: attention heads per stage.
            window_size: window side (7 for the ``*07`` variants).
            patch_size: patch-embedding stride.
            mlp_ratio: MLP hidden width / dim.
            drop_path_rate: stochastic depth, linearly increasing over all blocks (official: 0.3).
            ape_grid: (rows, cols) of a learned absolute position embedding added after the patch
                embedding and resized bicubically to the input's patch grid (official ``ape=True``,
                whose grid is pretrain_img_size / patch_size); () = none (official default).
            ray_focal_px: with a focal length (px of the network input), each patch also gets a learned
                linear embedding of its ray direction, ((u - cx) / f, (v - cy) / f) about the image
                centre, added after the patch embedding; 0 = none (official). Zero-initialised, so it
                can be added to trained weights without changing their output.
            mask_padding: hide each window's zero padding from attention (official: attended).
        """
        super().__init__()
        self.num_features = [embed_dim * 2 ** i for i in range(len(depths))]
        self.patch_embed = PatchEmbed(patch_size=patch_size, embed_dim=embed_dim)
        if ape_grid:
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, embed_dim, *ape_grid))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        else:
            self.absolute_pos_embed = None
        # Why: without it the network can only judge how far below the horizon a patch is from the
        # image's edges, which sit elsewhere in a 4:3 and in a KITTI-shaped frame of the same focal length.
        self.ray_focal_px = float(ray_focal_px)
        self.ray_embed = nn.Conv2d(2, embed_dim, kernel_size=1) if ray_focal_px > 0 else None
        if self.ray_embed is not None:
            nn.init.zeros_(self.ray_embed.weight)
            nn.init.zeros_(self.ray_embed.bias)
        self.pos_drop = nn.Dropout(0.0)
        total = sum(depths)  # plain Python so the model can be built on the meta device
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]
        self.layers = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            self.layers.append(SwinStage(self.num_features[i], depth, num_heads[i], window_size=window_size,
                                         mlp_ratio=mlp_ratio, drop_path=rates[first:first + depth],
                                         downsample=i < len(depths) - 1, mask_padding=mask_padding))
        for i, channels in enumerate(self.num_features):
            self.add_module(f"norm{i}", nn.LayerNorm(channels))
        self.apply(_init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        image_hw = x.shape[-2], x.shape[-1]
        x = self.patch_embed(x)  # B, C, H/4, W/4
        height, width = x.shape[-2], x.shape[-1]
        if self.ray_embed is not None:
            rays = patch_rays(image_hw, (height, width), self.patch_embed.patch_size, self.ray_focal_px, x)
            x = x + self.ray_embed(rays)
        if self.absolute_pos_embed is not None:
            # always resized (an identity at the grid's own size) so a traced graph works at any size
            x = x + F.interpolate(self.absolute_pos_embed, size=(height, width), mode="bicubic", align_corners=False)
        x = self.pos_drop(x.flatten(2).transpose(1, 2))
        outs = []
        for i, stage in enumerate(self.layers):
            out, x = stage(x, height, width)
            out = getattr(self, f"norm{i}")(out)
            outs.append(out.view(-1, height, width, self.num_features[i]).permute(0, 3, 1, 2).contiguous())
            height, width = (height + 1) // 2, (width + 1) // 2
        return outs


def patch_rays(image_hw, grid_hw, patch_size: int, focal_px: float, like: torch.Tensor) -> torch.Tensor:
    """1×2×rows×cols ray directions ((u - cx) / f, (v - cy) / f) of the patch centres, principal point at
    the image centre (the canonical plan centres its padding; cameras' own offsets are a few px)."""
    rows = (torch.arange(grid_hw[0], dtype=like.dtype, device=like.device) * patch_size
            + (patch_size - 1) / 2 - (image_hw[0] - 1) / 2) / focal_px
    cols = (torch.arange(grid_hw[1], dtype=like.dtype, device=like.device) * patch_size
            + (patch_size - 1) / 2 - (image_hw[1] - 1) / 2) / focal_px
    return torch.stack([cols[None, :].expand(grid_hw[0], -1), rows[:, None].expand(-1, grid_hw[1])])[None]


def _init_weights(module: nn.Module) -> None:
    """Official init: truncated-normal linears, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
