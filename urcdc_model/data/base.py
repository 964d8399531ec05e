"""The shared base of the real-data loaders (monodepth2 style): split files, image/GT reading, samples.

Split files use the BTS / NeWCRFs / URCDC format, one frame per line: ``rgb_path gt_path focal``
(``gt_path`` may be ``None``: no ground truth for that frame). Subclasses say where files live,
how ground truth is scaled and which dataset-specific steps run before the shared augmentation.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from torch.utils.data import Dataset

from urcdc_model.data.cameras import frame_to_network
from urcdc_model.data.transforms import AugmentConfig, augment_pair, kb_crop, make_sample, sample_rng
from urcdc_model.deploy.geometry import CanonicalCamera

MODES = ("train", "eval")


@dataclass(frozen=True)
class SplitEntry:
    """One line of a split file."""

    rgb: str
    gt: str | None
    focal: float
    line_number: int


def read_split_file(path: str | Path, default_focal: float) -> list[SplitEntry]:
    """Parse ``rgb gt focal`` lines (focal optional, gt may be ``None``); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: split file not found")
    entries = []
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 3:
            raise ValueError(f"{path}:{line_number}: expected 'rgb_path gt_path focal', got {len(fields)} fields")
        gt = fields[1] if len(fields) > 1 and fields[1] != "None" else None
        try:
            focal = float(fields[2]) if len(fields) > 2 else default_focal
        except ValueError:
            raise ValueError(f"{path}:{line_number}: focal {fields[2]!r} is not a number") from None
        entries.append(SplitEntry(fields[0].lstrip("/"), gt.lstrip("/") if gt else None, focal, line_number))
    if not entries:
        raise ValueError(f"{path}: split file has no entries")
    return entries


def read_rgb(path: Path) -> np.ndarray:
    """An 8-bit colour image as H x W x 3 float32 RGB in [0, 1]."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: image not found")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: unreadable image (not a valid PNG/JPEG)")
    return bgr[..., ::-1].astype(np.float32) / 255.0


def read_depth_png(path: Path, depth_scale: float) -> np.ndarray:
    """A 16-bit depth PNG as H x W float32 metres (value / depth_scale; 0 = no data)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: ground-truth depth not found")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f"{path}: unreadable depth PNG")
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise ValueError(f"{path}: depth PNG must be single-channel uint16, got {raw.dtype} with shape {raw.shape}")
    return raw.astype(np.float32) / np.float32(depth_scale)


