"""Image preprocessing exactly as the official URCDC-Depth test script: RGB / 255, ImageNet mean/std."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# KITTI benchmark crop used by the official KITTI test/eval (bottom-centre 352 x 1216).
KB_CROP_HEIGHT = 352
KB_CROP_WIDTH = 1216


_MEAN_CHW = np.asarray(IMAGENET_MEAN, np.float32).reshape(3, 1, 1)
_STD_CHW = np.asarray(IMAGENET_STD, np.float32).reshape(3, 1, 1)


def normalize_rgb_array(rgb: np.ndarray) -> np.ndarray:
    """uint8 H,W,3 RGB -> float32 3,H,W array: (rgb / 255 - mean) / std, in the official order.

    NumPy, not torch, so onnxruntime/TensorRT callers never wake torch's thread pool (on a small CPU
    it then competes with onnxruntime's own threads).
    """
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = getattr(rgb, "shape", None)
        raise ValueError(f"normalize_rgb: expected an H x W x 3 RGB array, got shape {shape}")
    if rgb.dtype != np.uint8:
        raise ValueError(f"normalize_rgb: expected uint8 RGB (0-255), got {rgb.dtype}")
    chw = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)
    return (chw - _MEAN_CHW) / _STD_CHW


def normalize_rgb(rgb: np.ndarray) -> torch.Tensor:
    """``normalize_rgb_array`` as a float32 3,H,W tensor."""
    return torch.from_numpy(normalize_rgb_array(rgb))


def kb_crop_box(height: int, width: int) -> tuple[int, int]:
    """(top, left) of the official KITTI benchmark crop of an image of this size."""
    if height < KB_CROP_HEIGHT or width < KB_CROP_WIDTH:
        raise ValueError(f"--kb-crop needs an image of at least {KB_CROP_HEIGHT}x{KB_CROP_WIDTH} "
                         f"(KITTI raw size), got {height}x{width}")
    return height - KB_CROP_HEIGHT, (width - KB_CROP_WIDTH) // 2


def kb_crop(image: np.ndarray) -> np.ndarray:
    """Crop H,W[,C] to the bottom-centre 352 x 1216 KITTI benchmark window."""
    top, left = kb_crop_box(image.shape[0], image.shape[1])
    return image[top:top + KB_CROP_HEIGHT, left:left + KB_CROP_WIDTH]


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an image file as uint8 H,W,3 RGB; clear error when missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image file not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image (OpenCV could not decode it); use PNG or JPEG")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
