"""URCDC-Depth (Shao et al., 2023): a Swin/NeWCRF Transformer branch and a DenseNet/GLP CNN branch.

The Transformer branch is NeWCRFs (Swin -> PSP -> four NeWCRF levels with PixelShuffle(2) between ->
3x3 conv heads, sigmoid, x4 bilinear). The CNN branch is DenseNet features with coupling units that
fuse the detached Swin stage outputs, decoded by GLPDepth's selective feature fusion. Only the
Transformer branch is deployed (``with_cnn=False``).

State-dict keys equal the official code's (``backbone.*`` holds Swin *and* the DenseNet
``base_model`` and ``fusion1..4``, as in the official backbone). Differences from the official code:
any input size works (the official needs H, W multiples of 32): coarser maps are cropped to the
finer skip's size and outputs to the input size, which are no-ops at multiples of 32. Optional
depth-gradient-refinement modules live under ``dgr.*`` so they never clash with official keys.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig
from .coupling import CouplingUnit
from .densenet import DenseNetFeatures
from .glp_decoder import GLPDecoder
from .newcrf import NewCRF
from .psp import PSPHead
from .swin import SwinTransformer


class CoupledBackbone(SwinTransformer):
    """Swin backbone that, when given a DenseNet, also runs the coupled CNN branch."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(embed_dim=cfg.embed_dim, depths=cfg.depths, num_heads=cfg.num_heads,
                         window_size=cfg.window_size, patch_size=cfg.patch_size, mlp_ratio=cfg.mlp_ratio,
                         drop_path_rate=cfg.drop_path_rate, ape_grid=cfg.ape_grid, ray_focal_px=cfg.ray_focal_px,
                         mask_padding=cfg.mask_window_padding)
        self.base_model: DenseNetFeatures | None = None
        if cfg.with_cnn:
            self.base_model = DenseNetFeatures(growth_rate=cfg.cnn_growth_rate, block_config=cfg.cnn_block_config,
                                               num_init_features=cfg.cnn_init_features, bn_size=cfg.cnn_bn_size)
            for k, (cnn_ch, swin_ch) in enumerate(zip(self.base_model.tap_channels, self.num_features), start=1):
                self.add_module(f"fusion{k}", CouplingUnit(cnn_ch, swin_ch, skip_prob=cfg.coupling_skip_prob))

    def forward(self, x: torch.Tensor, x_cnn: torch.Tensor | None = None
                ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
        """Swin features (H/4..H/32) and, with a CNN branch, the fused CNN features at the same strides."""
        feats = super().forward(x)
        if self.base_model is None:
            return feats, None
        feature = x if x_cnn is None else x_cnn
        cnn_feats = []
        for name, module in self.base_model.named_children():
            feature = module(feature)
            if name in DenseNetFeatures.TAPS:
                stage = len(cnn_feats)
                feature = getattr(self, f"fusion{stage + 1}")(feature, feats[stage].detach())
                cnn_feats.append(feature)
        return feats, cnn_feats


class SigmoidHead(nn.Module):
    """3x3 conv to one channel, sigmoid, x``scale`` bilinear (official ``DispHead`` / ``Uncer_Head``)."""

    def __init__(self, input_dim: int, scale: int = 4):
        super().__init__()
        self.scale = scale
        self.conv1 = nn.Conv2d(input_dim, 1, 3, padding=1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.sigmoid(self.conv1(x))
        return F.interpolate(x, scale_factor=float(self.scale), mode="bilinear", align_corners=False)


def convex_upsample(x: torch.Tensor, mask: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Official ``upsample_mask``: each of the factor² sub-pixels of a coarse pixel is a softmax-weighted
    mix of that pixel's 3x3 neighbourhood in ``x`` (B,1,H,W); ``mask`` is B,9·factor²,H,W logits.

    The neighbourhood comes from nine shifted slices rather than ``F.unfold`` so that ONNX export
    stays on basic ops; the result is the same.
    """
    batch, _, height, width = x.shape
    weights = torch.softmax(mask.view(batch, 1, 9, factor, factor, height, width), dim=2)
    padded = F.pad(x, (1, 1, 1, 1))
    neighbours = torch.stack([padded[:, :, dy:dy + height, dx:dx + width] for dy in range(3) for dx in range(3)],
                             dim=2)                                       # B,1,9,H,W in unfold's order
    up = torch.sum(weights * neighbours.view(batch, 1, 9, 1, 1, height, width), dim=2)  # B,1,f,f,H,W
    return up.permute(0, 1, 4, 2, 5, 3).reshape(batch, 1, factor * height, factor * width)


def _crop_to(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Crop B,C,H,W ``x`` to ``ref``'s spatial size (no-op when equal)."""
    return x[:, :, : ref.shape[-2], : ref.shape[-1]]


class URCDCDepth(nn.Module):
    """The URCDC-Depth network; ``forward(image[, image_cnn])`` -> dict of B,1,H,W maps."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.max_depth = cfg.max_depth
        swin_ch, crf_dims, v_dims = cfg.swin_channels, cfg.crf_dims, cfg.crf_v_dims
        self.backbone = CoupledBackbone(cfg)
        for k in (3, 2, 1, 0):
            self.add_module(f"crf{k}", NewCRF(input_dim=swin_ch[k], embed_dim=crf_dims[k], v_dim=v_dims[k],
                                              window_size=cfg.crf_window_size, num_heads=cfg.crf_num_heads[k],
                                              mask_padding=cfg.mask_window_padding))
        self.decoder = PSPHead(swin_ch[3], channels=cfg.psp_channels, pool_scales=cfg.psp_pool_scales,
                               gn_groups=cfg.psp_gn_groups)
        if cfg.up_mode == "mask":
            self.mask_head = nn.Sequential(nn.Conv2d(crf_dims[0], 64, 3, padding=1), nn.ReLU(inplace=True),
                                           nn.Conv2d(64, 16 * 9, 1))
        self.disp_head1 = SigmoidHead(crf_dims[0], scale=1 if cfg.up_mode == "mask" else 4)
        self.uncer_head1 = SigmoidHead(crf_dims[0])
        if cfg.with_cnn:
            taps = self.backbone.base_model.tap_channels  # H/4, H/8, H/16, H/32
            width = taps[0]
            self.decoder2 = GLPDecoder([taps[3], taps[2], taps[1]], width)
            self.last_layer_depth = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=False),
                                                  nn.Conv2d(width, 1, 3, padding=1))
            self.last_layer_uncer = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=False),
                                                  nn.Conv2d(width, 1, 3, padding=1), nn.Sigmoid())
        if cfg.dgr_positions:
            from .dgr import DepthGradientRefinement  # owned by training; only needed when DGR is on
            channels = {f"swin{i}": c for i, c in enumerate(swin_ch)} | {f"crf{k}": c for k, c in enumerate(crf_dims)}
            self.dgr = nn.ModuleDict({p: DepthGradientRefinement(channels[p]) for p in cfg.dgr_positions})

    def _refine(self, position: str, x: torch.Tensor) -> torch.Tensor:
        if self.cfg.dgr_positions and position in self.dgr:
            return self.dgr[position](x)
        return x

    def forward(self, image: torch.Tensor, image_cnn: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """image: B,3,H,W ImageNet-normalised RGB; image_cnn: optional separate CNN-branch input."""
        feats, cnn_feats = self.backbone(image, image_cnn)
        feats = [self._refine(f"swin{i}", f) for i, f in enumerate(feats)]
        message = self.decoder(feats[3])  # B, psp, H/32, W/32
        for k in (3, 2, 1, 0):
            message = self._refine(f"crf{k}", getattr(self, f"crf{k}")(feats[k], message))
            if k > 0:
                message = _crop_to(F.pixel_shuffle(message, 2), feats[k - 1])
        depth = self.disp_head1(message)
        if self.cfg.up_mode == "mask":
            depth = convex_upsample(depth, self.mask_head(message))
        out = {"depth": _crop_to(depth, image) * self.max_depth,
               "confidence": _crop_to(self.uncer_head1(message), image)}
        if cnn_feats is not None:
            x = self.decoder2(*cnn_feats)  # B, C, 4*ceil(H/4), 4*ceil(W/4)
            out["depth_cnn"] = _crop_to(torch.sigmoid(self.last_layer_depth(x)), image) * self.max_depth
            out["confidence_cnn"] = _crop_to(self.last_layer_uncer(x), image)
        return out


def with_zero_initialised_weights(model: URCDCDepth, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` plus the model's zero-initialised modules it lacks (the ray embedding), taken from ``model``.

    Such a module adds nothing until trained, so weights without it mean the same as with it at zero:
    fine-tuning and weight averaging can start from checkpoints that predate it.
    """
    ray_embed = model.backbone.ray_embed
    if ray_embed is None:
        return dict(state)
    zeros = {f"backbone.ray_embed.{key}": torch.zeros_like(value) for key, value in ray_embed.state_dict().items()}
    return {**zeros, **state}


def build_model(name: str, max_depth: float | None = None, with_cnn: bool = True,
                dgr_positions: tuple[str, ...] = ()) -> URCDCDepth:
    """Build a named variant (tiny07, base07, large07, nano) with optional overrides."""
    cfg = ModelConfig.from_name(name)
    changes: dict = {"with_cnn": with_cnn, "dgr_positions": tuple(dgr_positions)}
    if max_depth is not None:
        changes["max_depth"] = float(max_depth)
    return URCDCDepth(dataclasses.replace(cfg, **changes))
