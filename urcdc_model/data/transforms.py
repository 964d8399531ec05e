"""Training augmentation for depth datasets, in the order the official URCDC-Depth loader applies it.

KB crop -> rotation -> random crop -> CutFlip -> horizontal flip -> gamma/brightness/colour jitter.
Every function works on numpy arrays (image HxWx3 float in [0, 1], depth HxW metres, 0 = no ground
truth) and takes an explicit ``numpy.random.Generator`` so a sample is reproducible from its seed.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from urcdc_model.preprocessing import IMAGENET_MEAN, IMAGENET_STD, KB_CROP_HEIGHT, KB_CROP_WIDTH


def kb_crop(image: np.ndarray, depth: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """KITTI-benchmark crop: the bottom-centre 352x1216 window (as BTS/NeWCRFs/URCDC)."""
    height, width = image.shape[:2]
    if height < KB_CROP_HEIGHT or width < KB_CROP_WIDTH:
        raise ValueError(
            f"kb_crop needs at least {KB_CROP_HEIGHT}x{KB_CROP_WIDTH}, got {height}x{width}; "
            "disable the KB crop for smaller images")
    top = height - KB_CROP_HEIGHT
    left = (width - KB_CROP_WIDTH) // 2
    window = (slice(top, top + KB_CROP_HEIGHT), slice(left, left + KB_CROP_WIDTH))
    return image[window], (None if depth is None else depth[window])


def rotate(image: np.ndarray, depth: np.ndarray, angle_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """Rotate counter-clockwise about the centre; bilinear for the image, nearest for depth (no mixed depths)."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle_deg, 1.0)
    image_rot = cv2.warpAffine(image, matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    depth_rot = cv2.warpAffine(depth, matrix, (width, height), flags=cv2.INTER_NEAREST,
                               borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return image_rot, depth_rot


def random_crop(image: np.ndarray, depth: np.ndarray, height: int, width: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly placed height x width window, the same for image and depth."""
    in_height, in_width = image.shape[:2]
    if in_height < height or in_width < width:
        raise ValueError(f"random_crop: image {in_height}x{in_width} is smaller than the crop {height}x{width}")
    if image.shape[:2] != depth.shape[:2]:
        raise ValueError(f"random_crop: image {image.shape[:2]} and depth {depth.shape[:2]} differ in size")
    top = int(rng.integers(0, in_height - height + 1))
    left = int(rng.integers(0, in_width - width + 1))
    return image[top:top + height, left:left + width], depth[top:top + height, left:left + width]


def cutflip_rows(image: np.ndarray, depth: np.ndarray, cut_row: int) -> tuple[np.ndarray, np.ndarray]:
    """Swap the strips: output rows [0, h) take the original bottom h rows, rows [h, H) the original top.

    That is a cyclic shift of the rows by h, done identically on the image and its depth.
    """
    height = image.shape[0]
    if not 0 <= cut_row <= height:
        raise ValueError(f"cutflip: cut row {cut_row} outside [0, {height}]")
    return np.roll(image, cut_row, axis=0), np.roll(depth, cut_row, axis=0)


def cutflip(image: np.ndarray, depth: np.ndarray, rng: np.random.Generator,
            probability: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """CutFlip (URCDC-Depth, Sec. 3.4): with probability p, cut at a row uniform in [0.2H, 0.8H] and swap strips.

    Breaks the "lower in the image = closer" shortcut so the network must use local cues.
    """
    if rng.random() >= probability:
        return image, depth
    height = image.shape[0]
    cut_row = int(rng.integers(int(0.2 * height), int(0.8 * height) + 1))
    return cutflip_rows(image, depth, cut_row)


def hflip(image: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right (copies, so the arrays stay contiguous for torch)."""
    return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(depth[:, ::-1])


def color_jitter(image: np.ndarray, rng: np.random.Generator,
                 brightness_range: tuple[float, float] = (0.9, 1.1)) -> np.ndarray:
    """Gamma 0.9-1.1, brightness (0.9-1.1 KITTI, 0.75-1.25 NYU), per-channel colour 0.9-1.1, clipped to [0, 1]."""
    gamma = rng.uniform(0.9, 1.1)
    brightness = rng.uniform(*brightness_range)
    colors = rng.uniform(0.9, 1.1, size=3).astype(np.float32)
    jittered = np.power(image, gamma, dtype=np.float32) * np.float32(brightness) * colors
    return np.clip(jittered, 0.0, 1.0)


@dataclass(frozen=True)
class AugmentConfig:
    """Which training augmentations run and how strong; defaults are the official KITTI settings."""

    kb_crop: bool = False                   # KITTI raw frames (KITTI_AUGMENT turns it on)
    rotate_max_deg: float = 1.0             # 1.0 KITTI, 2.5 NYU; 0 disables
    crop_height: int | None = 352           # None = no random crop
    crop_width: int | None = 1120
    cutflip_probability: float = 0.5
    hflip_probability: float = 0.5
    color_probability: float = 0.5
    brightness_range: tuple[float, float] = (0.9, 1.1)


# the official URCDC-Depth training settings (configs/arguments_train_kittieigen.txt, _nyu.txt)
KITTI_AUGMENT = AugmentConfig(kb_crop=True)
NYU_AUGMENT = AugmentConfig(rotate_max_deg=2.5, crop_height=480, crop_width=640, brightness_range=(0.75, 1.25))


def augment_pair(image: np.ndarray, depth: np.ndarray, config: AugmentConfig,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Run the whole training chain in the official order on one (image, depth) pair."""
    if config.kb_crop:
        image, depth = kb_crop(image, depth)
    if config.rotate_max_deg > 0:
        image, depth = rotate(image, depth, rng.uniform(-config.rotate_max_deg, config.rotate_max_deg))
    if config.crop_height is not None and config.crop_width is not None and (
            image.shape[0] != config.crop_height or image.shape[1] != config.crop_width):
        image, depth = random_crop(image, depth, config.crop_height, config.crop_width, rng)
    image, depth = cutflip(image, depth, rng, config.cutflip_probability)
    if rng.random() < config.hflip_probability:
        image, depth = hflip(image, depth)
    if rng.random() < config.color_probability:
        image = color_jitter(image, rng, config.brightness_range)
    return image, depth


def normalize_image(image: np.ndarray) -> torch.Tensor:
    """HxWx3 float [0, 1] -> 3xHxW ImageNet-normalised float32 tensor (what both branches consume)."""
    mean = np.asarray(IMAGENET_MEAN, dtype=np.float32)
    std = np.asarray(IMAGENET_STD, dtype=np.float32)
    normalized = (np.asarray(image, dtype=np.float32) - mean) / std
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))


def make_sample(image: np.ndarray, depth_m: np.ndarray, focal: float) -> dict:
    """The dataset sample dict of docs/DEVELOPING.md; ``image_cnn`` equals ``image`` as in the official loader."""
    image_tensor = normalize_image(image)
    return {
        "image": image_tensor,
        "image_cnn": image_tensor.clone(),
        "depth": torch.from_numpy(np.ascontiguousarray(depth_m, dtype=np.float32))[None],
        "focal": float(focal),
    }


def sample_rng() -> np.random.Generator:
    """A generator drawn from torch's RNG, so DataLoader workers (seeded by torch) get distinct streams."""
    return np.random.default_rng(int(torch.randint(0, 2**62, ()).item()))
