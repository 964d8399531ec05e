"""Procedural street and indoor frames with exact metric depth: the dataset and KITTI-layout drives.

Why: no full KITTI/NYU on this machine, yet training and the CutFlip/cross-distillation ablations need
a learnable dataset with *exact* depth. ``scenes`` builds random scenes from analytic primitives,
``raycast`` renders them (closed-form intersections, so depth is exact); this module draws the camera,
wraps frames as dataset samples and writes drives in the KITTI raw layout.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from torch.utils.data import Dataset

from urcdc_model.data.cameras import CameraSampling, base_camera_size, draw_camera, frame_to_network
from urcdc_model.data.raycast import camera_rotation, render_scene
from urcdc_model.data.scenes import (CROSS_BUILDING_PROBABILITY, CROSS_BUILDING_RANGE_M, FACADE,
                                     INDOOR_MAX_DEPTH_M, INDOOR_TRAIN_CAMERA, STREET_MAX_DEPTH_M,
                                     STREET_SHIFTED_CAMERA_DOWN, STREET_SHIFTED_CAMERA_UP, STREET_TRAIN_CAMERA,
                                     CameraRange, Scene, clear_corridor, make_indoor_scene, make_street_scene)
from urcdc_model.data.transforms import AugmentConfig, augment_pair, make_sample, sample_rng
from urcdc_model.deploy.geometry import DEFAULT_STRIDE, CanonicalCamera

__all__ = ["CameraRange", "FACADE", "HELD_OUT_SEED", "INDOOR_MAX_DEPTH_M", "INDOOR_TRAIN_CAMERA",
           "STREET_MAX_DEPTH_M", "STREET_SHIFTED_CAMERA_DOWN", "STREET_SHIFTED_CAMERA_UP", "STREET_TRAIN_CAMERA",
           "CameraSampling", "Scene", "SyntheticDepthDataset", "SyntheticFrame", "camera_rotation", "kitti_like_intrinsics",
           "nyu_like_intrinsics", "render_frame", "render_scene", "write_kitti_drive"]

# KITTI raw cam 2 (P_rect_02 of 2011-09-26) at 375x1242 and NYU-Depth-v2 Kinect RGB at 480x640.
KITTI_FULL_SIZE = (375, 1242)
KITTI_FOCAL_PX, KITTI_CX_PX, KITTI_CY_PX = 721.5377, 609.5593, 172.854
NYU_FULL_SIZE = (480, 640)
NYU_FX_PX, NYU_FY_PX, NYU_CX_PX, NYU_CY_PX = 518.8579, 519.4696, 325.5824, 253.7362

DEFAULT_STREET_SIZE = (176, 576)      # the embedded default model's training size (KITTI-like aspect)
DEFAULT_INDOOR_SIZE = (240, 320)


def _scaled_intrinsics(height: int, width: int, full_size: tuple[int, int], fx: float, fy: float, cx: float,
                       cy: float) -> np.ndarray:
    """Intrinsics of a full-size camera resized to the width and centre-cropped/padded to the height.

    Square pixels stay square at any aspect ratio; the principal point keeps its offset from the centre.
    """
    scale = width / full_size[1]
    return np.array([[fx * scale, 0, width / 2 + (cx - full_size[1] / 2) * scale],
                     [0, fy * scale, height / 2 + (cy - full_size[0] / 2) * scale],
                     [0, 0, 1]], dtype=np.float64)


def kitti_like_intrinsics(height: int, width: int) -> np.ndarray:
    """KITTI cam-2 intrinsics at height x width (exact at 375x1242; KITTI's horizontal field of view)."""
    return _scaled_intrinsics(height, width, KITTI_FULL_SIZE, KITTI_FOCAL_PX, KITTI_FOCAL_PX, KITTI_CX_PX,
                              KITTI_CY_PX)


def nyu_like_intrinsics(height: int, width: int) -> np.ndarray:
    """NYU-Depth-v2 Kinect intrinsics at height x width (exact at 480x640)."""
    return _scaled_intrinsics(height, width, NYU_FULL_SIZE, NYU_FX_PX, NYU_FY_PX, NYU_CX_PX, NYU_CY_PX)


@dataclass
class SyntheticFrame:
    """One rendered view: RGB, exact pinhole depth (max depth where nothing is hit) and the intrinsics."""

    rgb: np.ndarray              # H x W x 3 uint8
    depth_m: np.ndarray          # H x W float32, metres, clipped to max_depth_m (sky = max_depth_m)
    intrinsics: np.ndarray       # 3 x 3 float64
    kind: str = "street"
    seed: int = 0
    camera_height_m: float = 0.0
    camera_pitch_deg: float = 0.0
    camera_yaw_deg: float = 0.0
    max_depth_m: float = STREET_MAX_DEPTH_M


def _draw(rng: np.random.Generator, value: float | None, value_range: tuple[float, float]) -> float:
    return float(value) if value is not None else float(rng.uniform(*value_range))


def render_frame(seed: int, kind: str = "street", height: int | None = None, width: int | None = None,
                 intrinsics: np.ndarray | None = None, camera_range: CameraRange | None = None,
                 camera_height_m: float | None = None, camera_pitch_deg: float | None = None,
                 camera_yaw_deg: float | None = None, max_depth_m: float | None = None,
                 cross_building_range_m: tuple[float, float] = CROSS_BUILDING_RANGE_M,
                 cross_building_probability: float = CROSS_BUILDING_PROBABILITY) -> SyntheticFrame:
    """Render a random scene of ``kind`` ("street" | "indoor"), fully determined by ``seed``.

    height, width: image size (default 176x576 street, 240x320 indoor).
    intrinsics: 3x3 K (default KITTI-like / NYU-like scaled to the size).
    camera_range: pose ranges (default STREET_TRAIN_CAMERA / INDOOR_TRAIN_CAMERA);
    camera_height_m / camera_pitch_deg / camera_yaw_deg: fixed values overriding the range.
    max_depth_m: depth clip and sky depth (default 80 street, 10 indoor).
    cross_building_range_m, cross_building_probability: street: distance range of the building that
    ends some streets, and the share of streets it ends (default: half).
    """
    if kind not in ("street", "indoor"):
        raise ValueError(f"render_frame: kind must be 'street' or 'indoor', got {kind!r}")
    street = kind == "street"
    default_size = DEFAULT_STREET_SIZE if street else DEFAULT_INDOOR_SIZE
    height = int(height or default_size[0])
    width = int(width or default_size[1])
    if intrinsics is None:
        intrinsics = kitti_like_intrinsics(height, width) if street else nyu_like_intrinsics(height, width)
    intrinsics = np.asarray(intrinsics, dtype=np.float64)
    if intrinsics.shape != (3, 3):
        raise ValueError(f"render_frame: intrinsics must be 3x3, got shape {intrinsics.shape}")
    camera_range = camera_range or (STREET_TRAIN_CAMERA if street else INDOOR_TRAIN_CAMERA)
    max_depth_m = float(max_depth_m or (STREET_MAX_DEPTH_M if street else INDOOR_MAX_DEPTH_M))

    rng = np.random.default_rng([int(seed), 0 if street else 1])
    scene = (make_street_scene(rng, cross_building_range_m=cross_building_range_m,
                               cross_building_probability=cross_building_probability) if street
             else make_indoor_scene(rng))
    cam_h = _draw(rng, camera_height_m, camera_range.height_m)
    pitch = _draw(rng, camera_pitch_deg, camera_range.pitch_deg)
    yaw = _draw(rng, camera_yaw_deg, camera_range.yaw_deg)
    if street:
        position = np.array([rng.uniform(-0.5, 0.5) * scene.road_half_width_m, cam_h, 0.0])
        clear_corridor(scene, position[0], (-1.0, 1.0))
    else:
        x0, x1, _, _, z0, _ = scene.room
        position = np.array([rng.uniform(x0 + 0.6, x1 - 0.6), cam_h, z0 + rng.uniform(0.2, 0.8)])
    rgb, depth_m = render_scene(scene, position, pitch, yaw, intrinsics, height, width, max_depth_m)
    return SyntheticFrame(rgb=rgb, depth_m=depth_m, intrinsics=intrinsics, kind=kind, seed=int(seed),
                          camera_height_m=cam_h, camera_pitch_deg=pitch, camera_yaw_deg=yaw,
                          max_depth_m=max_depth_m)


# --------------------------------------------------------------------------------------------
# torch dataset

HELD_OUT_SEED = 1_000_000       # evaluation scenes use seeds from here on; training seeds stay below


class SyntheticDepthDataset(Dataset):
    """Procedural frames as dataset samples (``image``, ``image_cnn``, ``depth``, ``focal``).

    Sample i is the scene of seed ``seed + i`` (the same scene every epoch); train mode augments it
    afresh each time (rotation, CutFlip, flip, colour jitter, as for KITTI/NYU), test mode returns it as
    rendered. Keep training seeds below HELD_OUT_SEED; ``evaluate --dataset synthetic`` uses seeds above.

    With ``canonical`` the frame goes through the inference plan (``urcdc_model.deploy.geometry``): the
    sample is the network input for that camera (variable size; the trainer crops a window per batch),
    depth labels are in network scale (metres / depth_scale) and ``focal`` is the network image's focal
    in px. With ``cameras`` as well, every sample is seen by a random camera (drawn afresh each epoch
    in train mode, fixed by the seed in test mode). Without ``canonical``: frames at height x width,
    no plan (the KITTI-camera-only behaviour of the first default models).
    """

    def __init__(self, num_samples: int, kind: str = "street", height: int | None = None,
                 width: int | None = None, seed: int = 0, train: bool = True,
                 camera_range: CameraRange | None = None, intrinsics: np.ndarray | None = None,
                 max_depth_m: float | None = None, augment: AugmentConfig | None = None,
                 cache_frames: bool = False, canonical: CanonicalCamera | None = None,
                 cameras: CameraSampling | None = None,
                 cross_building_range_m: tuple[float, float] = CROSS_BUILDING_RANGE_M,
                 cross_building_probability: float = CROSS_BUILDING_PROBABILITY,
                 network_scale_range: tuple[float, float] = (1.0, 1.0),
                 network_stride: tuple[int, int] = DEFAULT_STRIDE):
        """num_samples: dataset length; kind: "street" | "indoor"; height/width: render size
        (default 176x576 street, 240x320 indoor); seed: seed of sample 0; train: augment or not;
        camera_range / intrinsics / max_depth_m: passed to render_frame; augment: override the
        default chain (no crops, rotation 1 deg street / 2.5 deg indoor); cache_frames: keep rendered
        frames in memory (about 0.7 MB each at 176x576) instead of re-rendering every epoch;
        canonical: the network's canonical camera (apply the inference plan); cameras: random-camera
        ranges (needs ``canonical``); cross_building_range_m: street: where the building that ends half
        the streets stands (training may bring it closer than the evaluation scenes' 50-130 m);
        cross_building_probability: the share of streets it ends (evaluation scenes: half);
        network_scale_range: train mode with ``canonical``: each frame is shown at a log-uniform random
        scale × the size inference gives it (labels follow), so the network meets many input sizes per
        scene (the default model's scale jitters with the input size: docs/BENCHMARKS.md, issue 12);
        network_stride: with ``canonical``: the plan pads to these multiples (rows, columns), as inference's."""
        if num_samples <= 0:
            raise ValueError(f"SyntheticDepthDataset: num_samples must be positive, got {num_samples}")
        if cameras is not None and canonical is None:
            raise ValueError("SyntheticDepthDataset: random cameras need the canonical camera they are mapped to")
        self.num_samples = int(num_samples)
        self.kind = kind
        default_size = DEFAULT_STREET_SIZE if kind == "street" else DEFAULT_INDOOR_SIZE
        self.height = int(height or default_size[0])
        self.width = int(width or default_size[1])
        self.seed = int(seed)
        self.train = train
        self.camera_range = camera_range
        self.intrinsics = intrinsics
        self.max_depth_m = max_depth_m
        self.canonical = canonical
        self.cameras = cameras
        self.cross_building_range_m = tuple(cross_building_range_m)
        if not 0.0 <= cross_building_probability <= 1.0:
            raise ValueError("SyntheticDepthDataset: cross_building_probability must be within [0, 1], "
                             f"got {cross_building_probability}")
        self.cross_building_probability = float(cross_building_probability)
        low, high = network_scale_range
        if not 0 < low <= high:
            raise ValueError("SyntheticDepthDataset: network_scale_range must be 0 < low <= high, "
                             f"got {network_scale_range}")
        self.network_scale_range = (float(low), float(high))
        self.network_stride = (int(network_stride[0]), int(network_stride[1]))
        if augment is None:
            augment = AugmentConfig(rotate_max_deg=1.0 if kind == "street" else 2.5, crop_height=None,
                                    crop_width=None,
                                    brightness_range=(0.9, 1.1) if kind == "street" else (0.75, 1.25))
        self.augment = augment
        self._cache: dict[int, SyntheticFrame] | None = {} if cache_frames else None

    def __len__(self) -> int:
        return self.num_samples

    def camera(self, index: int, rng: np.random.Generator | None = None) -> tuple[tuple[int, int], np.ndarray | None]:
        """(render size, K or None for the kind's default camera) of sample ``index``.

        ``rng`` draws the random camera (train mode: a fresh one per epoch); None = fixed by the seed."""
        if self.cameras is None:
            return (self.height, self.width), self.intrinsics
        rng = rng if rng is not None else np.random.default_rng([self.seed + index, 3])
        if rng.random() < self.cameras.base_camera_fraction:
            street = self.kind == "street"
            size = base_camera_size(self.canonical, KITTI_FULL_SIZE if street else NYU_FULL_SIZE, rng, self.cameras)
            return size, (kitti_like_intrinsics if street else nyu_like_intrinsics)(*size)
        return draw_camera(rng, self.canonical, self.cameras)

    def frame(self, index: int, rng: np.random.Generator | None = None) -> SyntheticFrame:
        """The un-augmented rendered frame of sample ``index`` (``rng``: see ``camera``)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"SyntheticDepthDataset: index {index} out of range [0, {self.num_samples})")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        (height, width), intrinsics = self.camera(index, rng)
        frame = render_frame(self.seed + index, kind=self.kind, height=height, width=width,
                             intrinsics=intrinsics, camera_range=self.camera_range,
                             max_depth_m=self.max_depth_m, cross_building_range_m=self.cross_building_range_m,
                             cross_building_probability=self.cross_building_probability)
        if self._cache is not None:
            self._cache[index] = frame
        return frame

    def __getitem__(self, index: int) -> dict:
        rng = sample_rng() if self.train else None
        frame = self.frame(index, rng)
        if self.canonical is None:
            image, depth_m, focal = frame.rgb, frame.depth_m, float(frame.intrinsics[0, 0])
        else:
            scale = 1.0
            if rng is not None and self.network_scale_range != (1.0, 1.0):    # rng: train mode
                scale = float(np.exp(rng.uniform(*np.log(self.network_scale_range))))
            image, depth_m, focal = frame_to_network(frame.rgb, frame.depth_m, frame.intrinsics, self.canonical,
                                                     frame.max_depth_m, scale=scale, stride=self.network_stride)
        image = image.astype(np.float32) / 255.0
        if self.train:
            image, depth_m = augment_pair(image, depth_m, self.augment, rng if rng is not None else sample_rng())
        return make_sample(image, depth_m, focal=focal)


# --------------------------------------------------------------------------------------------
# a procedural drive in the KITTI raw layout

DRIVE_START_TIME = np.datetime64("2011-09-26T13:02:25.000000000")


def _kitti_timestamp(stamp: np.datetime64) -> str:
    """KITTI's timestamps.txt format: '2011-09-26 13:02:25.964389445' (nanoseconds)."""
    return str(stamp.astype("datetime64[ns]")).replace("T", " ")


def _velodyne_from_depth(depth_m: np.ndarray, calib, max_depth_m: float, row_step: int = 4,
                         col_step: int = 2) -> np.ndarray:
    """A LiDAR-like scan (N x 4, Velodyne frame) that projects back onto the rendered depth through ``calib``.

    Back-projects a pixel grid through P_rect_02, undoes R_rect_00 and Tr_velo_to_cam, so the
    projection used for KITTI ground truth (calib.project_velodyne_to_depth) reproduces the depth.
    """
    k = calib.projection[:, :3]
    offset = np.linalg.solve(k, calib.projection[:, 3])        # camera-2 centre relative to the rectified frame
    rows, cols = np.mgrid[0:depth_m.shape[0]:row_step, 0:depth_m.shape[1]:col_step]
    depth = depth_m[rows, cols]
    keep = depth < max_depth_m * 0.999                         # no returns from the sky
    rows, cols, depth = rows[keep], cols[keep], depth[keep].astype(np.float64)
    # z_image = z_rect + offset_z, so solve for the rectified point that lands on (u, v, depth)
    z_rect = depth - offset[2]
    x_rect = (cols - k[0, 2]) * depth / k[0, 0] - offset[0]
    y_rect = (rows - k[1, 2]) * depth / k[1, 1] - offset[1]
    rect = np.stack([x_rect, y_rect, z_rect, np.ones_like(z_rect)])
    velo = np.linalg.inv(calib.rectification @ calib.velo_to_cam) @ rect
    reflectance = np.full(velo.shape[1], 0.3)
    return np.c_[velo[:3].T, reflectance].astype(np.float32)


def write_kitti_drive(root, date: str = "2011_09_26", drive: int = 1, num_frames: int = 20, seed: int = 0,
                      height: int | None = None, width: int | None = None, calib_dir=None,
                      speed_mps: float = 8.0, rate_hz: float = 10.0, camera_height_m: float = 1.65,
                      camera_pitch_deg: float = 0.0, write_velodyne: bool = False):
    """Render a forward drive through one street scene and write it in the KITTI raw layout.

    Writes ``root/<date>/calib_cam_to_cam.txt`` + ``calib_velo_to_cam.txt`` and, under
    ``<date>_drive_<drive:04d>_sync``: ``image_02/data/*.png``, ``image_02/timestamps.txt`` (KITTI
    format), ``proj_depth/groundtruth/image_02/*.png`` (uint16, metres x 256, 0 = no data/sky) and,
    with ``write_velodyne``, ``velodyne_points/data/*.bin`` + timestamps. Size defaults to KITTI's
    375x1242 with KITTI intrinsics; ``calib_dir`` = a real KITTI date folder to copy the calibration
    from (its P_rect_02 and S_rect_02 then set the intrinsics and size). Returns the drive folder.
    """
    import shutil
    from pathlib import Path

    from urcdc_model.data import calib as kitti_calib

    if num_frames <= 0:
        raise ValueError(f"write_kitti_drive: num_frames must be positive, got {num_frames}")
    date_dir = Path(root) / date
    drive_dir = date_dir / f"{date}_drive_{int(drive):04d}_sync"
    if calib_dir is not None:
        date_dir.mkdir(parents=True, exist_ok=True)
        for name in (kitti_calib.CAM_TO_CAM_FILE, kitti_calib.VELO_TO_CAM_FILE):
            source = Path(calib_dir) / name
            if not source.is_file():
                raise FileNotFoundError(f"write_kitti_drive: {source} not found (calib_dir must be a KITTI "
                                        "date folder with calib_cam_to_cam.txt and calib_velo_to_cam.txt)")
            shutil.copyfile(source, date_dir / name)
        calibration = kitti_calib.load_raw_calibration(date_dir, camera=2)
        intrinsics = calibration.intrinsics
        height, width = calibration.image_size or KITTI_FULL_SIZE
    else:
        height, width = int(height or KITTI_FULL_SIZE[0]), int(width or KITTI_FULL_SIZE[1])
        intrinsics = kitti_like_intrinsics(height, width)
        kitti_calib.write_raw_calibration(date_dir, intrinsics, (height, width))
        calibration = kitti_calib.load_raw_calibration(date_dir, camera=2)

    rng = np.random.default_rng([int(seed), 2])
    step_m = speed_mps / rate_hz
    scene = make_street_scene(rng, length_m=num_frames * step_m + 150.0)
    lane_x = rng.uniform(-0.4, 0.4) * scene.road_half_width_m
    clear_corridor(scene, lane_x, (-1.0, num_frames * step_m + 1.0))

    image_dir = drive_dir / "image_02" / "data"
    gt_dir = drive_dir / "proj_depth" / "groundtruth" / "image_02"
    image_dir.mkdir(parents=True, exist_ok=True)
    gt_dir.mkdir(parents=True, exist_ok=True)
    velo_dir = drive_dir / "velodyne_points" / "data"
    if write_velodyne:
        velo_dir.mkdir(parents=True, exist_ok=True)
    stamps = []
    for index in range(num_frames):
        position = np.array([lane_x, camera_height_m, index * step_m])
        pitch = camera_pitch_deg + 0.3 * np.sin(index * 0.7)             # a little suspension pitch
        rgb, depth_m = render_scene(scene, position, pitch, 0.0, intrinsics, height, width, STREET_MAX_DEPTH_M)
        name = f"{index:010d}"
        if not cv2.imwrite(str(image_dir / f"{name}.png"), rgb[..., ::-1]):
            raise OSError(f"write_kitti_drive: could not write {image_dir / name}.png")
        gt = np.where(depth_m < STREET_MAX_DEPTH_M, np.round(depth_m * 256.0), 0).astype(np.uint16)
        cv2.imwrite(str(gt_dir / f"{name}.png"), gt)
        if write_velodyne:
            _velodyne_from_depth(depth_m, calibration, STREET_MAX_DEPTH_M).tofile(velo_dir / f"{name}.bin")
        stamps.append(_kitti_timestamp(DRIVE_START_TIME + np.timedelta64(int(round(index * 1e9 / rate_hz)), "ns")))
    (drive_dir / "image_02" / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    if write_velodyne:
        (drive_dir / "velodyne_points" / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    return drive_dir
