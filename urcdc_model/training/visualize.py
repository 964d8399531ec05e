"""Colourised maps for TensorBoard: depth as inverse-depth magma, confidence as viridis, RGB denormalised."""
from __future__ import annotations

import numpy as np
import torch
from matplotlib import colormaps

from urcdc_model.preprocessing import IMAGENET_MEAN, IMAGENET_STD


def colorize(values: np.ndarray, cmap: str, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """H,W float → H,W,3 uint8 through a matplotlib colormap (NaNs black)."""
    finite = np.isfinite(values)
    lo = float(np.min(values[finite])) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.max(values[finite])) if vmax is None and finite.any() else (vmax or 1.0)
    scaled = np.clip((values - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    rgb = (colormaps[cmap](np.where(finite, scaled, 0.0))[..., :3] * 255).astype(np.uint8)
    rgb[~finite] = 0
    return rgb


def depth_image(depth_m: torch.Tensor, max_depth_m: float) -> np.ndarray:
    """1,H,W metres → H,W,3 uint8; inverse depth so near structure gets the colour range; 0 (no GT) black."""
    depth = depth_m.detach().float().cpu().numpy()[0]
    inverse = np.where(depth > 0, 1.0 / np.maximum(depth, 1e-3), np.nan)
    return colorize(inverse, "magma", vmin=1.0 / max_depth_m, vmax=1.0)


def confidence_image(confidence: torch.Tensor) -> np.ndarray:
    return colorize(confidence.detach().float().cpu().numpy()[0], "viridis", vmin=0.0, vmax=1.0)


def rgb_image(image: torch.Tensor) -> np.ndarray:
    """3,H,W ImageNet-normalised → H,W,3 uint8."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    rgb = (image.detach().float().cpu() * std + mean).clamp(0, 1)
    return (rgb.permute(1, 2, 0).numpy() * 255).astype(np.uint8)
