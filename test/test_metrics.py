"""Depth metrics: a hand-computed example, official crops and clamping, GT against itself and scaled GT."""
from __future__ import annotations

import math

import numpy as np
import pytest

from urcdc_model.data.base import read_depth_png
from urcdc_model.metrics import (METRIC_NAMES, MetricAccumulator, clamp_prediction, compute_depth_metrics,
                                 compute_errors, crop_mask, format_table, valid_mask)


def test_hand_computed_example():
    gt = np.array([1.0, 2.0, 4.0, 5.0])
    pred = np.array([2.0, 2.0, 3.0, 2.6])
    m = compute_errors(gt, pred)
    # ratios max(gt/pred, pred/gt) = 2, 1, 4/3, 5/2.6 = 1.923
    assert m["d1"] == pytest.approx(1 / 4)          # only 1 < 1.25
    assert m["d2"] == pytest.approx(2 / 4)          # 1 and 1.333 < 1.5625
    assert m["d3"] == pytest.approx(3 / 4)          # 1.923 < 1.953
    # |gt - pred| = 1, 0, 1, 2.4
    assert m["abs_rel"] == pytest.approx((1 / 1 + 0 + 1 / 4 + 2.4 / 5) / 4)       # 0.4325
    assert m["sq_rel"] == pytest.approx((1 / 1 + 0 + 1 / 4 + 5.76 / 5) / 4)       # 0.6005
    assert m["rms"] == pytest.approx(math.sqrt((1 + 0 + 1 + 5.76) / 4))           # 1.3928
    log_err = [math.log(2), 0.0, math.log(3 / 4), math.log(2.6 / 5)]
    mean, mean_sq = sum(log_err) / 4, sum(e * e for e in log_err) / 4
    assert m["log_rms"] == pytest.approx(math.sqrt(mean_sq))
    assert m["silog"] == pytest.approx(100 * math.sqrt(mean_sq - mean ** 2))
    assert m["log10"] == pytest.approx(sum(abs(e) for e in log_err) / 4 / math.log(10))


def test_official_crops():
    garg = crop_mask((375, 1242), "garg")
    rows, cols = np.nonzero(garg)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (153, 371, 44, 1197)
    eigen = crop_mask((375, 1242), "eigen")
    rows, cols = np.nonzero(eigen)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (124, 342, 44, 1197)
    nyu = crop_mask((480, 640), "eigen", dataset="nyu")
    rows, cols = np.nonzero(nyu)
    assert (rows.min(), rows.max() + 1, cols.min(), cols.max() + 1) == (45, 471, 41, 601)
    assert crop_mask((4, 5), "none").all()
    with pytest.raises(ValueError, match="unknown crop"):
        crop_mask((4, 5), "middle")


def test_predictions_are_clamped_as_the_official_eval():
    pred = clamp_prediction(np.array([np.inf, -np.inf, np.nan, 0.0, 200.0, 5.0]), 1e-3, 80.0)
    np.testing.assert_allclose(pred, [80.0, 1e-3, 1e-3, 1e-3, 80.0, 5.0], rtol=1e-6)


def test_valid_pixels_exclude_range_ends():
    gt = np.array([[0.0, 1e-3, 0.5, 79.9, 80.0, 85.0]])
    np.testing.assert_array_equal(valid_mask(gt, "kitti", "none"), [[False, False, True, True, False, False]])
    np.testing.assert_array_equal(valid_mask(gt, "nyu", "none"), [[False, False, True, False, False, False]])


@pytest.mark.parametrize("frame", ["0000000005", "0000000050", "0000000100"])
def test_kitti_gt_against_itself_and_scaled(shared_data, frame):
    gt = read_depth_png(shared_data / "kitti_depth_annotated" / "depth" / f"{frame}.png", 256.0)
    perfect = compute_depth_metrics(gt, gt, dataset="kitti", crop="garg")
    assert perfect["abs_rel"] == 0 and perfect["rms"] == 0 and perfect["d1"] == 1 and perfect["silog"] < 1e-4
    # with a max depth above 1.1 x the farthest GT (85 m) nothing is clamped: exactly 0.1
    scaled = compute_depth_metrics(gt, gt * 1.1, dataset="kitti", crop="eigen", max_depth_m=100.0)
    assert scaled["abs_rel"] == pytest.approx(0.1, abs=1e-6)
    assert scaled["d1"] == 1 and scaled["silog"] < 1e-3          # a global scale is invisible to silog
    assert scaled["log_rms"] == pytest.approx(math.log(1.1), rel=1e-4)
    # at the standard 80 m, predictions beyond 80 m are clamped, which can only lower the error
    standard = compute_depth_metrics(gt, gt * 1.1, dataset="kitti", crop="garg")
    assert 0.099 < standard["abs_rel"] <= 0.1 + 1e-6


def test_nyu_gt_against_itself_and_scaled(shared_data):
    gt = read_depth_png(shared_data / "nyu" / "depth" / "sync_depth_00050.png", 1000.0)
    assert compute_depth_metrics(gt, gt, dataset="nyu")["abs_rel"] == 0
    scaled = compute_depth_metrics(gt, gt * 1.1, dataset="nyu")
    # near 10 m, 1.1 x gt is clamped to 10 m, so abs_rel is at most 0.1
    assert 0.09 < scaled["abs_rel"] <= 0.1 + 1e-6


def test_dataset_mean_is_the_mean_of_per_image_metrics():
    small = compute_depth_metrics(np.full((2, 2), 10.0), np.full((2, 2), 11.0), dataset="kitti", crop="none")
    large = compute_depth_metrics(np.full((20, 20), 10.0), np.full((20, 20), 10.0), dataset="kitti", crop="none")
    accumulator = MetricAccumulator()
    accumulator.add(small)
    accumulator.add(large)
    assert accumulator.count == 2
    assert accumulator.mean()["abs_rel"] == pytest.approx(0.05)     # not pixel-weighted (0.1 * 4 / 404)
    with pytest.raises(ValueError, match="no images"):
        MetricAccumulator().mean()


def test_shape_mismatch_and_empty_masks_are_errors():
    with pytest.raises(ValueError, match="same HxW"):
        compute_depth_metrics(np.ones((4, 4)), np.ones((4, 5)))
    with pytest.raises(ValueError, match="no valid ground-truth pixels"):
        compute_depth_metrics(np.zeros((4, 4)), np.ones((4, 4)), crop="none")


def test_table_is_in_the_standard_order():
    header, values = format_table(dict.fromkeys(METRIC_NAMES, 0.5)).splitlines()
    assert [h.strip() for h in header.split(",")] == list(METRIC_NAMES)
    assert values.count("0.5000") == 9
