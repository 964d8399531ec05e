"""Which output of the two-branch model belongs to which branch, and one forward pass for both.

The CNN branch gets Swin features through the coupling units, so it also depends on the
Transformer's input. Both branches are fed the same picture as two separate tensors
(`image`, `image_cnn`), which lets attribution tell the CNN's own input path apart from the
path through the Transformer.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

# branch name (CLI) -> key of the model's output dict holding that branch's depth in metres
BRANCH_DEPTH_KEYS = {"transformer": "depth", "cnn": "depth_cnn"}


def parse_branches(text: str) -> list[str]:
    """'transformer,cnn' -> ['transformer', 'cnn'], rejecting unknown names."""
    branches = [name.strip().lower() for name in text.split(",") if name.strip()]
    unknown = [name for name in branches if name not in BRANCH_DEPTH_KEYS]
    if unknown or not branches:
        raise ValueError(
            f"--branches: unknown branch {unknown or text!r}; use a comma list of {sorted(BRANCH_DEPTH_KEYS)}"
        )
    return list(dict.fromkeys(branches))


def predict_branches(
    model: nn.Module,
    image: torch.Tensor,
    branches: Sequence[str],
    image_cnn: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Depth in metres (B,1,H,W) for each requested branch from one forward pass.

    `image` is ImageNet-normalised B,3,H,W; `image_cnn` defaults to the same picture. No
    flip-TTA here: the analysis wants the network's raw response to its input.
    """
    if "cnn" in branches:
        out = model(image, image if image_cnn is None else image_cnn)
    else:
        out = model(image)
    depths = {}
    for branch in branches:
        key = BRANCH_DEPTH_KEYS[branch]
        if key not in out:
            raise ValueError(
                f"branch {branch!r}: the model returned no {key!r} output (keys: {sorted(out)}); "
                "load a two-branch checkpoint with with_cnn=True or pass --branches transformer"
            )
        depths[branch] = out[key]
    return depths