class DepthDataset(Dataset):
    """Frames of a split file as dataset samples (``image``, ``image_cnn``, ``depth``, ``focal``).

    Train mode runs the dataset's pre-step, then the shared augmentation chain; eval mode returns the
    frame as the official online eval sees it, plus ``has_valid_depth`` (False when GT is missing).
    With ``canonical``, training frames go through the inference plan (``urcdc_model.deploy.geometry``,
    focal from the split file, principal point at the centre: only the focal sets the plan) after the
    KB crop and before the rest of the chain, which then neither crops nor KB-crops: the trainer crops
    a window per batch. Labels are then in network scale and ``focal`` is the network image's focal.
    """

    depth_scale: float = 256.0
    default_focal: float = 721.5377
    max_depth_m: float = 80.0
    name: str = "depth"

    def __init__(self, data_path: str | Path, gt_path: str | Path | None, filenames_file: str | Path | list,
                 mode: str = "train", augment: AugmentConfig | None = None,
                 canonical: CanonicalCamera | None = None):
        """data_path: image root; gt_path: ground-truth root (None = data_path); filenames_file: split file
        (or a list of SplitEntry);
        mode: "train" | "eval"; augment: training augmentation (default: the dataset's official one);
        canonical: apply the inference plan to training frames (see the class docstring)."""
        if mode not in MODES:
            raise ValueError(f"{type(self).__name__}: mode must be one of {MODES}, got {mode!r}")
        self.data_path = Path(data_path)
        self.gt_path = Path(gt_path) if gt_path else self.data_path
        self.filenames_file = Path(filenames_file) if not isinstance(filenames_file, list) else Path("<entries>")
        self.mode = mode
        self.augment = augment or self.default_augment()
        self.canonical = canonical
        entries = list(filenames_file) if isinstance(filenames_file, list) else \
            read_split_file(filenames_file, self.default_focal)
        if mode == "train":
            entries = [e for e in entries if e.gt is not None or self.has_other_ground_truth()]
            if not entries:
                raise ValueError(f"{filenames_file}: no training entries with ground truth")
        self.entries = entries

    # hooks for subclasses ----------------------------------------------------------------
    def default_augment(self) -> AugmentConfig:
        return AugmentConfig()

    def has_other_ground_truth(self) -> bool:
        """True when frames without a GT path still have GT from elsewhere (e.g. projected LiDAR)."""
        return False

    def entry_to_load(self, index: int) -> SplitEntry:
        """The split entry that sample ``index`` reads (KITTI may swap in the right camera)."""
        return self.entries[index]

    def rgb_file(self, entry: SplitEntry) -> Path:
        return self.data_path / entry.rgb

    def gt_file(self, entry: SplitEntry) -> Path | None:
        return None if entry.gt is None else self.gt_path / entry.gt

    def load_ground_truth(self, entry: SplitEntry, image_shape: tuple[int, int]) -> np.ndarray | None:
        """H x W metres, or None when the frame has no ground truth."""
        path = self.gt_file(entry)
        if path is None:
            return None
        depth = read_depth_png(path, self.depth_scale)
        if depth.shape != image_shape:
            raise ValueError(f"{path}: ground truth is {depth.shape[0]}x{depth.shape[1]} but the image "
                             f"{self.rgb_file(entry)} is {image_shape[0]}x{image_shape[1]}")
        return depth

    def prepare_train(self, image: np.ndarray, depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Dataset-specific steps before the shared augmentation (NYU border handling)."""
        return image, depth

    def prepare_eval(self, image: np.ndarray, depth: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Dataset-specific steps for evaluation inputs (KITTI KB crop)."""
        return image, depth

    def canonical_sample(self, image: np.ndarray, depth: np.ndarray, entry: SplitEntry) -> dict:
        """A training sample through the inference plan (KB crop first: a crop keeps the focal)."""
        if self.augment.kb_crop:
            image, depth = kb_crop(image, depth)
        height, width = image.shape[:2]
        intrinsics = np.array([[entry.focal, 0, (width - 1) / 2], [0, entry.focal, (height - 1) / 2], [0, 0, 1]])
        image, depth, focal = frame_to_network(image, depth, intrinsics, self.canonical, self.max_depth_m)
        augment = replace(self.augment, kb_crop=False, crop_height=None, crop_width=None)
        image, depth = augment_pair(image, depth, augment, sample_rng())
        return make_sample(image, depth, focal)

    # Dataset API -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray | None, SplitEntry]:
        """(image HxWx3 [0, 1], depth metres or None, entry) of frame ``index`` without any processing."""
        entry = self.entry_to_load(index)
        image = read_rgb(self.rgb_file(entry))
        try:
            depth = self.load_ground_truth(entry, image.shape[:2])
        except FileNotFoundError:
            if self.mode == "train":
                raise
            depth = None            # the official eval skips frames whose GT file is missing
        return image, depth, entry

    def __getitem__(self, index: int) -> dict:
        image, depth, entry = self.load(index)
        if self.mode == "train":
            image, depth = self.prepare_train(image, depth)
            if self.canonical is not None:
                return self.canonical_sample(image, depth, entry)
            image, depth = augment_pair(image, depth, self.augment, sample_rng())
            return make_sample(image, depth, entry.focal)
        image, depth = self.prepare_eval(image, depth)
        has_valid_depth = depth is not None
        sample = make_sample(image, depth if has_valid_depth else np.zeros(image.shape[:2], np.float32), entry.focal)
        sample["has_valid_depth"] = has_valid_depth
        return sample
