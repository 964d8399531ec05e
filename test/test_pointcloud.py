"""pointcloud against depth_image_proc's layout and the pinhole model, on a real KITTI depth map."""
import json
import struct

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo, PointCloud2
from std_msgs.msg import Header

from urcdc_ros.pointcloud import (
    CameraInfoError,
    CloudBuilder,
    PinholeIntrinsics,
    fill_cloud_msg,
    intrinsics_from_camera_info,
    ray_grid,
    read_cloud_rgb,
    read_cloud_xyz,
)


@pytest.fixture(scope="module")
def kitti(shared_data):
    root = shared_data / "kitti_depth_annotated"
    meta = json.loads((root / "intrinsics.json").read_text())
    frame = meta["frames"][0]
    rgb = cv2.imread(str(next((root / "rgb").glob(f"*{frame}*.png"))), cv2.IMREAD_COLOR)[..., ::-1]
    raw = cv2.imread(str(next((root / "depth").glob(f"*{frame}*.png"))), cv2.IMREAD_UNCHANGED)
    depth_m = raw.astype(np.float32) / meta["depth_scale"]
    depth_m[raw == 0] = np.nan  # no ground truth
    height, width = depth_m.shape
    intrinsics = PinholeIntrinsics(fx=meta["fx"], fy=meta["fy"], cx=meta["cx"], cy=meta["cy"],
                                   width=width, height=height)
    return rgb, depth_m, intrinsics


def _msg(payload):
    return fill_cloud_msg(PointCloud2(check_fields=True), payload, Header(frame_id="camera_optical"))


@pytest.mark.parametrize("stride", [1, 3])
def test_cloud_reprojects_onto_the_pixel_grid(kitti, stride):
    rgb, depth_m, intrinsics = kitti
    msg = _msg(CloudBuilder().build(depth_m, intrinsics, stride=stride))
    xyz = read_cloud_xyz(msg)
    expected = depth_m[::stride, ::stride]
    assert xyz.shape == expected.shape + (3,)
    valid = np.isfinite(expected)
    assert valid.mean() > 0.05  # the annotated map is ~20% dense
    assert np.isnan(xyz[~valid]).all()
    z = xyz[..., 2][valid]
    np.testing.assert_allclose(z, expected[valid])
    rows, cols = np.nonzero(valid)
    u = xyz[..., 0][valid] / z * intrinsics.fx + intrinsics.cx
    v = xyz[..., 1][valid] / z * intrinsics.fy + intrinsics.cy
    np.testing.assert_allclose(u, cols * stride, atol=1e-2)
    np.testing.assert_allclose(v, rows * stride, atol=1e-2)


def test_xyz_layout_matches_depth_image_proc(kitti):
    _, depth_m, intrinsics = kitti
    msg = _msg(CloudBuilder().build(depth_m, intrinsics))
    assert [(f.name, f.offset, f.datatype, f.count) for f in msg.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1)]
    assert msg.point_step == 16 and msg.row_step == 16 * msg.width
    assert (msg.height, msg.width) == depth_m.shape and not msg.is_dense
    assert len(msg.data) == msg.row_step * msg.height
    assert msg.header.frame_id == "camera_optical"


def test_xyzrgb_packs_rgb_as_depth_image_proc(kitti):
    rgb, depth_m, intrinsics = kitti
    rgb = np.ascontiguousarray(rgb)
    rgb[0, 0] = (255, 128, 1)
    depth_m = depth_m.copy()
    depth_m[0, 0] = 5.0
    msg = _msg(CloudBuilder().build(depth_m, intrinsics, rgb=rgb))
    assert [(f.name, f.offset) for f in msg.fields] == [("x", 0), ("y", 4), ("z", 8), ("rgb", 16)]
    assert msg.point_step == 32
    # The first point's rgb float, read as the uint32 it carries, is 0x00RRGGBB.
    endian = ">" if msg.is_bigendian else "<"
    (bits,) = struct.unpack(endian + "I", bytes(msg.data[16:20]))
    assert bits == 0x00FF8001
    np.testing.assert_array_equal(read_cloud_rgb(msg), rgb)


def test_uncertainty_thresholds_blank_points(kitti):
    _, depth_m, intrinsics = kitti
    depth_m = np.where(np.isfinite(depth_m), np.maximum(depth_m, 20.0), 20.0)  # >= 20 m everywhere
    uncertainty_m = np.full_like(depth_m, 0.5)
    uncertainty_m[:, :100] = 3.0   # absolute: over 2 m
    uncertainty_m[:50, 200:300] = 1.5  # relative where depth is 20 m: 7.5% > 5%, under 2 m
    depth_m[:50, 200:300] = 20.0
    builder = CloudBuilder()
    xyz = read_cloud_xyz(_msg(builder.build(depth_m, intrinsics, uncertainty_m=uncertainty_m,
                                            max_uncertainty_m=2.0, max_relative_uncertainty=0.05)))
    blank = np.isnan(xyz[..., 2])
    assert blank[:, :100].all() and blank[:50, 200:300].all()
    assert not blank[:, 100:200].any() and not blank[50:, 200:].any()
    # Thresholds of 0 disable filtering.
    xyz = read_cloud_xyz(_msg(builder.build(depth_m, intrinsics, uncertainty_m=uncertainty_m)))
    assert np.isfinite(xyz).all()


def test_invalid_depth_values_become_nan():
    intrinsics = PinholeIntrinsics(fx=100.0, fy=100.0, cx=1.5, cy=0.5, width=4, height=1)
    depth_m = np.array([[0.0, -1.0, np.inf, 2.0]], np.float32)
    xyz = read_cloud_xyz(_msg(CloudBuilder().build(depth_m, intrinsics)))
    assert np.isnan(xyz[0, :3]).all()
    np.testing.assert_allclose(xyz[0, 3], [2.0 * 1.5 / 100, -2.0 * 0.5 / 100, 2.0])


def test_buffers_and_rays_are_reused(kitti):
    _, depth_m, intrinsics = kitti
    builder = CloudBuilder()
    first = builder.build(depth_m, intrinsics).data
    assert builder.build(depth_m * 2, intrinsics).data is first
    assert ray_grid(intrinsics, 1)[0] is ray_grid(intrinsics, 1)[0]


def test_camera_info_checks():
    info = CameraInfo(width=640, height=480)
    info.p = [500.0, 0.0, 320.0, 0.0, 0.0, 510.0, 240.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    intrinsics = intrinsics_from_camera_info(info)
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (500.0, 510.0, 320.0, 240.0)
    info.p[0] = 0.0
    with pytest.raises(CameraInfoError, match="must be > 0"):
        intrinsics_from_camera_info(info)
    info.p[0] = float("nan")
    with pytest.raises(CameraInfoError, match="not all finite"):
        intrinsics_from_camera_info(info)
    with pytest.raises(CameraInfoError, match="depth image is 4x3"):
        CloudBuilder().build(np.ones((3, 4), np.float32), PinholeIntrinsics(1.0, 1.0, 0.0, 0.0, 5, 3))
