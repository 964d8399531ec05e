"""The multi-camera benchmark (issue 12): its camera list, per-frame scores and the pass criteria."""
from __future__ import annotations

import numpy as np
import pytest

from urcdc_model.camera_benchmark import (CAMERAS, KITTI_CAMERA, BenchmarkCamera, BenchmarkResult, CameraScore,
                                          format_table, judge, score_frame)


def test_the_camera_list_spans_the_issue_ranges():
    assert CAMERAS[0] == KITTI_CAMERA
    np.testing.assert_allclose(KITTI_CAMERA.intrinsics, [[721.5377, 0, 609.5593], [0, 721.5377, 172.854], [0, 0, 1]])
    others = CAMERAS[1:]
    assert len(others) >= 6
    sizes = {(c.width, c.height) for c in others}
    assert (320, 240) in sizes and (1936, 1216) in sizes
    assert min(c.focal_px for c in others) == 250.0 and max(c.focal_px for c in others) == 2200.0
    assert min(c.aspect for c in others) == pytest.approx(4 / 3) and max(c.aspect for c in others) >= 3.4
    assert len({c.name for c in CAMERAS}) == len(CAMERAS)


def test_a_camera_without_a_principal_point_is_centred():
    k = BenchmarkCamera("x", 240, 320, 250.0).intrinsics
    assert (k[0, 2], k[1, 2]) == (159.5, 119.5)


def test_frame_scores_ignore_the_sky_and_measure_the_scale():
    gt = np.full((20, 30), 10.0, np.float32)
    gt[:5] = 80.0                                    # sky is rendered at max depth: no ground truth
    pred = gt * 1.1
    pred[:5] = 3.0
    abs_rel, median_ratio, d1 = score_frame(gt, pred)
    assert abs_rel == pytest.approx(0.1, rel=1e-5) and median_ratio == pytest.approx(1.1, rel=1e-6) and d1 == 1.0


def _score(name: str, abs_rel: float, median: float) -> CameraScore:
    return CameraScore(BenchmarkCamera(name, 100, 300, 200.0), (104, 304), abs_rel, median, 0.9, 6)


def test_criteria_are_relative_to_the_kitti_camera():
    scores = [_score("KITTI", 0.10, 0.97), _score("ok", 0.124, 1.04), _score("blurry", 0.126, 1.0),
              _score("too far", 0.11, 1.06)]
    judge(scores)
    assert [s.failed for s in scores] == [[], [], ["abs_rel > 1.25 x KITTI"], ["median off by > 5%"]]
    bad_reference = [_score("KITTI", 0.13, 0.94), _score("other", 0.15, 1.0)]
    judge(bad_reference)
    assert bad_reference[0].failed == ["abs_rel > 0.12", "median off by > 5%"] and bad_reference[1].passed
    table = format_table(BenchmarkResult(scores, 6, 1_000_000, True, 12.0))
    assert "| blurry | 300x100 | 200 | 3.00 |" in table and "FAIL: abs_rel > 1.25 x KITTI" in table
    assert "2/4 cameras meet" in table
