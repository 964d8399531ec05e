"""Random pinhole cameras for camera-augmented training, and the canonical plan applied to training frames.

Why: a monocular network learns metric scale for the focal length, field of view and input size it
was trained on. Inference (``urcdc_model.deploy.geometry``) resizes every camera to the canonical
focal; training draws cameras with other fields of view, aspect ratios, principal points and sizes
and puts them through the *same* ``plan_input`` / ``image_to_network`` / ``depth_to_network``, so the
network sees exactly what inference will give it.

A camera is drawn in the canonical space first (focal at the training width relative to the canonical
focal, aspect ratio), then rendered ``render_scale`` times the size of its canonical-resized image: a
scale above 1 is a high-resolution camera that inference shrinks (INTER_AREA smooths it), below 1 a
low-resolution one that inference enlarges. That keeps the rendering cost tied to the network input
instead of to the (arbitrary) sensor resolution.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from urcdc_model.deploy.geometry import DEFAULT_STRIDE, CanonicalCamera, plan_input


@dataclass(frozen=True)
class CameraSampling:
    """Ranges the random cameras are drawn from (log-uniform for scales, uniform otherwise)."""

    focal_ratio_range: tuple[float, float] = (0.4, 3.0)     # focal at the training width / canonical focal
    aspect_range: tuple[float, float] = (1.3, 3.4)          # width / height of the frame
    principal_offset_fraction: float = 0.03                 # |cx - centre| <= this × width (cy: × height)
    render_scale_range: tuple[float, float] = (0.7, 2.5)    # rendered size / canonical-resized size
    base_camera_fraction: float = 0.2                       # share of frames from the dataset's own camera

    def __post_init__(self):
        for name in ("focal_ratio_range", "aspect_range", "render_scale_range"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"CameraSampling.{name} must be 0 < low <= high, got {(low, high)}")
        if not 0 <= self.principal_offset_fraction < 0.5:
            raise ValueError("CameraSampling.principal_offset_fraction must be in [0, 0.5), "
                             f"got {self.principal_offset_fraction}")
        if not 0 <= self.base_camera_fraction <= 1:
            raise ValueError(f"CameraSampling.base_camera_fraction must be in [0, 1], got {self.base_camera_fraction}")


def _log_uniform(rng: np.random.Generator, value_range: tuple[float, float]) -> float:
    return float(math.exp(rng.uniform(math.log(value_range[0]), math.log(value_range[1]))))


def draw_camera(rng: np.random.Generator, canonical: CanonicalCamera,
                sampling: CameraSampling) -> tuple[tuple[int, int], np.ndarray]:
    """(frame_hw, K) of a random camera: field of view, aspect, principal point and render size."""
    focal_ratio = _log_uniform(rng, sampling.focal_ratio_range)
    aspect = float(rng.uniform(*sampling.aspect_range))
    render_scale = _log_uniform(rng, sampling.render_scale_range)
    train_width = canonical.train_size[1]
    # The frame at the canonical focal: the plan's own budget / minimum-size rule then gives the size
    # the network will run at, and the rendered frame is render_scale times that.
    canonical_width = train_width / focal_ratio
    canonical_hw = (max(1, round(canonical_width / aspect)), max(1, round(canonical_width)))
    canonical_k = np.array([[canonical.focal_px, 0, canonical_hw[1] / 2], [0, canonical.focal_px, canonical_hw[0] / 2],
                            [0, 0, 1]])
    resized_h, resized_w = plan_input(canonical_hw, canonical, canonical_k).resized_hw
    width = max(8, round(resized_w * render_scale))
    height = max(8, round(width / aspect))
    focal_px = focal_ratio * canonical.focal_px * width / train_width
    offset = sampling.principal_offset_fraction
    cx = (width - 1) / 2 + rng.uniform(-offset, offset) * width
    cy = (height - 1) / 2 + rng.uniform(-offset, offset) * height
    return (height, width), np.array([[focal_px, 0, cx], [0, focal_px, cy], [0, 0, 1]], dtype=np.float64)


def base_camera_size(canonical: CanonicalCamera, full_size: tuple[int, int], rng: np.random.Generator,
                     sampling: CameraSampling) -> tuple[int, int]:
    """Render size of the dataset's own camera (e.g. KITTI's 375x1242 view) at a random render scale."""
    width = max(8, round(canonical.train_size[1] * _log_uniform(rng, sampling.render_scale_range)))
    return max(8, round(width * full_size[0] / full_size[1])), width


def frame_to_network(rgb: np.ndarray, depth_m: np.ndarray, intrinsics: np.ndarray, canonical: CanonicalCamera,
                     max_depth_m: float, scale: float = 1.0,
                     stride: tuple[int, int] = DEFAULT_STRIDE) -> tuple[np.ndarray, np.ndarray, float]:
    """(network image, network-scale depth labels, focal px of the network image) through the inference plan.

    ``scale`` != 1 shows the frame a little larger or smaller than inference would (size jitter); the
    labels follow through depth_scale, so they stay exact. Labels are clipped to ``max_depth_m``: a frame
    shrunk by the compute budget (depth_scale < 1) would otherwise ask for sky and far depth beyond what
    the network can output.
    """
    plan = plan_input(rgb.shape[:2], canonical, intrinsics, scale=scale, stride=stride)
    image = plan.image_to_network(rgb)
    depth = np.minimum(plan.depth_to_network(depth_m), np.float32(max_depth_m))
    return image, depth, float(plan.network_intrinsics[0, 0])
