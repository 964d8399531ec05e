"""Procedural scenes: exact analytic depth, determinism, plausibility, the dataset and the KITTI-layout drive."""
from __future__ import annotations

import re

import cv2
import numpy as np
import pytest
import torch

from urcdc_model.data import calib as kitti_calib
from urcdc_model.data import synthetic
from urcdc_model.data.synthetic import (FACADE, STREET_MAX_DEPTH_M, Scene, SyntheticDepthDataset, camera_rotation,
                                        kitti_like_intrinsics, render_frame, render_scene, write_kitti_drive)

HEIGHT, WIDTH = 96, 320


def pixel_rays_world(intrinsics: np.ndarray, pitch_deg: float, yaw_deg: float, height: int, width: int) -> np.ndarray:
    """H x W x 3 world directions of pixel rays with camera-frame z = 1 (independent of the renderer)."""
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    x_cam = (u - intrinsics[0, 2]) / intrinsics[0, 0]
    y_down = (v - intrinsics[1, 2]) / intrinsics[1, 1]
    # camera x right / y down / z forward -> world x right / y up / z forward, pitched down then yawed
    pitch, yaw = np.deg2rad(pitch_deg), np.deg2rad(yaw_deg)
    up = -y_down * np.cos(pitch) - np.sin(pitch)
    forward = -y_down * np.sin(pitch) + np.cos(pitch)
    return np.stack([x_cam * np.cos(yaw) + forward * np.sin(yaw), up, -x_cam * np.sin(yaw) + forward * np.cos(yaw)],
                    axis=-1)


@pytest.mark.parametrize("pitch_deg, yaw_deg", [(0.0, 0.0), (3.0, -4.0), (-2.0, 5.0)])
def test_ground_plane_depth_is_analytic(pitch_deg, yaw_deg):
    camera_height_m = 1.65
    intrinsics = kitti_like_intrinsics(HEIGHT, WIDTH)
    _, depth = render_scene(Scene(kind="street"), np.array([0.0, camera_height_m, 0.0]), pitch_deg, yaw_deg,
                            intrinsics, HEIGHT, WIDTH)
    rays = pixel_rays_world(intrinsics, pitch_deg, yaw_deg, HEIGHT, WIDTH)
    down = rays[..., 1] < 0
    # the ray hits y = 0 at t = h / -d_y, and t is the pinhole depth because camera-z of the ray is 1
    expected = np.where(down, camera_height_m / np.where(down, -rays[..., 1], 1.0), np.inf)
    expected = np.minimum(expected, STREET_MAX_DEPTH_M)
    np.testing.assert_allclose(depth, expected, rtol=2e-5)
    assert (depth == STREET_MAX_DEPTH_M).any() and (depth < 10).any()


def test_fronto_parallel_wall_renders_at_its_distance():
    wall_distance_m = 23.5
    scene = Scene(kind="street")
    scene.boxes.append((-100.0, 100.0, 0.0, 50.0, wall_distance_m, wall_distance_m + 1.0, FACADE,
                        np.ones(3, np.float32)))
    _, depth = render_scene(scene, np.array([0.0, 1.65, 0.0]), 0.0, 0.0, kitti_like_intrinsics(HEIGHT, WIDTH),
                            HEIGHT, WIDTH)
    horizon_row = int(kitti_like_intrinsics(HEIGHT, WIDTH)[1, 2])
    np.testing.assert_allclose(depth[:horizon_row], wall_distance_m, rtol=1e-6)
    # below the horizon the ground is nearer than the wall
    assert depth[-1].max() < wall_distance_m


def test_frames_are_deterministic_and_seed_dependent():
    a, b = render_frame(7, height=HEIGHT, width=WIDTH), render_frame(7, height=HEIGHT, width=WIDTH)
    c = render_frame(8, height=HEIGHT, width=WIDTH)
    np.testing.assert_array_equal(a.rgb, b.rgb)
    np.testing.assert_array_equal(a.depth_m, b.depth_m)
    assert not np.array_equal(a.depth_m, c.depth_m)


def test_a_nearer_cross_building_range_moves_only_that_building():
    """Training may end streets at a building 12 m ahead; the evaluation scenes' seeds must not change."""
    from urcdc_model.data.scenes import CROSS_BUILDING_RANGE_M, make_street_scene

    def cross_building(scene):
        return [b for b in scene.boxes if b[6] == FACADE and b[1] - b[0] > 100]

    seeds = range(40)
    default = [make_street_scene(np.random.default_rng([s, 0])) for s in seeds]
    explicit = [make_street_scene(np.random.default_rng([s, 0]), cross_building_range_m=CROSS_BUILDING_RANGE_M)
                for s in seeds]
    near = [make_street_scene(np.random.default_rng([s, 0]), cross_building_range_m=(12.0, 13.0)) for s in seeds]
    assert all(len(a.boxes) == len(b.boxes) and all(x[:6] == y[:6] for x, y in zip(a.boxes, b.boxes))
               for a, b in zip(default, explicit))
    ended = [(cross_building(a), cross_building(b)) for a, b in zip(default, near) if cross_building(a)]
    assert ended and all(50.0 <= a[0][4] <= 130.0 and 12.0 <= b[0][4] <= 13.0 for a, b in ended)
    # everything else of a seed stays where it was
    for a, b in zip(default, near):
        assert [x[:6] for x in a.boxes if x not in cross_building(a)] == \
            [x[:6] for x in b.boxes if x not in cross_building(b)]


