"""Forward pass with the official flip test-time augmentation (``post_process_depth``)."""
from __future__ import annotations

import torch
import torch.nn as nn

# Official border blend: the outer 5% of columns come from one pass only, ramping to the mean by 10%.
FLIP_BLEND_START = 0.05
FLIP_BLEND_SLOPE = 20.0


def flip_blend(pred: torch.Tensor, pred_from_flipped: torch.Tensor) -> torch.Tensor:
    """Official ``post_process_depth``: border-blended mean of a map and the un-flipped flipped-input map.

    pred, pred_from_flipped: B,C,H,W; the second is the prediction for the flipped image (not yet flipped back).
    """
    b, c, h, w = pred.shape
    flipped_back = torch.flip(pred_from_flipped, [3])
    mean = 0.5 * (pred + flipped_back)
    xs = torch.linspace(0.0, 1.0, w, device=pred.device, dtype=pred.dtype).repeat(b, c, h, 1)
    mask = 1.0 - torch.clamp(FLIP_BLEND_SLOPE * (xs - FLIP_BLEND_START), 0.0, 1.0)
    mask_hat = torch.flip(mask, [3])
    return mask_hat * pred + mask * flipped_back + (1.0 - mask - mask_hat) * mean


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
