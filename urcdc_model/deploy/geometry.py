"""One input geometry for every path (runtime, node, predict, evaluate, analysis, training).

A monocular network learns metric scale for the focal length of the images it was trained on.
This module makes any camera look like that *canonical camera* and maps the outputs back.

The maths (pinhole camera; frame K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]], canonical focal f_c px):

1. Resize the frame by s_x = t · f_c / fx and s_y = t · f_c / fy. After it the pixels are square and
   the focal length is f_eff = t · f_c in both axes; the principal point moves to (s_x cx, s_y cy)
   and nothing else about the camera changes (a resize is the only image operation that changes
   focal length). ``t`` is 1 unless the result breaks the compute budget (t < 1: fewer pixels,
   ``max_pixels``) or is smaller than the network can use (t > 1, ``min_side``).
2. Pad (edge-replicated, centred) to a multiple of the network's stride. Padding moves the principal
   point by the left/top pad and leaves the focal length alone; it is undone exactly by cropping.
3. The network predicts depth d_net as if its focal were f_c. An object of size S at depth d spans
   f_eff · S / d pixels, which the network reads as depth f_c · S / (f_eff · S / d) = d / t, so the
   metric depth is

       d = d_net · f_eff / f_c = d_net · t          (``InputPlan.depth_scale``)

   and the uncertainty (an expected absolute error in metres) scales the same way.
4. Depth and uncertainty are cropped back to the resized frame and resized to the frame's own pixel
   grid, where the frame's K applies unchanged (the point cloud uses it directly).

Without intrinsics the fallback assumes the frame has the training images' horizontal field of view:
fx = fy = f_c · W / train_width, i.e. the frame is resized to the training width, aspect kept.

Training applies the same plan to rendered and real frames (their calibration gives K) and then
crops a window of the training size, so the network only ever sees canonical-focal pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# Official URCDC/NeWCRFs checkpoints were trained at native resolution on one camera each.
KITTI_FOCAL_PX = 721.5377
NYU_FOCAL_PX = 518.8579
KITTI_TRAIN_SIZE = (352, 1216)
NYU_TRAIN_SIZE = (480, 640)

# The network runs at any size; the plan pads the resized frame up to these multiples (rows, columns).
# 32 is the encoder's total downsampling (the official multiple): at other heights the coarse feature maps
# are padded inside the network, and the same pixels read 5-14 % nearer or farther at 8, 16 or 24 rows
# past a multiple of 32 than at one (docs/BENCHMARKS.md, issue 12). The default model is trained at it.
DEFAULT_STRIDE = (32, 32)
DEFAULT_MIN_SIDE = 64        # below this the coarsest feature maps are 2 px: upscale instead
# Max network pixels = this × the training input's pixels. Measured (docs/BENCHMARKS.md, issue 12): the
# default model over-estimates depth on inputs over ~2× its training pixels (wide cameras: median
# pred/GT 1.05–1.12 at 4×, 0.97–0.99 at 2×), and a smaller input is cheaper too.
DEFAULT_BUDGET_FACTOR = 2.0
# A principal point further than this (fraction of the frame size) outside the frame is not a
# calibration of this frame (wrong resolution, or fields swapped).
PRINCIPAL_POINT_SLACK = 0.5


@dataclass(frozen=True)
class CanonicalCamera:
    """The camera whose metric scale the network learned, at the network's training input size."""

    focal_px: float                 # focal length in pixels of the training input
    train_size: tuple[int, int]     # (height, width) of the training input

    def __post_init__(self):
        if not (math.isfinite(self.focal_px) and self.focal_px > 0):
            raise ValueError(f"canonical focal_px must be a positive number, got {self.focal_px}")
        if min(self.train_size) < 1:
            raise ValueError(f"canonical train_size must be positive, got {self.train_size}")

    def fallback_intrinsics(self, frame_hw: tuple[int, int]) -> np.ndarray:
        """K of a frame that has the training images' horizontal field of view (square pixels, centred)."""
        height, width = frame_hw
        f = self.focal_px * width / self.train_size[1]
        return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])

    def to_meta(self) -> dict:
        return {"canonical_focal_px": float(self.focal_px)}


