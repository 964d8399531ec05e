"""KITTI Eigen split (as BTS / NeWCRFs / URCDC use it): raw frames with annotated or LiDAR ground truth.

Layout: ``data_path/<date>/<date>_drive_XXXX_sync/image_02/data/*.png``; annotated GT at
``gt_path/<date>/<gt path from the split file>`` (the official loader's join; ``gt_path/<gt path>``
is tried too) as uint16 PNG, metres = value / 256; or, with ``gt_source="velodyne"``, sparse GT projected
from ``velodyne_points/data/*.bin`` through the date's calibration (nearest point per pixel).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from urcdc_model.data.base import DepthDataset, SplitEntry
from urcdc_model.data.calib import CameraCalibration, load_raw_calibration, project_velodyne_to_depth, \
    read_velodyne_points
from urcdc_model.data.transforms import KITTI_AUGMENT, AugmentConfig, kb_crop, sample_rng
from urcdc_model.deploy.geometry import CanonicalCamera

GT_SOURCES = ("annotated", "velodyne")
LEFT_CAMERA, RIGHT_CAMERA = "image_02", "image_03"


class KittiDepthDataset(DepthDataset):
    """KITTI Eigen split. Train: KB crop, rotation +-1 deg, random 352x1120 crop, CutFlip, flip, jitter."""

    depth_scale = 256.0
    default_focal = 721.5377
    max_depth_m = 80.0
    name = "kitti"

    def __init__(self, data_path, gt_path, filenames_file, mode: str = "train", augment: AugmentConfig | None = None,
                 gt_source: str = "annotated", kb_crop_eval: bool = True, use_right: bool = False,
                 canonical: CanonicalCamera | None = None):
        """gt_source: "annotated" (PNG) or "velodyne" (projected LiDAR); kb_crop_eval: crop eval frames to
        the 352x1216 KB window as the official eval does (set False for full-frame evaluation);
        use_right: in training, read the right colour camera (image_03) instead of the left for half of
        the samples, as the official loader's ``--use_right`` (its GT and calibration follow);
        canonical: training frames through the inference plan (DepthDataset)."""
        if gt_source not in GT_SOURCES:
            raise ValueError(f"KittiDepthDataset: gt_source must be one of {GT_SOURCES}, got {gt_source!r}")
        self.gt_source = gt_source
        self.kb_crop_eval = kb_crop_eval
        self.use_right = use_right
        self._calibrations: dict[tuple[str, int], CameraCalibration] = {}
        super().__init__(data_path, gt_path, filenames_file, mode, augment, canonical)

    def default_augment(self) -> AugmentConfig:
        return KITTI_AUGMENT

    def has_other_ground_truth(self) -> bool:
        return self.gt_source == "velodyne"

    def entry_to_load(self, index: int) -> SplitEntry:
        entry = self.entries[index]
        if self.mode == "train" and self.use_right and sample_rng().random() < 0.5:
            return right_camera_entry(entry)
        return entry

    def gt_file(self, entry: SplitEntry) -> Path | None:
        if entry.gt is None:
            return None
        date = entry.rgb.split("/")[0]
        official = self.gt_path / date / entry.gt
        if official.is_file():
            return official
        direct = self.gt_path / entry.gt
        return direct if direct.is_file() else official

    def velodyne_file(self, entry: SplitEntry) -> Path:
        """image_02/data/N.png -> velodyne_points/data/N.bin of the same drive."""
        rgb = Path(entry.rgb)
        drive_dir = rgb.parents[2]
        return self.data_path / drive_dir / "velodyne_points" / "data" / f"{rgb.stem}.bin"

    def calibration(self, date: str, camera: int = 2) -> CameraCalibration:
        if (date, camera) not in self._calibrations:
            self._calibrations[(date, camera)] = load_raw_calibration(self.data_path / date, camera=camera)
        return self._calibrations[(date, camera)]

    def load_ground_truth(self, entry: SplitEntry, image_shape: tuple[int, int]) -> np.ndarray | None:
        if self.gt_source == "annotated":
            return super().load_ground_truth(entry, image_shape)
        scan = self.velodyne_file(entry)
        if not scan.is_file():
            raise FileNotFoundError(f"{scan}: Velodyne scan not found (gt_source='velodyne')")
        camera = 3 if f"/{RIGHT_CAMERA}/" in f"/{entry.rgb}" else 2
        calib = self.calibration(entry.rgb.split("/")[0], camera)
        return project_velodyne_to_depth(read_velodyne_points(scan), calib, image_shape)

    def prepare_eval(self, image, depth):
        if self.kb_crop_eval:
            image, depth = kb_crop(image, depth)
        return image, depth


def right_camera_entry(entry: SplitEntry) -> SplitEntry:
    """The same frame seen by the right colour camera: image_02 -> image_03 in the image and GT paths."""
    def swap(path: str | None) -> str | None:
        return None if path is None else path.replace(f"/{LEFT_CAMERA}/", f"/{RIGHT_CAMERA}/")
    return replace(entry, rgb=swap(entry.rgb), gt=swap(entry.gt))
