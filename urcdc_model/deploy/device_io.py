"""Pre- and post-processing on the inference device: per network pass the uint8 frame crosses to the
GPU once and the depth and uncertainty maps come back once (flip TTA is two passes).

The same maths as :class:`urcdc_model.deploy.geometry.InputPlan` (``image_to_network`` /
``output_to_frame``) and ``normalize_rgb_array``, in torch ops on the plan's sizes:

- canonical resize: cv2's INTER_AREA when shrinking, written as what it is — each output pixel the
  overlap-weighted mean of the input pixels it covers — i.e. two small matrix products (torch's
  ``mode="area"`` is adaptive pooling, which rounds the overlaps: a grey level off at non-integer
  factors); bilinear with half-pixel centres when enlarging (cv2's INTER_LINEAR); rounded to whole
  grey levels like cv2's uint8 result;
- centred edge padding (``F.pad(mode="replicate")`` = ``cv2.BORDER_REPLICATE``), ImageNet normalisation;
- back: crop the padding, bilinear resize to the frame, depth scale (flip TTA: the runtime runs a
  second plan and blends on the host).

On a CPU this path brings nothing (cv2 is faster), so DepthRuntime uses it only on CUDA, with
backends that take device tensors (torch, TensorRT). test_device_io checks it against the NumPy path
on the CPU.
"""
from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from urcdc_model.deploy.geometry import InputPlan
from urcdc_model.preprocessing import IMAGENET_MEAN, IMAGENET_STD


@functools.lru_cache(maxsize=32)
def area_weights(in_size: int, out_size: int) -> torch.Tensor:
    """(out_size, in_size) float64 matrix of cv2 INTER_AREA along one axis: output pixel i averages input
    [i·s, (i+1)·s), s = in/out, each input pixel weighted by its overlap with that interval."""
    scale = in_size / out_size
    starts = torch.arange(out_size, dtype=torch.float64) * scale
    ends = starts + scale
    pixels = torch.arange(in_size, dtype=torch.float64)
    overlap = (torch.minimum(ends[:, None], pixels[None, :] + 1) - torch.maximum(starts[:, None], pixels[None, :]))
    return overlap.clamp(min=0) / scale


class DeviceFrameIO:
    """Frame → network input and network output → frame, as torch ops on ``device``."""

    def __init__(self, device: str | torch.device):
        self.device = torch.device(device)
        # (x / 255 − mean) / std as one multiply-add: x · scale + offset
        std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self._scale = (1.0 / (255.0 * std)).to(self.device)
        self._offset = (-mean / std).to(self.device)

    def frame_to_network(self, rgb_uint8_hwc: np.ndarray, plan: InputPlan) -> torch.Tensor:
        """uint8 H×W×3 RGB → normalised 1×3×h×w float32 on the device (one host → device copy, of uint8)."""
        frame = torch.from_numpy(np.ascontiguousarray(rgb_uint8_hwc))
        if self.device.type == "cuda":
            frame = frame.pin_memory().to(self.device, non_blocking=True)
        image = frame.permute(2, 0, 1).unsqueeze(0).float()  # 1, 3, H, W in 0..255
        if tuple(plan.resized_hw) != tuple(plan.frame_hw):
            shrinking = plan.resized_hw[0] * plan.resized_hw[1] < plan.frame_hw[0] * plan.frame_hw[1]
            if shrinking:  # geometry.resize picks INTER_AREA by pixel count too
                rows = area_weights(plan.frame_hw[0], plan.resized_hw[0]).to(self.device, torch.float32)
                cols = area_weights(plan.frame_hw[1], plan.resized_hw[1]).to(self.device, torch.float32)
                image = rows @ image @ cols.T
            else:
                image = F.interpolate(image, size=plan.resized_hw, mode="bilinear", align_corners=False)
            image = image.round_().clamp_(0, 255)  # cv2's result is uint8
        top, left, bottom, right = plan.pad_tlbr
        if top or left or bottom or right:
            image = F.pad(image, (left, right, top, bottom), mode="replicate")
        return (image * self._scale + self._offset).contiguous()

    def network_to_frame(self, map_b1hw: torch.Tensor, plan: InputPlan) -> torch.Tensor:
        """1×1×h×w network map → H×W float32 metres on the frame's grid (still on the device)."""
        top, left = plan.pad_tlbr[:2]
        cropped = map_b1hw.float()[:, :, top:top + plan.resized_hw[0], left:left + plan.resized_hw[1]]
        if tuple(plan.resized_hw) != tuple(plan.frame_hw):
            cropped = F.interpolate(cropped, size=plan.frame_hw, mode="bilinear", align_corners=False)
        out = cropped[0, 0]
        return out * float(plan.depth_scale) if plan.depth_scale != 1.0 else out

    def infer(self, run_tensor, rgb_uint8_hwc: np.ndarray, plan: InputPlan, max_depth_m: float
              ) -> tuple[np.ndarray, np.ndarray]:
        """``run_tensor(1×3×h×w) -> (depth, uncertainty)`` 1×1×h×w device tensors, wrapped in the plan's
        geometry; returns host float32 H×W maps (one device → host copy each)."""
        image = self.frame_to_network(rgb_uint8_hwc, plan)
        depth, uncertainty = run_tensor(image)
        depth_m, uncertainty_m = self.network_to_frame(depth, plan), self.network_to_frame(uncertainty, plan)
        if plan.depth_scale > 1.0:  # the model's range is [0, max_depth]; scaled beyond it means "far"
            depth_m, uncertainty_m = depth_m.clamp(max=max_depth_m), uncertainty_m.clamp(max=max_depth_m)
        return depth_m.cpu().numpy(), uncertainty_m.cpu().numpy()