@dataclass(frozen=True)
class InputPlan:
    """How one frame size + camera becomes the network input, and how outputs go back."""

    frame_hw: tuple[int, int]       # the camera's image
    resized_hw: tuple[int, int]     # after the canonical resize, before padding
    network_hw: tuple[int, int]     # what the network runs at (multiple of the stride)
    pad_tlbr: tuple[int, int, int, int]  # top, left, bottom, right padding
    depth_scale: float              # metric depth = network depth × depth_scale
    intrinsics: np.ndarray          # the K the plan was made for (the fallback's when none was given)
    fallback: bool                  # True when no intrinsics were given

    @property
    def network_intrinsics(self) -> np.ndarray:
        """K of the padded network input (square pixels, focal = depth_scale × canonical focal)."""
        sy = self.resized_hw[0] / self.frame_hw[0]
        sx = self.resized_hw[1] / self.frame_hw[1]
        k = self.intrinsics
        return np.array([[k[0, 0] * sx, 0.0, (k[0, 2] + 0.5) * sx - 0.5 + self.pad_tlbr[1]],
                         [0.0, k[1, 1] * sy, (k[1, 2] + 0.5) * sy - 0.5 + self.pad_tlbr[0]],
                         [0.0, 0.0, 1.0]])

    # -- images in ---------------------------------------------------------------------------------

    def image_to_network(self, image: np.ndarray) -> np.ndarray:
        """H×W[×C] frame → network_hw[×C]: canonical resize, then centred edge padding."""
        if image.shape[:2] != self.frame_hw:
            raise ValueError(f"image is {image.shape[0]}x{image.shape[1]}, the plan is for "
                             f"{self.frame_hw[0]}x{self.frame_hw[1]}")
        resized = resize(image, self.resized_hw, area=True)
        top, left, bottom, right = self.pad_tlbr
        if top or left or bottom or right:
            resized = cv2.copyMakeBorder(resized, top, bottom, left, right, cv2.BORDER_REPLICATE)
        return resized

    def depth_to_network(self, depth_m: np.ndarray) -> np.ndarray:
        """Ground-truth depth of the frame → the network's grid and scale (training labels).

        Nearest-neighbour, so no depth is invented between valid and empty (0) pixels; padding is 0
        (no ground truth); depth divided by depth_scale (what the network should output)."""
        resized = resize(depth_m.astype(np.float32), self.resized_hw, nearest=True) / np.float32(self.depth_scale)
        top, left, bottom, right = self.pad_tlbr
        return np.pad(resized, ((top, bottom), (left, right)))

    # -- outputs back ----------------------------------------------------------------------------

    def crop_padding(self, map_hw: np.ndarray) -> np.ndarray:
        """network_hw map → resized_hw map (exact inverse of the padding)."""
        if map_hw.shape[:2] != self.network_hw:
            raise ValueError(f"output is {map_hw.shape[0]}x{map_hw.shape[1]}, the network ran at "
                             f"{self.network_hw[0]}x{self.network_hw[1]}")
        top, left = self.pad_tlbr[:2]
        return map_hw[top:top + self.resized_hw[0], left:left + self.resized_hw[1]]

    def output_to_frame(self, map_hw: np.ndarray) -> np.ndarray:
        """Network depth/uncertainty (network_hw, network scale) → metres on the frame's pixel grid."""
        cropped = np.ascontiguousarray(self.crop_padding(map_hw), dtype=np.float32)
        out = resize(cropped, self.frame_hw)
        if self.depth_scale != 1.0:
            out *= np.float32(self.depth_scale)
        return out


def resize(image: np.ndarray, out_hw: tuple[int, int], area: bool = False, nearest: bool = False) -> np.ndarray:
    """cv2.resize to (height, width); INTER_AREA when shrinking with ``area``, else linear (or nearest)."""
    if image.shape[:2] == tuple(out_hw):
        return image
    if nearest:
        interpolation = cv2.INTER_NEAREST
    elif area and image.shape[0] * image.shape[1] > out_hw[0] * out_hw[1]:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (out_hw[1], out_hw[0]), interpolation=interpolation)


def check_intrinsics(intrinsics, frame_hw: tuple[int, int]) -> np.ndarray:
    """K as a float64 3×3 array, or a ValueError naming the field that makes it unusable for this frame."""
    k = np.asarray(intrinsics, dtype=np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"intrinsics must be a 3x3 matrix K, got shape {k.shape}")
    height, width = frame_hw
    for name, value in (("fx", k[0, 0]), ("fy", k[1, 1]), ("cx", k[0, 2]), ("cy", k[1, 2])):
        if not math.isfinite(value):
            raise ValueError(f"intrinsics {name} is {value}: not a number")
    for name, value in (("fx", k[0, 0]), ("fy", k[1, 1])):
        if value <= 0:
            raise ValueError(f"intrinsics {name} = {value:g} px: a focal length must be > 0")
    for name, value, size in (("cx", k[0, 2], width), ("cy", k[1, 2], height)):
        if not -PRINCIPAL_POINT_SLACK * size <= value <= (1 + PRINCIPAL_POINT_SLACK) * size:
            raise ValueError(f"intrinsics {name} = {value:g} px is far outside the {width}x{height} frame: "
                             "the calibration is for another resolution")
    return k


def mirror_intrinsics(intrinsics: np.ndarray, width: int) -> np.ndarray:
    """K of the horizontally mirrored frame (column u becomes width − 1 − u)."""
    k = np.array(intrinsics, dtype=np.float64)
    k[0, 2] = width - 1 - k[0, 2]
    return k


