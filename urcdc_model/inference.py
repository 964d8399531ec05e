"""Forward pass with the official flip test-time augmentation (``post_process_depth``)."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

# Official border blend: the outer 5% of columns come from one pass only, ramping to the mean by 10%.
FLIP_BLEND_START = 0.05
FLIP_BLEND_SLOPE = 20.0


def flip_blend_weights(width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column weights (of the flipped-back map, of the plain map) of the official border blend.

    The left border comes from the flipped pass, the right border from the plain pass (each pass's
    own left border is the one it saw with context on one side only), the middle is the mean.
    """
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)
    mask = 1.0 - np.clip(FLIP_BLEND_SLOPE * (xs - FLIP_BLEND_START), 0.0, 1.0)
    return mask, mask[::-1].copy()


def _blend(pred, flipped_back, mask, mask_hat):
    return mask_hat * pred + mask * flipped_back + (1.0 - mask - mask_hat) * (0.5 * (pred + flipped_back))


def flip_blend(pred: torch.Tensor, pred_from_flipped: torch.Tensor) -> torch.Tensor:
    """Official ``post_process_depth``: border-blended mean of a map and the un-flipped flipped-input map.

    pred, pred_from_flipped: B,C,H,W; the second is the prediction for the flipped image (not yet flipped back).
    """
    mask, mask_hat = (torch.from_numpy(w).to(pred.device, pred.dtype) for w in flip_blend_weights(pred.shape[-1]))
    return _blend(pred, torch.flip(pred_from_flipped, [3]), mask, mask_hat)


def flip_blend_array(pred: np.ndarray, pred_from_flipped: np.ndarray) -> np.ndarray:
    """``flip_blend`` on NumPy maps (…, W), for backends that never touch torch."""
    mask, mask_hat = flip_blend_weights(pred.shape[-1])
    return _blend(pred, pred_from_flipped[..., ::-1], mask, mask_hat).astype(np.float32, copy=False)


@torch.no_grad()
def predict_depth(model: nn.Module, image_bchw: torch.Tensor, flip_tta: bool = True
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Depth (metres) and confidence, B,1,H,W each, from the Transformer branch.

    ``image_bchw`` is ImageNet-normalised RGB (``preprocessing.normalize_rgb``). With ``flip_tta``
    the mirrored image is also run and both maps are fused as the official test script does (the
    official code fuses only depth; confidence gets the same blend here).
    """
    if image_bchw.ndim != 4 or image_bchw.shape[1] != 3:
        raise ValueError(f"predict_depth: expected a B,3,H,W image tensor, got shape {tuple(image_bchw.shape)}")
    out = model(image_bchw)
    depth, confidence = out["depth"], out["confidence"]
    if flip_tta:
        out_flipped = model(torch.flip(image_bchw, [3]))
        depth = flip_blend(depth, out_flipped["depth"])
        confidence = flip_blend(confidence, out_flipped["confidence"])
    return depth, confidence
