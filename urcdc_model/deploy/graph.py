"""The deployed graph: Transformer branch + confidence → uncertainty in metres.

Every backend runs this same module (eager in the torch backend, traced into ONNX for onnxruntime
and TensorRT), so they all return ``depth`` and ``uncertainty`` in metres with identical maths.
"""
from __future__ import annotations

import torch
from torch import nn

from urcdc_model.deploy.uncertainty import confidence_to_uncertainty_m

INPUT_NAME = "image"
OUTPUT_NAMES = ("depth", "uncertainty")


class DeployModel(nn.Module):
    """image (B,3,H,W ImageNet-normalised RGB) → depth (B,1,H,W m), uncertainty (B,1,H,W m)."""

    def __init__(self, model: nn.Module, max_depth: float):
        """
        Args:
            model: a URCDCDepth (the CNN branch, if any, is never called here).
            max_depth: cap for the uncertainty (the model's max depth, metres).
        """
        super().__init__()
        self.model = model
        self.max_depth = float(max_depth)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(image)
        depth_m = out["depth"]
        uncertainty_m = confidence_to_uncertainty_m(out["confidence"], depth_m, max_error_m=self.max_depth)
        return depth_m, uncertainty_m
