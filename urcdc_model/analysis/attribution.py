"""Receptive reliance: input-gradient attribution of one predicted depth pixel.

attribution(y, x) at input pixel (u, v) = sum over RGB of |d depth(y, x) / d image(u, v)|.
Several targets are batched: the image is repeated once per target and each copy's target
pixel is summed into one scalar, so one backward pass gives every map (samples in a batch do
not interact in eval mode).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .branches import predict_branches


def sample_targets(
    height: int,
    width: int,
    num_targets: int,
    rng: np.random.Generator,
    valid: np.ndarray | None = None,
    margin_fraction: float = 0.1,
) -> np.ndarray:
    """num_targets (y, x) pixels away from the border, on valid ground truth when given."""
    margin_y, margin_x = int(height * margin_fraction), int(width * margin_fraction)
    allowed = np.zeros((height, width), dtype=bool)
    allowed[margin_y:height - margin_y, margin_x:width - margin_x] = True
    if valid is not None and (allowed & valid).sum() >= num_targets:
        allowed &= valid
    candidates = np.argwhere(allowed)
    picks = rng.choice(len(candidates), size=min(num_targets, len(candidates)), replace=False)
    return candidates[np.sort(picks)]


@dataclass
class Attribution:
    """Per-target attribution maps (N,H,W) for one branch of one image."""

    targets_yx: np.ndarray          # N,2
    total: np.ndarray               # N,H,W: through every path to the input picture
    own_input: np.ndarray | None    # N,H,W: CNN branch only, through its own input (not the coupling units)


def input_gradient_attribution(
    model: nn.Module,
    image: torch.Tensor,
    targets_yx: np.ndarray,
    branch: str,
    branches_in_model: Sequence[str] = ("transformer",),
) -> Attribution:
    """|d depth_branch(target) / d input| summed over RGB, for each target of a 1,3,H,W image.

    branches_in_model: the branches the forward pass runs (the CNN branch needs the two-input call).
    """
    num = len(targets_yx)
    batch = image.detach().expand(num, -1, -1, -1).clone().requires_grad_(True)
    two_inputs = "cnn" in branches_in_model
    batch_cnn = batch.detach().clone().requires_grad_(True) if two_inputs else None
    with torch.enable_grad():
        depth = predict_branches(model, batch, branches_in_model, image_cnn=batch_cnn)[branch]
        rows = torch.as_tensor(targets_yx[:, 0], device=depth.device)
        cols = torch.as_tensor(targets_yx[:, 1], device=depth.device)
        picked = depth[torch.arange(num, device=depth.device), 0, rows, cols]
        inputs = [batch] + ([batch_cnn] if two_inputs else [])
        grads = torch.autograd.grad(picked.sum(), inputs, allow_unused=True)
    maps = [None if g is None else g.abs().sum(dim=1).cpu().numpy() for g in grads]
    transformer_path = maps[0] if maps[0] is not None else np.zeros((num, *image.shape[-2:]), np.float32)
    own = maps[1] if two_inputs else None
    total = transformer_path + (own if own is not None else 0.0)
    return Attribution(targets_yx=targets_yx, total=total, own_input=own if branch == "cnn" else None)


def pixel_distances(height: int, width: int, target_yx: Sequence[int]) -> np.ndarray:
    """HxW Euclidean distance (px) of every pixel from the target."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.hypot(rows - target_yx[0], cols - target_yx[1])


def topk_distance(attribution: np.ndarray, target_yx: Sequence[int], top_k: int) -> dict[str, float]:
    """Mean and median distance (px) of the top_k most influential pixels from the target, and
    the radii holding 50 % / 90 % of the attribution mass."""
    distances = pixel_distances(*attribution.shape, target_yx).ravel()
    weights = attribution.ravel()
    top = np.argpartition(-weights, min(top_k, weights.size) - 1)[:top_k]
    order = np.argsort(distances)
    cumulative = np.cumsum(weights[order])
    total = cumulative[-1]
    if total <= 0:
        return {"topk_mean_px": float("nan"), "topk_median_px": float("nan"), "r50_px": float("nan"), "r90_px": float("nan")}
    return {
        "topk_mean_px": float(distances[top].mean()),
        "topk_median_px": float(np.median(distances[top])),
        "r50_px": float(distances[order][np.searchsorted(cumulative, 0.5 * total)]),
        "r90_px": float(distances[order][np.searchsorted(cumulative, 0.9 * total)]),
    }


def radial_mass_profile(attribution: np.ndarray, target_yx: Sequence[int], radii_px: np.ndarray) -> np.ndarray:
    """Fraction of attribution mass within each radius of the target (cumulative, ends at <= 1)."""
    distances = pixel_distances(*attribution.shape, target_yx)
    total = attribution.sum()
    if total <= 0:
        return np.full(len(radii_px), np.nan)
    return np.array([attribution[distances <= r].sum() / total for r in radii_px])


def uniform_reference(height: int, width: int, target_yx: Sequence[int]) -> dict[str, float]:
    """What topk_distance would report for an attribution spread evenly over the image."""
    distances = pixel_distances(height, width, target_yx).ravel()
    return {
        "topk_mean_px": float(distances.mean()),
        "r50_px": float(np.quantile(distances, 0.5)),
        "r90_px": float(np.quantile(distances, 0.9)),
    }
