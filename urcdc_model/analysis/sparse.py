"""Sparse-input response: keep a random fraction of pixels, set the rest to the dataset mean.

After ImageNet normalisation the dataset mean is exactly zero, so dropping a pixel is zeroing it.
Following the sparse-pixel study of Yao et al. (BMVC 2024), a branch that leans on global
context should degrade differently from one that interpolates local evidence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from .branches import predict_branches

DEFAULT_KEEP_FRACTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def sparse_keep_mask(height: int, width: int, keep_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean HxW mask with exactly round(keep_fraction * H * W) True pixels, chosen uniformly."""
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    num_pixels = height * width
    num_kept = max(1, int(round(keep_fraction * num_pixels)))
    mask = np.zeros(num_pixels, dtype=bool)
    mask[rng.choice(num_pixels, size=num_kept, replace=False)] = True
    return mask.reshape(height, width)


def sparsify(image: torch.Tensor, keep_mask: np.ndarray) -> torch.Tensor:
    """Zero (= dataset mean after normalisation) every pixel of a B,3,H,W image outside `keep_mask`."""
    keep = torch.from_numpy(keep_mask).to(device=image.device, dtype=image.dtype)
    return image * keep  # HxW broadcasts over batch and channels


def abs_rel(pred_m: np.ndarray, ref_m: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean |pred - ref| / ref over `valid` (all pixels with ref > 0 when None)."""
    valid = ref_m > 0 if valid is None else valid & (ref_m > 0)
    if not valid.any():
        return float("nan")
    return float(np.mean(np.abs(pred_m[valid] - ref_m[valid]) / ref_m[valid]))


@dataclass
class SparseResponse:
    """Errors per branch and keep fraction, averaged over images and mask draws."""

    keep_fractions: list[float]
    vs_full: dict[str, list[float]]          # abs-rel against the branch's own full-image depth
    vs_gt: dict[str, list[float]] | None     # abs-rel against ground truth (None: no GT given)
    per_image_vs_full: dict[str, list[list[float]]]  # [image][fraction], for spread / plots

    def to_dict(self) -> dict:
        return {
            "keep_fractions": self.keep_fractions,
            "abs_rel_vs_full_prediction": self.vs_full,
            "abs_rel_vs_gt": self.vs_gt,
            "per_image_abs_rel_vs_full_prediction": self.per_image_vs_full,
        }


@torch.no_grad()
def sparse_response(
    model: nn.Module,
    images: Sequence[torch.Tensor],
    branches: Sequence[str],
    keep_fractions: Sequence[float] = DEFAULT_KEEP_FRACTIONS,
    gt_depths_m: Sequence[np.ndarray | None] | None = None,
    masks_per_fraction: int = 2,
    seed: int = 0,
    batch_size: int = 8,
) -> SparseResponse:
    """Run every image at every keep fraction; both branches see the same masks.

    images: ImageNet-normalised 1,3,H,W tensors. gt_depths_m: HxW metres (0 = no data) per image,
    or None entries where an image has no ground truth. p = 1 is the full image itself (error 0
    against the own prediction by definition), so it is not run again.
    """
    rng = np.random.default_rng(seed)
    fractions = sorted(float(p) for p in keep_fractions)
    per_image_full = {b: [] for b in branches}
    per_image_gt = {b: [] for b in branches}
    any_gt = False
    for index, image in enumerate(images):
        gt = None if gt_depths_m is None else gt_depths_m[index]
        height, width = image.shape[-2:]
        full = {b: d[0, 0].cpu().numpy() for b, d in predict_branches(model, image, branches).items()}
        runs = [(i, sparse_keep_mask(height, width, p, rng))
                for i, p in enumerate(fractions) if p < 1.0 for _ in range(masks_per_fraction)]
        errors_full = {b: [[] for _ in fractions] for b in branches}
        errors_gt = {b: [[] for _ in fractions] for b in branches}
        for start in range(0, len(runs), batch_size):
            chunk = runs[start:start + batch_size]
            batch = torch.cat([sparsify(image, mask) for _, mask in chunk])
            depth = predict_branches(model, batch, branches)
            for row, (fraction_index, _) in enumerate(chunk):
                for b in branches:
                    pred = depth[b][row, 0].cpu().numpy()
                    errors_full[b][fraction_index].append(abs_rel(pred, full[b]))
                    if gt is not None:
                        errors_gt[b][fraction_index].append(abs_rel(pred, gt))
        for i, fraction in enumerate(fractions):
            if fraction >= 1.0:
                for b in branches:
                    errors_full[b][i].append(0.0)
                    if gt is not None:
                        errors_gt[b][i].append(abs_rel(full[b], gt))
        any_gt |= gt is not None
        for b in branches:
            per_image_full[b].append([float(np.mean(e)) for e in errors_full[b]])
            per_image_gt[b].append([float(np.mean(e)) if gt is not None else float("nan") for e in errors_gt[b]])
    vs_full = {b: np.mean(per_image_full[b], axis=0).tolist() for b in branches}
    vs_gt = None
    if any_gt:
        vs_gt = {b: np.nanmean(per_image_gt[b], axis=0).tolist() for b in branches}
    return SparseResponse(fractions, vs_full, vs_gt, per_image_full)
