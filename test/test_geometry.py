"""The one input geometry (deploy/geometry.py) and where intrinsics come from (deploy/intrinsics.py).

Round trips: aspect kept, principal point kept, pad/crop inverse exact, outputs back on the frame's
grid; the compute budget on an 8K frame; bad intrinsics named.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from urcdc_model.deploy.geometry import (DEFAULT_BUDGET_FACTOR, DEFAULT_STRIDE, CanonicalCamera,
                                         check_intrinsics, mirror_intrinsics, plan_input, resize)
from urcdc_model.deploy.intrinsics import (centred_intrinsics, intrinsics_matrix, parse_intrinsics_values,
                                           read_camera_info_yaml)

# the default model's canonical camera: KITTI's focal scaled to its 96x320 training input
CANONICAL = CanonicalCamera(721.5377 * 320 / 1242, (96, 320))
BUDGET_PX = DEFAULT_BUDGET_FACTOR * 96 * 320
STRIDE_HW = (DEFAULT_STRIDE, DEFAULT_STRIDE) if isinstance(DEFAULT_STRIDE, int) else DEFAULT_STRIDE


def _padding_px_bound(network_hw: tuple[int, int]) -> int:
    """Most pixels the stride padding can add to an image inside the budget (a strip per axis)."""
    return STRIDE_HW[0] * network_hw[1] + STRIDE_HW[1] * network_hw[0]

# (height, width, fx, fy, cx, cy): the benchmark's spread of cameras, non-square pixels and an off-centre point
CAMERAS = [
    (375, 1242, 721.5377, 721.5377, 609.5593, 172.854),
    (480, 640, 525.0, 525.0, 319.5, 239.5),
    (1216, 1936, 2200.0, 2200.0, 950.0, 640.0),
    (375, 1242, 360.0, 360.0, 620.5, 187.0),
    (240, 320, 250.0, 250.0, 170.0, 110.0),
    (300, 1024, 600.0, 600.0, 511.5, 149.5),
    (480, 848, 420.0, 470.0, 400.0, 250.0),
]


def _plan(camera, **kwargs):
    height, width, fx, fy, cx, cy = camera
    return plan_input((height, width), CANONICAL, intrinsics_matrix(fx, fy, cx, cy), **kwargs)


def _smooth_map(height: int, width: int) -> np.ndarray:
    v, u = np.mgrid[0:height, 0:width].astype(np.float32)
    return 20.0 + 8.0 * np.sin(2 * np.pi * u / width) * np.cos(np.pi * v / height) + 5.0 * v / height


@pytest.mark.parametrize("camera", CAMERAS)
def test_the_canonical_resize_keeps_the_aspect_and_makes_the_canonical_focal(camera):
    height, width, fx, fy, _, _ = camera
    plan = _plan(camera)
    resized_h, resized_w = plan.resized_hw
    # square pixels after the resize: the aspect of the scene, not of the pixel grid, is kept
    assert resized_w / resized_h == pytest.approx((width / fx) / (height / fy), rel=2.0 / min(resized_h, resized_w))
    k_net = plan.network_intrinsics
    assert k_net[0, 0] == pytest.approx(k_net[1, 1], rel=1.0 / min(resized_h, resized_w))
    # the focal the network sees is the canonical one, times the depth scale (1 unless the budget/min size acts)
    assert math.sqrt(k_net[0, 0] * k_net[1, 1]) == pytest.approx(plan.depth_scale * CANONICAL.focal_px, rel=1e-9)
    assert plan.depth_scale == pytest.approx(1.0, rel=2.0 / min(resized_h, resized_w)) or plan.depth_scale < 1.0
    assert plan.network_hw[0] % STRIDE_HW[0] == 0 and plan.network_hw[1] % STRIDE_HW[1] == 0
    assert plan.network_hw[0] * plan.network_hw[1] <= BUDGET_PX + _padding_px_bound(plan.network_hw)


@pytest.mark.parametrize("camera", CAMERAS)
def test_the_principal_point_lands_where_network_intrinsics_say(camera):
    """A blob centred on the frame's principal point is centred on the network K's principal point."""
    height, width, fx, fy, cx, cy = camera
    plan = _plan(camera)
    v, u = np.mgrid[0:height, 0:width]
    sigma_px = 0.06 * min(height, width)
    blob = np.exp(-((u - cx) ** 2 + (v - cy) ** 2) / (2 * sigma_px ** 2)).astype(np.float32)
    net = plan.image_to_network(blob)
    vn, un = np.mgrid[0:net.shape[0], 0:net.shape[1]]
    centroid = (float((un * net).sum() / net.sum()), float((vn * net).sum() / net.sum()))
    k_net = plan.network_intrinsics
    assert centroid == pytest.approx((k_net[0, 2], k_net[1, 2]), abs=0.15)
    # and every ray keeps its direction: (u - cx) / fx is the same on both grids (pixel centres, cv2's convention)
    sx, sy = plan.resized_hw[1] / width, plan.resized_hw[0] / height
    u_frame = np.array([0.0, cx, width - 1.0])
    u_net = (u_frame + 0.5) * sx - 0.5 + plan.pad_tlbr[1]
    np.testing.assert_allclose((u_net - k_net[0, 2]) / k_net[0, 0], (u_frame - cx) / fx, atol=1e-12)
    v_frame = np.array([0.0, cy, height - 1.0])
    v_net = (v_frame + 0.5) * sy - 0.5 + plan.pad_tlbr[0]
    np.testing.assert_allclose((v_net - k_net[1, 2]) / k_net[1, 1], (v_frame - cy) / fy, atol=1e-12)


@pytest.mark.parametrize("camera", CAMERAS)
def test_padding_is_centred_and_cropping_undoes_it_exactly(camera):
    height, width = camera[:2]
    plan = _plan(camera)
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    net = plan.image_to_network(rgb)
    assert net.shape == (*plan.network_hw, 3)
    top, left, bottom, right = plan.pad_tlbr
    assert abs(top - bottom) <= 1 and abs(left - right) <= 1
    np.testing.assert_array_equal(plan.crop_padding(net), resize(rgb, plan.resized_hw, area=True))
    # the padding is the edge replicated (no black border for the network to read as structure)
    if top:
        np.testing.assert_array_equal(net[0], net[top])
    if left:
        np.testing.assert_array_equal(net[:, 0], net[:, left])


@pytest.mark.parametrize("camera", CAMERAS)
def test_another_padding_pads_rows_and_columns_to_their_own_multiples_and_keeps_the_scale(camera):
    height, width, fx, fy, cx, cy = camera
    k = intrinsics_matrix(fx, fy, cx, cy)
    stride = (16, 8)        # rows and columns, each to its own multiple
    plain = plan_input((height, width), CANONICAL, k)
    tta = plan_input((height, width), CANONICAL, mirror_intrinsics(k, width), stride=stride)
    assert tta.resized_hw == plain.resized_hw and tta.depth_scale == plain.depth_scale
    assert tta.network_hw[0] % stride[0] == 0 and tta.network_hw[1] % stride[1] == 0
    assert all(0 <= n - r < m for n, r, m in zip(tta.network_hw, tta.resized_hw, stride))
    rgb = np.random.default_rng(1).integers(0, 256, (height, width, 3), dtype=np.uint8)
    np.testing.assert_array_equal(tta.crop_padding(tta.image_to_network(rgb)), resize(rgb, tta.resized_hw, area=True))


@pytest.mark.parametrize("camera", CAMERAS)
def test_a_scaled_plan_shows_the_camera_at_that_scale_and_says_so_in_the_depth_scale(camera):
    height, width, fx, fy, cx, cy = camera
    k = intrinsics_matrix(fx, fy, cx, cy)
    plain = plan_input((height, width), CANONICAL, k)
    larger = plan_input((height, width), CANONICAL, k, scale=1.15)
    tolerance = 2.0 / min(plain.resized_hw)                    # pixel rounding
    assert larger.depth_scale == pytest.approx(1.15 * plain.depth_scale, rel=tolerance)
    assert larger.resized_hw[0] == pytest.approx(1.15 * plain.resized_hw[0], abs=1)
    assert larger.network_intrinsics[0, 0] == pytest.approx(larger.depth_scale * CANONICAL.focal_px, rel=tolerance)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="scale must be a positive number"):
            plan_input((height, width), CANONICAL, k, scale=bad)


def test_mirrored_intrinsics_put_the_principal_point_on_the_mirrored_column():
    k = np.array([[700.0, 0, 600.5], [0, 690.0, 170.0], [0, 0, 1]])
    mirrored = mirror_intrinsics(k, 1242)
    assert mirrored[0, 2] == 1242 - 1 - 600.5 and mirrored[1, 2] == 170.0 and mirrored[0, 0] == 700.0
    np.testing.assert_array_equal(mirror_intrinsics(mirrored, 1242), k)
    assert k[0, 2] == 600.5                                     # the input is not changed


@pytest.mark.parametrize("camera", CAMERAS)
def test_outputs_map_back_onto_the_frame(camera):
    """output_to_frame(image_to_network(x)) ≈ x × depth_scale for a smooth map; GT goes in at network scale."""
    height, width = camera[:2]
    plan = _plan(camera)
    smooth = _smooth_map(height, width)
    back = plan.output_to_frame(plan.image_to_network(smooth))
    assert back.shape == (height, width) and back.dtype == np.float32
    np.testing.assert_allclose(back / plan.depth_scale, smooth, rtol=0.02)
    gt_net = plan.depth_to_network(smooth)
    top, left, bottom, right = plan.pad_tlbr
    assert (gt_net[:top] == 0).all() and (gt_net[gt_net.shape[0] - bottom:] == 0).all()  # padding: no GT
    assert (gt_net[:, :left] == 0).all() and (gt_net[:, gt_net.shape[1] - right:] == 0).all()
    np.testing.assert_allclose(plan.output_to_frame(gt_net), smooth, rtol=0.03)


def test_the_training_camera_is_the_identity():
    plan = plan_input((96, 320), CANONICAL, None)
    assert plan.fallback and plan.resized_hw == plan.network_hw == (96, 320) and plan.depth_scale == 1.0
    k = CANONICAL.fallback_intrinsics((96, 320))
    rgb = np.random.default_rng(1).integers(0, 256, (96, 320, 3), dtype=np.uint8)
    np.testing.assert_array_equal(plan_input((96, 320), CANONICAL, k).image_to_network(rgb), rgb)


@pytest.mark.parametrize("focal_px", [500.0, 4000.0, 20000.0])
def test_an_8k_frame_stays_inside_the_compute_budget(focal_px):
    plan = plan_input((4320, 7680), CANONICAL, centred_intrinsics(focal_px, (4320, 7680)))
    network_px = plan.network_hw[0] * plan.network_hw[1]
    assert network_px <= BUDGET_PX + _padding_px_bound(plan.network_hw)
    assert min(plan.resized_hw) >= 64                      # and never too small for the coarsest features
    assert plan.resized_hw[1] / plan.resized_hw[0] == pytest.approx(7680 / 4320, rel=0.05)
    if focal_px == 500.0:                                   # wide: the budget shrinks it, the scale follows
        assert plan.depth_scale < 0.5


def test_an_8k_frame_goes_through_and_back():
    frame_hw = (4320, 7680)
    plan = plan_input(frame_hw, CANONICAL, centred_intrinsics(4000.0, frame_hw))
    frame = np.full((*frame_hw, 3), 128, np.uint8)
    assert plan.image_to_network(frame).shape == (*plan.network_hw, 3)
    depth = plan.output_to_frame(np.full(plan.network_hw, 10.0, np.float32))
    assert depth.shape == frame_hw and np.allclose(depth, 10.0 * plan.depth_scale)


@pytest.mark.parametrize("k, message", [
    (intrinsics_matrix(float("nan"), 700, 600, 180), "fx is nan"),
    (intrinsics_matrix(700, float("inf"), 600, 180), "fy is inf"),
    (intrinsics_matrix(0, 700, 600, 180), "fx = 0 px"),
    (intrinsics_matrix(700, -1, 600, 180), "fy = -1 px"),
    (intrinsics_matrix(700, 700, 2000, 180), "cx = 2000 px is far outside the 1242x375 frame"),
    (intrinsics_matrix(700, 700, 600, -300), "cy = -300 px is far outside"),
    (np.eye(2), "3x3 matrix"),
])
def test_bad_intrinsics_raise_naming_the_field(k, message):
    with pytest.raises(ValueError, match=message):
        check_intrinsics(k, (375, 1242))
    with pytest.raises(ValueError, match=message):
        plan_input((375, 1242), CANONICAL, k)


def test_a_principal_point_somewhat_off_centre_is_accepted():
    check_intrinsics(intrinsics_matrix(700, 700, -0.4 * 1242, 1.4 * 375), (375, 1242))


# --- intrinsics from the command line and camera_info files ------------------------------------------


def test_intrinsics_values_parse_or_name_the_field():
    np.testing.assert_array_equal(parse_intrinsics_values(["700", "710", "600.5", "180"]),
                                  [[700, 0, 600.5], [0, 710, 180], [0, 0, 1]])
    with pytest.raises(ValueError, match="needs 4 values FX FY CX CY"):
        parse_intrinsics_values(["700", "710", "600.5"])
    with pytest.raises(ValueError, match="CX = 'x' is not a number"):
        parse_intrinsics_values(["700", "710", "x", "180"])


CAMERA_INFO = """image_width: 640
image_height: 480
camera_name: narrow_stereo
camera_matrix:
  rows: 3
  cols: 3
  data: [520.0, 0.0, 321.0, 0.0, 522.0, 241.0, 0.0, 0.0, 1.0]
