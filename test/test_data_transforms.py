"""Training augmentation: CutFlip exactness and distribution, geometric consistency of image and depth."""
from __future__ import annotations

import numpy as np
import pytest

from urcdc_model.data.transforms import (KITTI_AUGMENT, AugmentConfig, augment_pair, color_jitter, cutflip,
                                         cutflip_rows, hflip, kb_crop, normalize_image, random_crop, rotate)


def official_cutflip(image: np.ndarray, depth: np.ndarray, cut_row: int) -> tuple[np.ndarray, np.ndarray]:
    """The official loop (URCDC-Depth dataloader.cutflip, N = 2) re-implemented for comparison."""
    height = image.shape[0]
    bounds = [0, cut_row, height]
    inverse = [height - b for b in bounds]
    out_image, out_depth = image.copy(), depth.copy()
    for i in range(2):
        length = bounds[i + 1] - bounds[i]
        out_image[bounds[i]:bounds[i + 1]] = image[inverse[i] - length:inverse[i]]
        out_depth[bounds[i]:bounds[i + 1]] = depth[inverse[i] - length:inverse[i]]
    return out_image, out_depth


def labelled_pair(height: int = 40, width: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Image whose red channel encodes the depth, so any geometric mismatch shows up."""
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 80.0, size=(height, width)).astype(np.float32)
    image = np.stack([depth / 80.0, rng.random((height, width)), rng.random((height, width))], -1).astype(np.float32)
    return image, depth


def test_cutflip_swaps_the_strips_exactly():
    image, depth = labelled_pair(height=10)
    out_image, out_depth = cutflip_rows(image, depth, cut_row=3)
    # rows [0, 3) show the original bottom 3 rows, rows [3, 10) the original top 7 rows
    np.testing.assert_array_equal(out_image[:3], image[7:])
    np.testing.assert_array_equal(out_image[3:], image[:7])
    np.testing.assert_array_equal(out_depth[:3], depth[7:])
    np.testing.assert_array_equal(out_depth[3:], depth[:7])


@pytest.mark.parametrize("cut_row", range(2, 9))
def test_cutflip_matches_the_official_loop(cut_row):
    image, depth = labelled_pair(height=10)
    ours = cutflip_rows(image, depth, cut_row)
    official = official_cutflip(image, depth, cut_row)
    np.testing.assert_array_equal(ours[0], official[0])
    np.testing.assert_array_equal(ours[1], official[1])


def test_cutflip_probability_and_cut_rows_are_as_specified():
    height, trials = 50, 4000
    rng = np.random.default_rng(1)
    image = np.arange(height, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    depth = np.arange(height, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    applied, cut_rows = 0, []
    for _ in range(trials):
        out_image, out_depth = cutflip(image, depth, rng, probability=0.5)
        np.testing.assert_array_equal(out_image[..., 0], out_depth)      # same transform on both
        if out_depth[0, 0] != 0:
            applied += 1
            cut_rows.append(height - int(out_depth[0, 0]))                # row 0 shows original row H - h
    # Binomial(4000, 0.5): 5 sigma is +-158
    assert abs(applied - trials / 2) < 160
    low, high = int(0.2 * height), int(0.8 * height)
    assert min(cut_rows) == low and max(cut_rows) == high                  # the whole range, inclusive
    counts = np.bincount(cut_rows, minlength=high + 1)[low:high + 1]
    expected = len(cut_rows) / (high - low + 1)
    assert counts.min() > 0.5 * expected and counts.max() < 1.6 * expected    # roughly uniform


def test_kb_crop_is_the_bottom_centre_window():
    image = np.zeros((375, 1242, 3), np.float32)
    image[375 - 352, (1242 - 1216) // 2] = 1.0
    depth = image[..., 0].copy()
    cropped, cropped_depth = kb_crop(image, depth)
    assert cropped.shape == (352, 1216, 3) and cropped_depth.shape == (352, 1216)
    assert cropped[0, 0, 0] == 1.0 and cropped_depth[0, 0] == 1.0
    with pytest.raises(ValueError, match="352x1216"):
        kb_crop(np.zeros((300, 1242, 3)))


def test_rotation_keeps_depth_values_unmixed():
    image, depth = labelled_pair(height=60, width=80)
    rotated_image, rotated_depth = rotate(image, depth, 2.5)
    values = set(np.unique(depth).tolist()) | {0.0}
    assert set(np.unique(rotated_depth).tolist()) <= values      # nearest neighbour: no interpolated depths
    assert (rotated_depth == 0).any()                             # corners rotated in from outside: no GT
    assert rotated_image.shape == image.shape


def test_random_crop_and_flip_move_image_and_depth_together():
    image, depth = labelled_pair(height=40, width=60)
    rng = np.random.default_rng(3)
    crop_image, crop_depth = random_crop(image, depth, 20, 30, rng)
    np.testing.assert_allclose(crop_image[..., 0] * 80.0, crop_depth, rtol=1e-6)
    flip_image, flip_depth = hflip(crop_image, crop_depth)
    np.testing.assert_array_equal(flip_depth, crop_depth[:, ::-1])
    np.testing.assert_allclose(flip_image[..., 0] * 80.0, flip_depth, rtol=1e-6)
    with pytest.raises(ValueError, match="smaller"):
        random_crop(image, depth, 50, 30, rng)


def test_full_chain_without_rotation_keeps_the_pair_consistent():
    image, depth = labelled_pair(height=60, width=90)
    config = AugmentConfig(rotate_max_deg=0.0, crop_height=40, crop_width=50, color_probability=0.0)
    rng = np.random.default_rng(5)
    for _ in range(20):
        out_image, out_depth = augment_pair(image, depth, config, rng)
        assert out_image.shape == (40, 50, 3) and out_depth.shape == (40, 50)
        np.testing.assert_allclose(out_image[..., 0] * 80.0, out_depth, rtol=1e-6)


def test_kitti_chain_output_size():
    image = np.random.default_rng(0).random((375, 1242, 3)).astype(np.float32)
    depth = np.ones((375, 1242), np.float32)
    out_image, out_depth = augment_pair(image, depth, KITTI_AUGMENT, np.random.default_rng(0))
    assert out_image.shape == (352, 1120, 3) and out_depth.shape == (352, 1120)


def test_color_jitter_stays_in_range_and_changes_colour():
    image = np.full((4, 4, 3), 0.5, np.float32)
    jittered = color_jitter(image, np.random.default_rng(2))
    assert jittered.min() >= 0 and jittered.max() <= 1
    assert not np.allclose(jittered, image)
    # worst case: gamma 0.9, brightness 1.1, colour 1.1 -> 0.5 ** 0.9 * 1.21
    assert jittered.max() <= 0.5 ** 0.9 * 1.21 + 1e-6


def test_normalize_image_uses_imagenet_statistics():
    tensor = normalize_image(np.full((2, 3, 3), 0.485, np.float32))
    assert tensor.shape == (3, 2, 3)
    assert abs(float(tensor[0, 0, 0])) < 1e-6
