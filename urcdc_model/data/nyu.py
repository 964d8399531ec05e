"""NYU-Depth-v2 in the BTS "sync" layout: ``<scene>/rgb_XXXXX.jpg`` + ``<scene>/sync_depth_XXXXX.png`` (mm).

Training follows the official loader: depth outside the valid registration area [45:472, 43:608] is
zeroed for 480x640 frames (smaller inputs are cropped to that area), then rotation +-2.5 deg, CutFlip,
flip and jitter with brightness 0.75-1.25. Evaluation uses the official 654-image test list
(``nyudepthv2_test_files_with_gt.txt``) with the Eigen crop applied by the metrics.
"""
from __future__ import annotations

import numpy as np

from urcdc_model.data.base import DepthDataset
from urcdc_model.data.transforms import NYU_AUGMENT, AugmentConfig
from urcdc_model.deploy.geometry import CanonicalCamera

NYU_TEST_SIZE = 654
OFFICIAL_TEST_LIST = "nyudepthv2_test_files_with_gt.txt"
# rows 45:472, cols 43:608 carry registered depth in the 480x640 frames (official loader)
VALID_ROWS, VALID_COLS = slice(45, 472), slice(43, 608)


def zero_invalid_border(depth_m: np.ndarray) -> np.ndarray:
    """Depth with everything outside the valid registration window set to 0 (no ground truth)."""
    masked = np.zeros_like(depth_m)
    masked[VALID_ROWS, VALID_COLS] = depth_m[VALID_ROWS, VALID_COLS]
    return masked


class NyuDepthDataset(DepthDataset):
    """NYU-Depth-v2 (BTS sync layout and official test list)."""

    depth_scale = 1000.0
    default_focal = 518.8579
    max_depth_m = 10.0
    name = "nyu"

    def __init__(self, data_path, gt_path, filenames_file, mode: str = "train", augment: AugmentConfig | None = None,
                 canonical: CanonicalCamera | None = None):
        super().__init__(data_path, gt_path, filenames_file, mode, augment, canonical)
        if self.filenames_file.name == OFFICIAL_TEST_LIST and len(self.entries) != NYU_TEST_SIZE:
            raise ValueError(f"{self.filenames_file}: the official NYU test list has {NYU_TEST_SIZE} frames, "
                             f"this file has {len(self.entries)}; use the unmodified list for comparable numbers")

    def default_augment(self) -> AugmentConfig:
        return NYU_AUGMENT

    def prepare_train(self, image, depth):
        if image.shape[0] == 480:
            return image, zero_invalid_border(depth)
        return image[VALID_ROWS, VALID_COLS], depth[VALID_ROWS, VALID_COLS]