def test_the_closed_street_share_changes_only_whether_a_street_ends():
    from urcdc_model.data.scenes import make_street_scene

    def cross_building(scene):
        return [b[:6] for b in scene.boxes if b[6] == FACADE and b[1] - b[0] > 100]

    seeds = range(40)
    half = [make_street_scene(np.random.default_rng([s, 0])) for s in seeds]
    most = [make_street_scene(np.random.default_rng([s, 0]), cross_building_probability=0.9) for s in seeds]
    assert sum(map(bool, map(cross_building, most))) > sum(map(bool, map(cross_building, half)))
    for a, b in zip(half, most):
        assert [x[:6] for x in a.boxes if x[:6] not in cross_building(a)] == \
            [x[:6] for x in b.boxes if x[:6] not in cross_building(b)]
        assert not cross_building(a) or cross_building(a) == cross_building(b)   # an ended street stays ended


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_street_frames_are_plausible(seed):
    frame = render_frame(seed, kind="street", height=HEIGHT, width=WIDTH)
    assert frame.rgb.shape == (HEIGHT, WIDTH, 3) and frame.rgb.dtype == np.uint8
    assert frame.depth_m.dtype == np.float32
    depth = frame.depth_m
    assert depth.min() > 0.5 and depth.max() <= STREET_MAX_DEPTH_M
    # the bottom rows see the road a few metres ahead; far/sky pixels sit in the upper half
    assert np.median(depth[-3:]) < 8.0
    far = depth >= STREET_MAX_DEPTH_M
    assert far[: HEIGHT // 2].sum() >= far[HEIGHT // 2:].sum()
    assert frame.rgb.std() > 20                         # textured, not flat colour
    assert 1.45 <= frame.camera_height_m <= 1.85 and abs(frame.camera_pitch_deg) <= 1.5


def test_indoor_frames_are_closed_rooms():
    frame = render_frame(4, kind="indoor", height=60, width=80)
    assert frame.max_depth_m == 10.0
    assert frame.depth_m.max() < 10.0 and frame.depth_m.min() > 0.05    # walls everywhere, no sky
    np.testing.assert_allclose(frame.intrinsics[0, 0], 518.8579 * 80 / 640)


def test_pitch_down_raises_the_horizon_in_the_image():
    level = render_frame(5, height=HEIGHT, width=WIDTH, camera_pitch_deg=0.0, camera_yaw_deg=0.0)
    pitched = render_frame(5, height=HEIGHT, width=WIDTH, camera_pitch_deg=6.0, camera_yaw_deg=0.0)
    assert pitched.camera_pitch_deg == 6.0
    # looking down: a given pixel row sees nearer ground, so the mean depth of the bottom half drops
    assert pitched.depth_m[HEIGHT // 2:].mean() < level.depth_m[HEIGHT // 2:].mean()
    shifted = synthetic.STREET_SHIFTED_CAMERA_DOWN
    assert shifted.pitch_deg[0] > synthetic.STREET_TRAIN_CAMERA.pitch_deg[1]
    assert shifted.height_m[0] > synthetic.STREET_TRAIN_CAMERA.height_m[1]


def test_camera_rotation_is_a_rotation_looking_down_for_positive_pitch():
    rotation = camera_rotation(10.0, 20.0)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-12)
    forward = rotation @ np.array([0.0, 0.0, 1.0])
    assert forward[1] < 0 and forward[0] > 0            # down and to the right


def test_dataset_samples_follow_the_contract():
    dataset = SyntheticDepthDataset(3, height=HEIGHT, width=WIDTH, seed=11, train=False)
    sample = dataset[1]
    assert set(sample) == {"image", "image_cnn", "depth", "focal"}
    assert sample["image"].shape == (3, HEIGHT, WIDTH) and sample["depth"].shape == (1, HEIGHT, WIDTH)
    frame = render_frame(12, height=HEIGHT, width=WIDTH)
    np.testing.assert_array_equal(sample["depth"][0].numpy(), frame.depth_m)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    rgb = sample["image"].numpy().transpose(1, 2, 0) * std + mean
    np.testing.assert_allclose(rgb * 255, frame.rgb, atol=1e-3)
    assert sample["focal"] == pytest.approx(721.5377 * WIDTH / 1242)
    torch.manual_seed(0)
    train = SyntheticDepthDataset(3, height=HEIGHT, width=WIDTH, seed=11, train=True)[1]
    assert train["image"].shape == (3, HEIGHT, WIDTH)
    assert torch.equal(train["image"], train["image_cnn"])    # as the official loader: same augmented view


def test_default_dataset_size_is_the_training_size():
    dataset = SyntheticDepthDataset(1, train=False, cache_frames=True)
    assert (dataset.height, dataset.width) == (176, 576)
    assert dataset.frame(0) is dataset.frame(0)
    with pytest.raises(IndexError):
        dataset.frame(1)


def test_bad_arguments_have_clear_errors():
    with pytest.raises(ValueError, match="kind"):
        render_frame(0, kind="forest")
    with pytest.raises(ValueError, match="3x3"):
        render_frame(0, intrinsics=np.eye(4))


def test_written_drive_has_the_kitti_raw_layout(tmp_path):
    drive = write_kitti_drive(tmp_path, date="2011_09_26", drive=3, num_frames=3, seed=1, height=80, width=264,
                              write_velodyne=True)
    assert drive == tmp_path / "2011_09_26" / "2011_09_26_drive_0003_sync"
    images = sorted((drive / "image_02" / "data").glob("*.png"))
    assert [p.name for p in images] == ["0000000000.png", "0000000001.png", "0000000002.png"]
    stamps = (drive / "image_02" / "timestamps.txt").read_text().splitlines()
    assert len(stamps) == 3 and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}", s) for s in stamps)
    assert stamps[1].endswith("25.100000000")           # 10 Hz
    calib = kitti_calib.load_raw_calibration(drive.parent)
    assert calib.image_size == (80, 264)
    np.testing.assert_allclose(calib.intrinsics, kitti_like_intrinsics(80, 264), rtol=1e-6)
    gt_png = cv2.imread(str(drive / "proj_depth" / "groundtruth" / "image_02" / "0000000001.png"), cv2.IMREAD_UNCHANGED)
    assert gt_png.dtype == np.uint16 and gt_png.shape == (80, 264)
    gt_m = gt_png / 256.0
    assert (gt_m == 0).any() and 0 < gt_m[gt_m > 0].min() < gt_m.max() < 80   # sky = no data
    # the LiDAR scan projects back onto the rendered depth through the written calibration
    scan = kitti_calib.read_velodyne_points(drive / "velodyne_points" / "data" / "0000000001.bin")
    projected = kitti_calib.project_velodyne_to_depth(scan, calib, (80, 264))
    both = (projected > 0) & (gt_m > 0)
    assert both.sum() > 500
    np.testing.assert_allclose(projected[both], gt_m[both], atol=1 / 256 + 1e-4)


