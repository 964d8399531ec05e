"""KITTI calibration parsing and LiDAR projection on the real sample files."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from urcdc_model.data.calib import (load_object_calibration, load_raw_calibration, project_velodyne_to_depth,
                                    read_calib_file, read_velodyne_points, write_raw_calibration)

KITTI_CAMERA_HEIGHT_M = 1.65     # the KITTI rig's camera height above the road (Geiger et al. 2013)


def test_real_raw_calibration_parses(shared_data):
    calib = load_raw_calibration(shared_data / "kitti_raw_calib_2011_09_26")
    np.testing.assert_allclose(calib.projection[0], [721.5377, 0.0, 609.5593, 44.85728])
    np.testing.assert_allclose(calib.projection[2, 3], 2.745884e-03)
    np.testing.assert_allclose(calib.rectification[0, :3], [0.9999239, 0.00983776, -0.007445048])
    assert calib.image_size == (375, 1242)
    np.testing.assert_allclose(calib.velo_to_cam[:3, 3], [-4.069766e-03, -7.631618e-02, -2.717806e-01])
    rotation = calib.velo_to_cam[:3, :3]
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-5)
    # camera 3 has the other baseline
    assert load_raw_calibration(shared_data / "kitti_raw_calib_2011_09_26", camera=3).projection[0, 3] < 0


def test_missing_velo_to_cam_is_reported_clearly(shared_data, tmp_path):
    shutil.copyfile(shared_data / "kitti_raw_calib_2011_09_26" / "calib_cam_to_cam.txt",
                    tmp_path / "calib_cam_to_cam.txt")
    calib = load_raw_calibration(tmp_path)
    assert calib.velo_to_cam is None
    with pytest.raises(ValueError, match="calib_velo_to_cam.txt missing"):
        calib.velo_to_image()


def test_bad_calibration_lines_name_file_and_line(tmp_path):
    path = tmp_path / "calib_cam_to_cam.txt"
    path.write_text("calib_time: 09-Jan-2012 13:57:47\nP_rect_02: 1 2 x\n")
    with pytest.raises(ValueError, match=r"calib_cam_to_cam.txt:2: .*P_rect_02"):
        read_calib_file(path)
    path.write_text("R_rect_00: 1 0 0 0 1 0 0 0 1\nP_rect_02: 1 2 3\n")
    with pytest.raises(ValueError, match="P_rect_02 must have 12 numbers"):
        load_raw_calibration(tmp_path)
    path.write_text("P_rect_02: 1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(KeyError, match="no R_rect_00 line"):
        load_raw_calibration(tmp_path)
    with pytest.raises(FileNotFoundError):
        load_raw_calibration(tmp_path / "nowhere")


def test_written_calibration_round_trips(tmp_path):
    intrinsics = np.array([[300.0, 0, 150.0], [0, 300.0, 60.0], [0, 0, 1]])
    write_raw_calibration(tmp_path, intrinsics, (120, 320))
    calib = load_raw_calibration(tmp_path)
    np.testing.assert_allclose(calib.intrinsics, intrinsics)
    assert calib.image_size == (120, 320)
    # Velodyne x forward, y left, z up -> camera z forward, x right, y down
    np.testing.assert_allclose(calib.velo_to_cam[:3, :3] @ [1, 0, 0], [0, 0, 1])
    np.testing.assert_allclose(calib.velo_to_cam[:3, :3] @ [0, 1, 0], [-1, 0, 0])


@pytest.mark.parametrize("frame", ["000000", "000001", "000002"])
def test_object_lidar_projects_to_plausible_sparse_depth(shared_data, frame):
    import cv2

    root = shared_data / "kitti_object_lidar"
    calib = load_object_calibration(root / "calib" / f"{frame}.txt")
    image = cv2.imread(str(root / "image_2" / f"{frame}.png"))
    height, width = image.shape[:2]
    points = read_velodyne_points(root / "velodyne" / f"{frame}.bin")
    assert points.shape[1] == 4 and len(points) > 50_000
    depth = project_velodyne_to_depth(points, calib, (height, width))
    valid = depth > 0
    assert 10_000 < valid.sum() < 0.2 * height * width              # sparse, as KITTI LiDAR GT
    assert 3.0 < depth[valid].min() and depth[valid].max() < 90.0
    assert 4.0 < np.percentile(depth[valid], 5) and np.percentile(depth[valid], 95) < 80.0
    rows = np.nonzero(valid)[0]
    assert rows.min() > 0.2 * height                                 # the LiDAR sees nothing far above the horizon
    # camera geometry: road points in the bottom rows lie about one camera height below the camera
    k = calib.intrinsics
    bottom = valid & (np.arange(height)[:, None] > 0.85 * height)
    v, _ = np.nonzero(bottom)
    below_camera_m = (v - k[1, 2]) * depth[bottom] / k[1, 1]
    assert abs(np.median(below_camera_m) - KITTI_CAMERA_HEIGHT_M) < 0.25


def test_nearest_point_wins_per_pixel():
    calib = load_object_calibration_from_matrices()
    # two points on the same ray from the camera, 10 m and 20 m ahead (Velodyne x = forward)
    points = np.array([[20.0, 0.0, 0.0, 0.5], [10.0, 0.0, 0.0, 0.5], [-5.0, 0.0, 0.0, 0.5]], np.float32)
    depth = project_velodyne_to_depth(points, calib, (100, 200))
    assert depth[50, 100] == pytest.approx(10.0)
    assert (depth > 0).sum() == 1                                    # the point behind is dropped


def load_object_calibration_from_matrices():
    from urcdc_model.data.calib import CameraCalibration

    projection = np.array([[100.0, 0, 100.0, 0], [0, 100.0, 50.0, 0], [0, 0, 1, 0]])
    velo_to_cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    return CameraCalibration(projection, np.eye(4), velo_to_cam)


def test_truncated_velodyne_file_is_rejected(tmp_path):
    path = tmp_path / "scan.bin"
    np.zeros(7, np.float32).tofile(path)
    with pytest.raises(ValueError, match="multiple of 4"):
        read_velodyne_points(path)
