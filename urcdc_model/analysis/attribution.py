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
    total: np.ndarray               # N,H,W: |signed sum of every path| to the input picture
    own_input: np.ndarray | None    # N,H,W: CNN branch only, through its own input
    coupling: np.ndarray | None     # N,H,W: CNN branch only, through Swin -> coupling units (None: no such path)


class CouplingPath:
    """Re-opens the path Swin features -> coupling units -> CNN branch for attribution.

    The model detaches the Swin features it hands the coupling units (so the CNN loss does not
    train the Swin branch); at inference the CNN branch still depends on them. Pre-hooks swap
    each detached feature for a leaf that records d depth / d feature, and a hook on `backbone`
    keeps the attached originals, so the chain rule can be finished by hand (vector-Jacobian
    product back to the picture).
    """

    def __init__(self, model: nn.Module):
        from urcdc_model.models.coupling import CouplingUnit

        self.units = [m for m in model.modules() if isinstance(m, CouplingUnit)]
        self.backbone = getattr(model, "backbone", None) if self.units else None
        self.leaves: list[torch.Tensor] = []
        self.swin_features: list[torch.Tensor] = []
        self._handles = []

    def __enter__(self) -> "CouplingPath":
        if self.backbone is not None:
            self._handles = [u.register_forward_pre_hook(self._swap_in_leaf) for u in self.units]
            self._handles.append(self.backbone.register_forward_hook(self._keep_swin_features))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()

    def _swap_in_leaf(self, module, args):
        leaf = args[1].detach().requires_grad_(True)
        self.leaves.append(leaf)
        return (args[0], leaf, *args[2:])

    def _keep_swin_features(self, module, args, output):
        self.swin_features = list(output[0])

    def attached_features(self) -> list[torch.Tensor]:
        """The Swin feature (with its graph) behind each leaf, matched by shared storage."""
        by_storage = {f.data_ptr(): f for f in self.swin_features}
        missing = [leaf.shape for leaf in self.leaves if leaf.data_ptr() not in by_storage]
        if missing:
            raise RuntimeError(f"coupling attribution: no Swin feature from `backbone` matches inputs {missing}")
        return [by_storage[leaf.data_ptr()] for leaf in self.leaves]


def input_gradient_attribution(
    model: nn.Module,
    image: torch.Tensor,
    targets_yx: np.ndarray,
    branches: Sequence[str],
    branches_in_model: Sequence[str] | None = None,
) -> dict[str, Attribution]:
    """|d depth_branch(target) / d input| summed over RGB, per branch and target, for a 1,3,H,W image.

    One forward pass for all branches and targets: batch row j * N + i holds target i of branch j.
    The picture reaches the CNN branch by its own input and through the coupling units; the
    signed gradients of all paths are added before taking magnitudes, as for one shared picture.
    branches_in_model: the branches the forward pass runs (default `branches`).
    """
    branches_in_model = list(branches_in_model or branches)
    num = len(targets_yx)
    rows = len(branches) * num
    batch = image.detach().expand(rows, -1, -1, -1).clone().requires_grad_(True)
    two_inputs = "cnn" in branches_in_model
    batch_cnn = batch.detach().clone().requires_grad_(True) if two_inputs else None
    with torch.enable_grad(), CouplingPath(model) as coupling:
        depth = predict_branches(model, batch, branches_in_model, image_cnn=batch_cnn)
        ys = torch.as_tensor(targets_yx[:, 0])
        xs = torch.as_tensor(targets_yx[:, 1])
        picked = [depth[b][j * num + torch.arange(num), 0, ys, xs] for j, b in enumerate(branches)]
        inputs = [batch] + ([batch_cnn] if two_inputs else []) + coupling.leaves
        grads = list(torch.autograd.grad(torch.cat(picked).sum(), inputs, allow_unused=True,
                                         retain_graph=bool(coupling.leaves)))
        leaf_grads = grads[len(inputs) - len(coupling.leaves):]
        used = [(f, g) for f, g in zip(coupling.attached_features() if coupling.leaves else [], leaf_grads)
                if g is not None]
        grad_coupling = None
        if used:
            grad_coupling = torch.autograd.grad([f for f, _ in used], batch, grad_outputs=[g for _, g in used],
                                                allow_unused=True)[0]
    zeros = torch.zeros_like(batch)
    grad_image = zeros if grads[0] is None else grads[0]
    grad_own = zeros if not two_inputs or grads[1] is None else grads[1]
    grad_coupling = zeros if grad_coupling is None else grad_coupling

    def magnitude(grad: torch.Tensor, part: slice) -> np.ndarray:
        return grad[part].abs().sum(dim=1).cpu().numpy()

    results = {}
    for j, branch in enumerate(branches):
        part = slice(j * num, (j + 1) * num)
        is_cnn = branch == "cnn"
        results[branch] = Attribution(
            targets_yx=targets_yx,
            total=magnitude(grad_image + grad_own + grad_coupling, part),
            own_input=magnitude(grad_own, part) if is_cnn else None,
            coupling=magnitude(grad_coupling, part) if is_cnn and coupling.units else None,
        )
    return results


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
        return dict.fromkeys(("topk_mean_px", "topk_median_px", "r50_px", "r90_px"), float("nan"))
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