def test_drive_frames_move_forward_through_one_scene(tmp_path):
    drive = write_kitti_drive(tmp_path, num_frames=2, seed=4, height=60, width=200, speed_mps=20.0)
    gts = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) / 256.0
           for p in sorted((drive / "proj_depth" / "groundtruth" / "image_02").glob("*.png"))]
    # 2 m further along the street: surfaces facing the camera come 2 m nearer (ground and facades
    # parallel to the motion keep their per-pixel depth; occlusion edges change arbitrarily)
    change = gts[0] - gts[1]
    changed = (gts[0] > 0) & (gts[1] > 0) & (np.abs(change) > 0.5)
    counts, edges = np.histogram(change[changed], bins=np.arange(-10.0, 10.01, 0.25))
    assert 1.5 <= edges[counts.argmax()] <= 2.0


def test_drive_can_reuse_real_calibration(tmp_path, shared_data):
    drive = write_kitti_drive(tmp_path, num_frames=1, seed=2, calib_dir=shared_data / "kitti_raw_calib_2011_09_26")
    calib = kitti_calib.load_raw_calibration(drive.parent)
    assert calib.velo_to_cam is not None and calib.image_size == (375, 1242)
    image = cv2.imread(str(drive / "image_02" / "data" / "0000000000.png"))
    assert image.shape == (375, 1242, 3)
    with pytest.raises(FileNotFoundError, match="calib_dir"):
        write_kitti_drive(tmp_path / "other", num_frames=1, calib_dir=tmp_path)


def test_cars_on_the_camera_path_are_removed_whole():
    from urcdc_model.data.scenes import GLASS, VEHICLE, _add_car, clear_corridor

    scene = Scene(kind="street")
    rng = np.random.default_rng(0)
    _add_car(scene, rng, x_center=0.3, z_center=1.0)       # around the camera
    _add_car(scene, rng, x_center=0.3, z_center=30.0)      # ahead in the lane
    _add_car(scene, rng, x_center=-4.0, z_center=0.0)      # parked beside it
    assert len(scene.boxes) == 12
    clear_corridor(scene, x_m=0.0, z_range_m=(-1.0, 1.0))
    assert len(scene.boxes) == 8 and all(b[6] in (VEHICLE, GLASS) for b in scene.boxes)
    # what is left: the car ahead and the parked one, all four boxes each
    assert sum(b[1] < -2.5 for b in scene.boxes) == 4 and sum(b[4] > 20 for b in scene.boxes) == 4