distortion_model: plumb_bob
distortion_coefficients:
  rows: 1
  cols: 5
  data: [0.1, -0.2, 0.0, 0.0, 0.0]
rectification_matrix:
  rows: 3
  cols: 3
  data: [1, 0, 0, 0, 1, 0, 0, 0, 1]
projection_matrix:
  rows: 3
  cols: 4
  data: [{p}]
"""


def test_camera_info_yaml_prefers_p_then_k(tmp_path):
    path = tmp_path / "camera.yaml"
    path.write_text(CAMERA_INFO.format(p="500.0, 0.0, 318.0, 0.0, 0.0, 505.0, 239.0, 0.0, 0.0, 0.0, 1.0, 0.0"))
    info = read_camera_info_yaml(path)
    assert info.frame_hw == (480, 640) and info.source == "projection_matrix"
    np.testing.assert_array_equal(info.intrinsics, intrinsics_matrix(500, 505, 318, 239))
    # an uncalibrated P (all zero) means "not set": the raw K is used
    path.write_text(CAMERA_INFO.format(p=", ".join(["0.0"] * 12)))
    info = read_camera_info_yaml(path)
    assert info.source == "camera_matrix"
    np.testing.assert_array_equal(info.intrinsics, intrinsics_matrix(520, 522, 321, 241))


@pytest.mark.parametrize("text, message", [
    (CAMERA_INFO.format(p="1, 2, 3"), "projection_matrix.data must hold 12 numbers"),
    (CAMERA_INFO.format(p="1, 0, 3, 0, 0, 1, 3, 0, 0, 0, 1, 0").replace("image_width: 640", "image_width: -5"),
     "image_width must be a positive integer"),
    (CAMERA_INFO.format(p="a, 0, 3, 0, 0, 1, 3, 0, 0, 0, 1, 0"), "projection_matrix.data has a value that is not"),
    (CAMERA_INFO.format(p=".nan, 0, 3, 0, 0, 1, 3, 0, 0, 0, 1, 0"), "projection_matrix fx is nan"),
    ("- just\n- a list\n", "expected a camera_info mapping"),
])
def test_bad_camera_info_names_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "camera.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_camera_info_yaml(path)
    assert "camera.yaml" in str(info.value)