def plan_input(frame_hw: tuple[int, int], canonical: CanonicalCamera, intrinsics=None,
               stride: int | tuple[int, int] = DEFAULT_STRIDE, max_pixels: int | None = None,
               min_side: int = DEFAULT_MIN_SIDE, network_hw: tuple[int, int] | None = None,
               scale: float = 1.0) -> InputPlan:
    """The network input for a frame of ``frame_hw`` seen by a camera with ``intrinsics`` (3×3 K, or None).

    Args:
        stride: the network size is padded up to a multiple of this (one number, or rows and columns).
        max_pixels: compute budget, in network pixels (default: DEFAULT_BUDGET_FACTOR × training pixels).
        min_side: the resized image's shorter side is at least this (upscaled otherwise).
        network_hw: a fixed network size (a static-shape export or engine): the canonical image is
            scaled by t to fit inside it, aspect kept, and padded to exactly this size; the budget,
            minimum side, stride and ``scale`` do not apply.
        scale: a further factor on t (after the budget and minimum side): the network sees the camera
            at scale × the canonical focal and depth_scale says so (training's size jitter).
    Raises:
        ValueError: unusable frame size or intrinsics (the message names the field).
    """
    height, width = int(frame_hw[0]), int(frame_hw[1])
    if height < 1 or width < 1:
        raise ValueError(f"frame size must be positive, got {height}x{width}")
    fallback = intrinsics is None
    k = canonical.fallback_intrinsics((height, width)) if fallback else check_intrinsics(intrinsics, (height, width))
    if max_pixels is None:
        max_pixels = int(DEFAULT_BUDGET_FACTOR * canonical.train_size[0] * canonical.train_size[1])
    # 1. canonical resize, then the budget / minimum-size factor t applied to both axes
    scale_x = canonical.focal_px / k[0, 0]
    scale_y = canonical.focal_px / k[1, 1]
    canonical_h, canonical_w = height * scale_y, width * scale_x
    if network_hw is not None:
        t = min(network_hw[0] / canonical_h, network_hw[1] / canonical_w)
        resized_h = min(network_hw[0], max(1, round(canonical_h * t)))
        resized_w = min(network_hw[1], max(1, round(canonical_w * t)))
    else:
        t = 1.0
        if canonical_h * canonical_w > max_pixels:
            t = math.sqrt(max_pixels / (canonical_h * canonical_w))
        shorter = min(canonical_h, canonical_w) * t
        if shorter < min_side:
            t *= min_side / shorter
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale}")
        t *= scale
        resized_h = max(1, round(canonical_h * t))
        resized_w = max(1, round(canonical_w * t))
    # Rounding changes the scale slightly; the effective focal is what the resize really did.
    f_eff = math.sqrt(k[0, 0] * resized_w / width * k[1, 1] * resized_h / height)
    # 2. centred padding to the stride (or to the fixed size)
    if network_hw is not None:
        network_h, network_w = int(network_hw[0]), int(network_hw[1])
    else:
        stride_h, stride_w = (stride, stride) if isinstance(stride, int) else stride
        network_h = -(-resized_h // stride_h) * stride_h
        network_w = -(-resized_w // stride_w) * stride_w
    top, left = (network_h - resized_h) // 2, (network_w - resized_w) // 2
    pad = (top, left, network_h - resized_h - top, network_w - resized_w - left)
    return InputPlan(frame_hw=(height, width), resized_hw=(resized_h, resized_w), network_hw=(network_h, network_w),
                     pad_tlbr=pad, depth_scale=f_eff / canonical.focal_px, intrinsics=k, fallback=fallback)


def canonical_camera_from_meta(meta: dict, train_size: tuple[int, int], max_depth: float | None,
                               official: bool) -> CanonicalCamera:
    """The canonical camera of a checkpoint: recorded by our trainer, else inferred.

    - ``canonical_focal_px`` in the metadata: used as recorded.
    - Official URCDC/NeWCRFs checkpoints (no metadata): KITTI (721.5377 px at 352×1216, max depth 80 m)
      or NYU (518.8579 px at 480×640, max depth 10 m), chosen by the max depth.
    - Our older checkpoints: trained on KITTI-like frames resized to the training width, so KITTI's
      focal length scaled to that width.
    """
    if meta.get("canonical_focal_px") is not None:
        return CanonicalCamera(float(meta["canonical_focal_px"]), tuple(train_size))
    if official:
        if max_depth is not None and max_depth <= 20.0:
            return CanonicalCamera(NYU_FOCAL_PX, NYU_TRAIN_SIZE)
        return CanonicalCamera(KITTI_FOCAL_PX, KITTI_TRAIN_SIZE)
    return CanonicalCamera(KITTI_FOCAL_PX * train_size[1] / 1242.0, tuple(train_size))
