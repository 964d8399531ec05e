"""Procedural street and indoor scenes with exact metric depth, rendered by a vectorised numpy ray caster.

Why: no full KITTI/NYU on this machine, yet training and the CutFlip/cross-distillation ablations need
a learnable dataset with *exact* depth. Scenes are built from analytic primitives (ground plane,
axis-aligned boxes, vertical cylinders, spheres, the inside of a room box) whose ray intersections are
solved in closed form for all pixels at once; each primitive only touches the pixels inside its
projected screen rectangle. Textures (asphalt, lane marks, paving, facades with windows, foliage) are
functions of the 3-D hit point, shading is Lambertian with a per-scene sun plus aerial perspective.

World frame: X right, Y up, Z forward (the street runs along +Z). The camera looks along +Z rotated by
yaw (about Y) and pitch (positive = looking down). Pixel rays are built with camera-z = 1, so the ray
parameter t of a hit *is* the pinhole depth (z in the camera frame), which is what KITTI/NYU GT stores.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from torch.utils.data import Dataset

from urcdc_model.data.transforms import AugmentConfig, augment_pair, make_sample, sample_rng

STREET_MAX_DEPTH_M = 80.0
INDOOR_MAX_DEPTH_M = 10.0

# KITTI raw cam 2 (P_rect_02 of 2011-09-26) at 375x1242 and NYU-Depth-v2 Kinect RGB at 480x640.
KITTI_FULL_SIZE = (375, 1242)
KITTI_FOCAL_PX, KITTI_CX_PX, KITTI_CY_PX = 721.5377, 609.5593, 172.854
NYU_FULL_SIZE = (480, 640)
NYU_FX_PX, NYU_FY_PX, NYU_CX_PX, NYU_CY_PX = 518.8579, 519.4696, 325.5824, 253.7362

DEFAULT_STREET_SIZE = (176, 576)      # the embedded default model's training size (KITTI-like aspect)
DEFAULT_INDOOR_SIZE = (240, 320)

# Materials (per object); ground-plane texture is chosen from the hit point (road / sidewalk / verge).
SKY, GROUND, FACADE, VEHICLE, GLASS, POLE, FOLIAGE, WALL, FLOOR, CEILING, FURNITURE = range(11)

# Face codes: axis * 2 + (ray direction along that axis > 0) -> outward normal of the face hit.
_FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1],
                          [0, 0, 0], [0, 0, 0]], dtype=np.float32)
FACE_CURVED = 6                      # cylinder or sphere: normal recomputed from the object centre
_NEAR_M = 0.05
# the 12 edges of a box whose corners are ordered x-major, then y, then z (index = 4x + 2y + z)
_BOX_EDGES = np.array([[i, i | bit] for bit in (1, 2, 4) for i in range(8) if not i & bit])
_QUAD_EDGES = np.array([[0, 1], [1, 2], [2, 3], [3, 0]])
# picks the 8 corners (same order) out of (xmin, xmax, ymin, ymax, zmin, zmax)
_BOX_CORNER_SELECT = np.array([[x, 2 + y, 4 + z] for x in (0, 1) for y in (0, 1) for z in (0, 1)])


@dataclass(frozen=True)
class CameraRange:
    """Uniform ranges the camera pose is drawn from (metres above the ground, degrees)."""

    height_m: tuple[float, float]
    pitch_deg: tuple[float, float]     # positive = looking down
    yaw_deg: tuple[float, float] = (0.0, 0.0)


# Training range of the default street model (KITTI's camera sits 1.65 m up, nearly level).
STREET_TRAIN_CAMERA = CameraRange(height_m=(1.45, 1.85), pitch_deg=(-1.5, 1.5), yaw_deg=(-4.0, 4.0))
# Shifted horizons for the CutFlip ablation: outside the training range on both axes.
STREET_SHIFTED_CAMERA_DOWN = CameraRange(height_m=(2.2, 2.8), pitch_deg=(4.0, 7.0), yaw_deg=(-4.0, 4.0))
STREET_SHIFTED_CAMERA_UP = CameraRange(height_m=(1.0, 1.3), pitch_deg=(-6.0, -3.5), yaw_deg=(-4.0, 4.0))
INDOOR_TRAIN_CAMERA = CameraRange(height_m=(1.0, 1.6), pitch_deg=(-5.0, 20.0), yaw_deg=(-25.0, 25.0))


def kitti_like_intrinsics(height: int, width: int) -> np.ndarray:
    """KITTI cam-2 intrinsics scaled to height x width (focal scaled with the width, keeps KITTI's FOV)."""
    scale = width / KITTI_FULL_SIZE[1]
    return np.array([[KITTI_FOCAL_PX * scale, 0, KITTI_CX_PX * scale],
                     [0, KITTI_FOCAL_PX * scale, KITTI_CY_PX * height / KITTI_FULL_SIZE[0]],
                     [0, 0, 1]], dtype=np.float64)


def nyu_like_intrinsics(height: int, width: int) -> np.ndarray:
    """NYU-Depth-v2 Kinect intrinsics scaled to height x width."""
    sx, sy = width / NYU_FULL_SIZE[1], height / NYU_FULL_SIZE[0]
    return np.array([[NYU_FX_PX * sx, 0, NYU_CX_PX * sx], [0, NYU_FY_PX * sy, NYU_CY_PX * sy], [0, 0, 1]],
                    dtype=np.float64)


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


@dataclass
class Scene:
    """Analytic primitives plus per-object material/colour; built by make_street_scene / make_indoor_scene."""

    kind: str
    boxes: list = field(default_factory=list)        # (xmin, xmax, ymin, ymax, zmin, zmax, material, rgb)
    cylinders: list = field(default_factory=list)    # (cx, cz, radius, ymin, ymax, material, rgb)
    spheres: list = field(default_factory=list)      # (cx, cy, cz, radius, material, rgb)
    room: tuple | None = None                        # inside of a box (xmin, xmax, 0, height, zmin, zmax)
    has_ground: bool = True
    road_half_width_m: float = 4.0
    sidewalk_outer_m: tuple[float, float] = (7.0, 7.0)   # |x| where the left / right sidewalk ends
    sun_direction: np.ndarray = field(default_factory=lambda: np.array([0.4, 0.8, -0.3], np.float32))
    sky_zenith: np.ndarray = field(default_factory=lambda: np.array([0.35, 0.55, 0.85], np.float32))
    sky_horizon: np.ndarray = field(default_factory=lambda: np.array([0.8, 0.85, 0.9], np.float32))
    fog_distance_m: float = 250.0
    asphalt_rgb: np.ndarray = field(default_factory=lambda: np.array([0.30, 0.30, 0.31], np.float32))
    sidewalk_rgb: np.ndarray = field(default_factory=lambda: np.array([0.62, 0.60, 0.57], np.float32))
    verge_rgb: np.ndarray = field(default_factory=lambda: np.array([0.32, 0.42, 0.22], np.float32))
    floor_rgb: np.ndarray = field(default_factory=lambda: np.array([0.55, 0.40, 0.25], np.float32))
    wall_rgb: np.ndarray = field(default_factory=lambda: np.array([0.8, 0.78, 0.72], np.float32))
    window_spacing_m: float = 2.8


# --------------------------------------------------------------------------------------------
# scene generation


def _color(rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    return rng.uniform(low, high, size=3).astype(np.float32)


def _add_car(scene: Scene, rng: np.random.Generator, x_center: float, z_center: float) -> None:
    width, length = rng.uniform(1.65, 1.95), rng.uniform(3.8, 4.9)
    body_top = rng.uniform(0.95, 1.15)
    paint = _color(rng, 0.08, 0.85)
    half_w, half_l = width / 2, length / 2
    scene.boxes.append((x_center - half_w, x_center + half_w, 0.28, body_top,
                        z_center - half_l, z_center + half_l, VEHICLE, paint))
    cabin_len = length * rng.uniform(0.45, 0.6)
    scene.boxes.append((x_center - half_w + 0.15, x_center + half_w - 0.15, body_top,
                        body_top + rng.uniform(0.38, 0.52), z_center - cabin_len / 2 - 0.2,
                        z_center + cabin_len / 2 - 0.2, GLASS, np.array([0.22, 0.26, 0.31], np.float32)))
    tyre = np.array([0.06, 0.06, 0.06], np.float32)
    for axle_z in (z_center - half_l + 0.75, z_center + half_l - 0.8):   # wheels as dark axle blocks
        scene.boxes.append((x_center - half_w - 0.02, x_center + half_w + 0.02, 0.0, 0.62,
                            axle_z - 0.31, axle_z + 0.31, VEHICLE, tyre))


def _add_tree(scene: Scene, rng: np.random.Generator, x: float, z: float) -> None:
    trunk_height = rng.uniform(2.0, 3.5)
    scene.cylinders.append((x, z, rng.uniform(0.12, 0.22), 0.0, trunk_height + 0.5, POLE,
                            np.array([0.30, 0.22, 0.15], np.float32)))
    crown_radius = rng.uniform(1.2, 2.6)
    green = np.array([rng.uniform(0.15, 0.3), rng.uniform(0.35, 0.55), rng.uniform(0.1, 0.2)], np.float32)
    scene.spheres.append((x, trunk_height + crown_radius * 0.8, z, crown_radius, FOLIAGE, green))


def _add_building_row(scene: Scene, rng: np.random.Generator, side: int, inner_x: float,
                      z_start: float, z_end: float) -> None:
    """Buildings along one side (side = -1 left, +1 right) with varying setback, length and height."""
    z = z_start
    while z < z_end:
        length = rng.uniform(6.0, 28.0)
        if rng.random() < 0.18:            # a gap between buildings (side street, parking)
            z += rng.uniform(4.0, 12.0)
            continue
        setback = rng.uniform(0.0, 5.0) if rng.random() < 0.6 else 0.0
        depth = rng.uniform(8.0, 15.0)
        height = rng.uniform(4.0, 24.0)
        near_x = inner_x + setback
        x_lo, x_hi = (near_x, near_x + depth) if side > 0 else (-near_x - depth, -near_x)
        tint = rng.uniform(0.25, 0.85)
        facade = (np.array([tint, tint * rng.uniform(0.8, 1.0), tint * rng.uniform(0.65, 1.0)], np.float32)
                  if rng.random() < 0.7 else _color(rng, 0.2, 0.8))
        scene.boxes.append((x_lo, x_hi, 0.0, height, z, z + length, FACADE, facade))
        z += length + (rng.uniform(0.0, 2.0) if rng.random() < 0.3 else 0.0)


def make_street_scene(rng: np.random.Generator, length_m: float = 140.0, start_z_m: float = -15.0) -> Scene:
    """A random street: road, sidewalks, building rows, parked/leading cars, poles and trees, sky."""
    road_half = rng.uniform(3.0, 6.0)
    sidewalk = (rng.uniform(1.5, 4.0), rng.uniform(1.5, 4.0))
    elevation = np.deg2rad(rng.uniform(25, 65))
    azimuth = rng.uniform(0, 2 * np.pi)
    sun = np.array([np.cos(elevation) * np.cos(azimuth), np.sin(elevation), np.cos(elevation) * np.sin(azimuth)],
                   np.float32)
    overcast = rng.random() < 0.3
    scene = Scene(
        kind="street", road_half_width_m=road_half,
        sidewalk_outer_m=(road_half + sidewalk[0], road_half + sidewalk[1]), sun_direction=sun,
        sky_zenith=(np.array([0.7, 0.72, 0.75], np.float32) if overcast else
                    np.array([rng.uniform(0.25, 0.45), rng.uniform(0.45, 0.6), rng.uniform(0.75, 0.95)], np.float32)),
        sky_horizon=np.array([0.85, 0.86, 0.88], np.float32) * rng.uniform(0.9, 1.05),
        fog_distance_m=rng.uniform(150.0, 450.0),
        asphalt_rgb=np.full(3, rng.uniform(0.22, 0.38), np.float32),
        sidewalk_rgb=np.float32(rng.uniform(0.5, 0.68)) * _color(rng, 0.92, 1.05),
        window_spacing_m=rng.uniform(2.2, 3.6),
    )
    end_z = start_z_m + length_m
    for side, width in ((-1, sidewalk[0]), (1, sidewalk[1])):
        if rng.random() < 0.85:
            _add_building_row(scene, rng, side, road_half + width, start_z_m, end_z)
        for z in np.arange(start_z_m + rng.uniform(0, 20), end_z, rng.uniform(14, 30)):
            x = side * (road_half + rng.uniform(0.3, 0.7))
            if rng.random() < 0.5:
                scene.cylinders.append((x, z, rng.uniform(0.07, 0.14), 0.0, rng.uniform(4.0, 8.0), POLE,
                                        _color(rng, 0.35, 0.6)))
            else:
                _add_tree(scene, rng, x + side * 0.3, z)
        z = start_z_m + rng.uniform(0, 10)
        while z < end_z:                    # parked cars along the kerb
            if rng.random() < 0.55:
                _add_car(scene, rng, side * (road_half - rng.uniform(1.0, 1.3)), z)
            z += rng.uniform(5.5, 14.0)
    for _ in range(rng.integers(0, 3)):     # traffic ahead in the lanes
        _add_car(scene, rng, rng.uniform(-road_half + 1.6, road_half - 1.6), rng.uniform(8.0, 60.0))
    if rng.random() < 0.5:                  # the street ends at a cross building
        z_far = rng.uniform(50.0, 130.0)
        scene.boxes.append((-60.0, 60.0, 0.0, rng.uniform(8.0, 30.0), z_far, z_far + 15.0, FACADE,
                            _color(rng, 0.3, 0.8)))
    return scene


def make_indoor_scene(rng: np.random.Generator) -> Scene:
    """A room (walls, floor, ceiling) with cabinets, tables, beds and lamps against the walls."""
    width, depth, height = rng.uniform(3.0, 7.0), rng.uniform(4.0, 9.0), rng.uniform(2.4, 3.2)
    x_lo, x_hi, z_lo, z_hi = -width / 2, width / 2, -1.0, depth - 1.0
    light = np.array([rng.uniform(-0.4, 0.4), 1.0, rng.uniform(-0.6, 0.2)], np.float32)
    scene = Scene(kind="indoor", room=(x_lo, x_hi, 0.0, height, z_lo, z_hi), has_ground=False,
                  sun_direction=light / np.linalg.norm(light), fog_distance_m=1e6,
                  floor_rgb=(_color(rng, 0.35, 0.65) * np.array([1.0, 0.8, 0.6], np.float32)))
    scene.wall_rgb = _color(rng, 0.6, 0.92)
    for _ in range(rng.integers(2, 7)):
        w, d, h = rng.uniform(0.4, 2.0), rng.uniform(0.4, 1.2), rng.uniform(0.4, 2.0)
        if rng.random() < 0.5:               # against a side wall
            x0 = x_lo if rng.random() < 0.5 else x_hi - d
            z0 = rng.uniform(z_lo + 1.5, z_hi - w)
            box = (x0, x0 + d, 0.0, h, z0, z0 + w)
        else:                                # against the far wall or free-standing
            x0 = rng.uniform(x_lo, x_hi - w)
            z0 = z_hi - d if rng.random() < 0.6 else rng.uniform(z_lo + 2.0, z_hi - d)
            box = (x0, x0 + w, 0.0, h, z0, z0 + d)
        scene.boxes.append(box + (FURNITURE, _color(rng, 0.15, 0.8)))
    for _ in range(rng.integers(0, 3)):
        x, z = rng.uniform(x_lo + 0.3, x_hi - 0.3), rng.uniform(z_lo + 2.0, z_hi - 0.3)
        scene.cylinders.append((x, z, rng.uniform(0.03, 0.25), 0.0, rng.uniform(0.5, 1.8), FURNITURE,
                                _color(rng, 0.2, 0.9)))
    # pictures, a door and a window: thin boxes on the walls give the walls texture and scale
    for _ in range(rng.integers(1, 5)):
        w, h = rng.uniform(0.3, 1.2), rng.uniform(0.3, 0.9)
        y0 = rng.uniform(1.1, height - h - 0.2)
        wall = rng.integers(0, 3)
        if wall == 2:
            x0 = rng.uniform(x_lo + 0.1, x_hi - w - 0.1)
            box = (x0, x0 + w, y0, y0 + h, z_hi - 0.03, z_hi)
        else:
            x0 = x_lo if wall == 0 else x_hi - 0.03
            z0 = rng.uniform(z_lo + 1.0, z_hi - w - 0.1)
            box = (x0, x0 + 0.03, y0, y0 + h, z0, z0 + w)
        scene.boxes.append(box + (FURNITURE, _color(rng, 0.1, 0.9)))
    if rng.random() < 0.7:
        x0 = x_lo if rng.random() < 0.5 else x_hi - 0.05
        z0 = rng.uniform(z_lo + 1.0, z_hi - 1.0)
        scene.boxes.append((x0, x0 + 0.05, 0.0, 2.05, z0, z0 + 0.9, FURNITURE,
                            np.array([0.45, 0.3, 0.18], np.float32) * rng.uniform(0.6, 1.2)))
    if rng.random() < 0.6:
        x0 = rng.uniform(x_lo + 0.2, x_hi - 1.6)
        scene.boxes.append((x0, x0 + rng.uniform(0.8, 1.4), 0.9, 2.1, z_hi - 0.02, z_hi, GLASS,
                            np.array([0.75, 0.82, 0.9], np.float32)))
    return scene


# --------------------------------------------------------------------------------------------
# ray casting


def camera_rotation(pitch_deg: float, yaw_deg: float) -> np.ndarray:
    """Camera (x right, y up, z forward) to world; positive pitch looks down, positive yaw turns right."""
    pitch, yaw = np.deg2rad(pitch_deg), np.deg2rad(yaw_deg)
    rot_pitch = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    rot_yaw = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    return rot_yaw @ rot_pitch


class _Raycaster:
    """Z-buffered closest hit over all pixels; each primitive updates only its screen rectangle."""

    def __init__(self, origin: np.ndarray, rotation: np.ndarray, intrinsics: np.ndarray, height: int, width: int):
        self.height, self.width = height, width
        self.origin = origin.astype(np.float32)
        self.rotation = rotation
        self.intrinsics = intrinsics
        fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
        x_cam = ((np.arange(width) - cx) / fx).astype(np.float32)[None, :]
        y_cam = (-(np.arange(height) - cy) / fy).astype(np.float32)[:, None]      # image v down -> y up
        r = rotation.astype(np.float32)
        # camera-z = 1 for every ray, so the hit parameter t equals the pinhole depth
        self.dx = r[0, 0] * x_cam + r[0, 1] * y_cam + r[0, 2]
        self.dy = r[1, 0] * x_cam + r[1, 1] * y_cam + r[1, 2]
        self.dz = r[2, 0] * x_cam + r[2, 1] * y_cam + r[2, 2]
        with np.errstate(divide="ignore"):
            # 1/0 = inf is fine: faces are only tested from outside their slab, so t becomes +-inf, no hit
            self.inv = [np.float32(1.0) / a for a in (self.dx, self.dy, self.dz)]
        self.t = np.full((height, width), np.inf, np.float32)
        self.obj = np.full((height, width), -1, np.int32)
        self.face = np.zeros((height, width), np.int8)

    def screen_rects(self, corners: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel rectangles [r0, r1, c0, c1] (M x 4) and smallest camera depths (M) of M convex polytopes.

        corners: M x K x 3 world points, edges: index pairs into K. Polytopes reaching behind the camera
        are clipped against the near plane (corners in front plus edge crossings) so their rectangle
        stays tight. Invisible ones get an empty rectangle. Vectorised: per-primitive Python calls were
        most of the frame time.
        """
        cam = (corners - self.origin.astype(np.float64)) @ self.rotation      # world -> camera (R^T p per row)
        front = cam[..., 2] >= _NEAR_M
        all_front = front.all(axis=1)
        bounds = np.full((len(cam), 4), np.nan)                                # v_min, v_max, u_min, u_max
        min_depth = np.full(len(cam), np.inf)
        k = self.intrinsics

        def project(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return (k[0, 0] * points[..., 0] / points[..., 2] + k[0, 2],
                    -k[1, 1] * points[..., 1] / points[..., 2] + k[1, 2])

        if all_front.any():
            u, v = project(cam[all_front])
            bounds[all_front] = np.stack([v.min(1), v.max(1), u.min(1), u.max(1)], axis=1)
            min_depth[all_front] = cam[all_front][..., 2].min(axis=1)
        for index in np.flatnonzero(front.any(axis=1) & ~all_front):
            points = cam[index]
            a, b = points[edges[:, 0]], points[edges[:, 1]]
            crossing = (a[:, 2] >= _NEAR_M) != (b[:, 2] >= _NEAR_M)
            a, b = a[crossing], b[crossing]
            w = ((_NEAR_M - a[:, 2]) / (b[:, 2] - a[:, 2]))[:, None]
            clipped = np.concatenate([points[front[index]], a + w * (b - a)])
            u, v = project(clipped)
            bounds[index] = (v.min(), v.max(), u.min(), u.max())
            min_depth[index] = clipped[:, 2].min()
        visible = np.isfinite(bounds).all(axis=1)
        rects = np.zeros((len(cam), 4), np.int64)
        with np.errstate(invalid="ignore"):
            rects[visible, 0] = np.clip(np.floor(bounds[visible, 0]) - 1, 0, self.height)
            rects[visible, 1] = np.clip(np.ceil(bounds[visible, 1]) + 2, 0, self.height)
            rects[visible, 2] = np.clip(np.floor(bounds[visible, 2]) - 1, 0, self.width)
            rects[visible, 3] = np.clip(np.ceil(bounds[visible, 3]) + 2, 0, self.width)
        return rects, min_depth

    def _commit(self, region, t_hit: np.ndarray, hit: np.ndarray, obj_index: int, face_code: int | None):
        """Write the closer hits into the z-buffer."""
        t_region = self.t[region]
        closer = hit & (t_hit < t_region)
        np.copyto(t_region, t_hit, where=closer)
        np.copyto(self.obj[region], obj_index, where=closer)
        if face_code is not None:
            np.copyto(self.face[region], face_code, where=closer)

    def ground(self, obj_index: int) -> None:
        """The plane y = 0 seen from above."""
        down = self.dy < 0
        with np.errstate(divide="ignore", invalid="ignore"):
            t_hit = -self.origin[1] * self.inv[1]
        self._commit((slice(None), slice(None)), t_hit, down, obj_index, 2)

    def draw(self, boxes: np.ndarray, box_objects: np.ndarray, cylinders: np.ndarray, cylinder_objects: np.ndarray,
             spheres: np.ndarray, sphere_objects: np.ndarray) -> None:
        """Intersect all primitives near to far, skipping those hidden behind what is already drawn.

        boxes: N x 6 (xmin, xmax, ymin, ymax, zmin, zmax) seen from outside, cylinders: N x 5 (cx, cz,
        radius, ymin, ymax) vertical, spheres: N x 4 (cx, cy, cz, radius); *_objects: object indices.
        A box contributes only its camera-facing faces: each is a rectangle on an axis plane, and the
        front faces of a convex box never overlap on screen, so testing them separately is exact.
        """
        origin = self.origin.astype(np.float64)
        faces = []                                 # (axis, plane, code, box index)
        for axis in range(3):
            lo, hi = boxes[:, 2 * axis], boxes[:, 2 * axis + 1]
            for mask, plane, code in ((origin[axis] < lo, lo, axis * 2 + 1),
                                      (origin[axis] > hi, hi, axis * 2)):
                for index in np.flatnonzero(mask):
                    faces.append((axis, plane[index], code, index))
        face_corners = np.empty((len(faces), 4, 3))
        for row, (axis, plane, _, index) in enumerate(faces):
            u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
            lo, hi = boxes[index, 0::2], boxes[index, 1::2]
            face_corners[row, :, axis] = plane
            face_corners[row, :, u_axis] = (lo[u_axis], hi[u_axis], hi[u_axis], lo[u_axis])
            face_corners[row, :, v_axis] = (lo[v_axis], lo[v_axis], hi[v_axis], hi[v_axis])
        curved_bounds = np.concatenate([
            np.stack([cylinders[:, 0] - cylinders[:, 2], cylinders[:, 0] + cylinders[:, 2], cylinders[:, 3],
                      cylinders[:, 4], cylinders[:, 1] - cylinders[:, 2], cylinders[:, 1] + cylinders[:, 2]], 1),
            np.stack([spheres[:, 0] - spheres[:, 3], spheres[:, 0] + spheres[:, 3], spheres[:, 1] - spheres[:, 3],
                      spheres[:, 1] + spheres[:, 3], spheres[:, 2] - spheres[:, 3], spheres[:, 2] + spheres[:, 3]], 1),
        ]).reshape(-1, 6)
        curved_corners = curved_bounds[:, _BOX_CORNER_SELECT].reshape(-1, 8, 3)
        face_rects, face_depth = self.screen_rects(face_corners.reshape(-1, 4, 3), _QUAD_EDGES)
        curved_rects, curved_depth = self.screen_rects(curved_corners, _BOX_EDGES)
        rects = np.concatenate([face_rects.reshape(-1, 4), curved_rects.reshape(-1, 4)])
        depths = np.concatenate([face_depth, curved_depth])
        n_faces, n_cylinders = len(faces), len(cylinders)
        for item in np.argsort(depths, kind="stable"):
            r0, r1, c0, c1 = rects[item]
            if r0 >= r1 or c0 >= c1:
                continue
            region = (slice(r0, r1), slice(c0, c1))
            if self.t[region].max() < depths[item]:       # everything there is nearer: hidden
                continue
            if item < n_faces:
                axis, plane, code, index = faces[item]
                self._face(region, axis, plane, boxes[index], int(box_objects[index]), code)
            elif item < n_faces + n_cylinders:
                index = item - n_faces
                self._cylinder(region, cylinders[index], int(cylinder_objects[index]))
            else:
                index = item - n_faces - n_cylinders
                self._sphere(region, spheres[index], int(sphere_objects[index]))

    def _face(self, region, axis: int, plane: float, bounds: np.ndarray, obj_index: int, code: int) -> None:
        u_axis, v_axis = (axis + 1) % 3, (axis + 2) % 3
        directions = (self.dx, self.dy, self.dz)
        t_hit = np.float32(plane - self.origin[axis]) * self.inv[axis][region]
        u = self.origin[u_axis] + t_hit * directions[u_axis][region]
        v = self.origin[v_axis] + t_hit * directions[v_axis][region]
        hit = ((u >= bounds[2 * u_axis]) & (u <= bounds[2 * u_axis + 1]) & (v >= bounds[2 * v_axis])
               & (v <= bounds[2 * v_axis + 1]) & (t_hit > 0))
        self._commit(region, t_hit, hit, obj_index, code)

    def room(self, bounds, obj_index: int) -> None:
        """The inside of an axis-aligned box around the camera (walls, floor, ceiling): exit distance."""
        far, codes = [], []
        for axis, (lo, hi) in enumerate(zip(bounds[0::2], bounds[1::2])):
            d = (self.dx, self.dy, self.dz)[axis]
            t_lo, t_hi = (lo - self.origin[axis]) * self.inv[axis], (hi - self.origin[axis]) * self.inv[axis]
            far.append(np.where(d > 0, t_hi, t_lo))
            codes.append(np.where(d > 0, axis * 2 + 1, axis * 2))     # inward normal of the exit face
        first = np.argmin(np.stack(far), axis=0)
        t_exit = np.choose(first, far)
        self._commit((slice(None), slice(None)), t_exit, t_exit > 0, obj_index, None)
        self.face[...] = np.choose(first, codes)

    def _cylinder(self, region, params, obj_index: int) -> None:
        """Vertical cylinder side (x - cx)^2 + (z - cz)^2 = r^2 for ymin <= y <= ymax."""
        cx, cz, radius, y0, y1 = params
        dx, dy, dz = self.dx[region], self.dy[region], self.dz[region]
        ox, oz = self.origin[0] - cx, self.origin[2] - cz
        a = dx * dx + dz * dz
        b_half = dx * ox + dz * oz
        c = ox * ox + oz * oz - radius * radius
        disc = b_half * b_half - a * c
        with np.errstate(invalid="ignore", divide="ignore"):
            t_hit = (-b_half - np.sqrt(disc)) / a
        y_hit = self.origin[1] + t_hit * dy
        hit = (disc > 0) & (t_hit > 1e-4) & (y_hit >= y0) & (y_hit <= y1)
        self._commit(region, t_hit, hit, obj_index, FACE_CURVED)

    def _sphere(self, region, params, obj_index: int) -> None:
        cx, cy, cz, radius = params
        dx, dy, dz = self.dx[region], self.dy[region], self.dz[region]
        ox, oy, oz = self.origin[0] - cx, self.origin[1] - cy, self.origin[2] - cz
        a = dx * dx + dy * dy + dz * dz
        b_half = dx * ox + dy * oy + dz * oz
        disc = b_half * b_half - a * (ox * ox + oy * oy + oz * oz - radius * radius)
        with np.errstate(invalid="ignore"):
            t_hit = (-b_half - np.sqrt(disc)) / a
        self._commit(region, t_hit, (disc > 0) & (t_hit > 1e-4), obj_index, FACE_CURVED)


# --------------------------------------------------------------------------------------------
# texturing and shading


@lru_cache(maxsize=1)
def _noise_texture() -> np.ndarray:
    """A fixed 256x256 tileable value-noise texture in [0, 1] (octaves of smoothed random lattices)."""
    rng = np.random.default_rng(1234)
    total = np.zeros((256, 256), np.float32)
    for cells, weight in ((8, 0.5), (32, 0.3), (128, 0.2)):
        lattice = rng.random((cells, cells)).astype(np.float32)
        tiled = np.tile(lattice, (3, 3))
        up = cv2.resize(tiled, (768, 768), interpolation=cv2.INTER_CUBIC)[256:512, 256:512]
        total += weight * up
    total -= total.min()
    return total / total.max()


def _noise(u: np.ndarray, v: np.ndarray, scale: float) -> np.ndarray:
    flat_index = (((v * scale).astype(np.int32) & 255) << 8) | ((u * scale).astype(np.int32) & 255)
    return _noise_texture().ravel().take(flat_index)


def _frac(x: np.ndarray) -> np.ndarray:
    return x - np.floor(x)


def _shade(scene: Scene, caster: _Raycaster, objects: list) -> np.ndarray:
    """Colour every pixel from its hit object, hit point, normal and distance -> H x W x 3 uint8.

    Colour = palette[index] * scalar light + haze, with the palette holding the objects' colours plus
    a few texture colours (asphalt, markings, windows...). Working on flat arrays with one small
    ``take`` per channel keeps this pass cheap; (N, 3) fancy indexing is several times slower.
    """
    height, width = caster.t.shape
    obj = caster.obj.ravel()
    is_sky = obj < 0
    t = np.where(is_sky, np.float32(0), caster.t.ravel())
    dx, dy, dz = caster.dx.ravel(), caster.dy.ravel(), caster.dz.ravel()
    ox, oy, oz = (float(v) for v in caster.origin)

    n_obj = len(objects)
    asphalt, sidewalk, verge, marking, kerb, window = range(n_obj + 1, n_obj + 7)
    palette = np.stack([scene.sky_horizon] + [o[1] for o in objects] + [
        scene.asphalt_rgb, scene.sidewalk_rgb, scene.verge_rgb, np.full(3, 0.85), np.full(3, 0.7),
        np.array([0.12, 0.15, 0.2])]).astype(np.float32)
    palette_index = (obj + 1).astype(np.intp)
    materials = np.array([SKY] + [o[0] for o in objects], np.int8).take(palette_index)
    face = caster.face.ravel().astype(np.intp)
    diffuse = np.clip(_FACE_NORMALS @ scene.sun_direction, 0, 1).astype(np.float32).take(face)
    pattern = np.ones(height * width, np.float32)

    curved = np.flatnonzero(face == FACE_CURVED)
    if curved.size:
        centres = np.stack([np.zeros(3)] + [o[2] for o in objects]).astype(np.float32)
        cid, tc = palette_index.take(curved), t.take(curved)
        nx = ox + tc * dx.take(curved) - centres[:, 0].take(cid)
        ny = np.nan_to_num(oy + tc * dy.take(curved) - centres[:, 1].take(cid))   # cylinders: centre y nan
        nz = oz + tc * dz.take(curved) - centres[:, 2].take(cid)
        sun = scene.sun_direction
        diffuse[curved] = np.clip((nx * sun[0] + ny * sun[1] + nz * sun[2]) / np.sqrt(nx * nx + ny * ny + nz * nz),
                                  0, 1)

    def hits(material: int) -> tuple[np.ndarray, np.ndarray]:
        where = np.flatnonzero(materials == material)
        return where, t.take(where)

    m, tm = hits(GROUND)
    if m.size:
        x, z = ox + tm * dx.take(m), oz + tm * dz.take(m)
        abs_x = np.abs(x)
        on_road = abs_x < scene.road_half_width_m
        left, right = scene.sidewalk_outer_m
        on_sidewalk = ~on_road & (x > -left) & (x < right)
        index = np.where(on_road, asphalt, np.where(on_sidewalk, sidewalk, verge))
        centre_line = (abs_x < 0.07) & (_frac(z * (1 / 9.0)) < 0.4)
        edge_line = np.abs(abs_x - (scene.road_half_width_m - 0.35)) < 0.08
        index[on_road & (centre_line | edge_line)] = marking
        index[np.abs(abs_x - scene.road_half_width_m) < 0.15] = kerb
        palette_index[m] = index
        grain = 0.75 + 0.5 * _noise(x, z, 40.0)
        joints = on_sidewalk & (np.minimum(_frac(x * (1 / 0.7)), _frac(z * (1 / 0.7))) < 0.06)
        grain[joints] *= 0.7
        pattern[m] = grain

    m, tm = hits(FACADE)
    if m.size:
        f = face.take(m)
        y = oy + tm * dy.take(m)
        along_x = np.where(f < 2, oz + tm * dz.take(m), ox + tm * dx.take(m))    # coordinate along the wall
        along = along_x * (1 / scene.window_spacing_m)
        level = _frac(y * (1 / 3.2))                                             # 3.2 m storeys
        column = _frac(along)
        wall = f != 2
        in_window = (column > 0.3) & (column < 0.72) & (level > 0.3) & (level < 0.8) & (y > 2.5) & wall
        palette_index[m[in_window]] = window
        texture = 0.85 + 0.3 * _noise(along_x, y, 25.0)
        texture[(np.abs(level - 0.02) < 0.03) & wall] *= 0.8                   # floor slabs
        texture[in_window] = 0.8 + 1.2 * _noise(along_x[in_window], y[in_window], 3.0)
        pattern[m] = texture

    m, tm = hits(FOLIAGE)
    if m.size:
        pattern[m] = 0.55 + 0.9 * _noise(ox + tm * (dx.take(m) + dz.take(m)) + oz, oy + tm * dy.take(m), 60.0)
    m, tm = hits(GLASS)
    if m.size:
        pattern[m] = 0.7 + 0.6 * _frac((oy + tm * dy.take(m)) * 1.3)
    m, tm = hits(FLOOR)
    if m.size:
        x = ox + tm * dx.take(m)
        planks = _frac(x * (1 / 0.18)) < 0.05
        pattern[m] = 0.8 + 0.25 * _noise(x * 3, (oz + tm * dz.take(m)) * 0.3, 30.0) - 0.25 * planks
    for material, scale in ((WALL, 10.0), (FURNITURE, 15.0)):
        m, tm = hits(material)
        if m.size:
            y = oy + tm * dy.take(m)
            texture = 0.88 + 0.2 * _noise(ox + oz + tm * (dx.take(m) + dz.take(m)), y, scale)
            if material == WALL:
                texture[y < 0.1] = 0.6                                             # skirting board
            pattern[m] = texture

    ambient = 0.45 if scene.kind == "street" else 0.55
    light = pattern * (ambient + 0.6 * diffuse)
    if scene.kind == "indoor":
        light *= 1.2 / (1.0 + 0.04 * t * t)              # falloff from a light near the camera
    fog = 1.0 / (1.0 + t * (1.0 / scene.fog_distance_m))  # aerial perspective (rational, cheaper than exp)
    light *= fog * 255.0
    haze = (1.0 - fog) * 255.0
    channels = [palette[:, c].take(palette_index) * light + haze * scene.sky_horizon[c] for c in range(3)]

    sky = np.flatnonzero(is_sky)
    if sky.size:
        # vertical gradient from horizon haze to zenith blue, faint clouds
        sdx, sdy, sdz = dx.take(sky), dy.take(sky), dz.take(sky)
        elevation = sdy / np.sqrt(sdx * sdx + sdy * sdy + sdz * sdz)
        blend = np.clip(elevation * 2.5, 0, 1)
        cloud = 0.0
        if scene.kind == "street":
            lift = np.maximum(elevation, 0.03)            # clouds on a plane overhead, faded at the horizon
            cloud = (np.clip(_noise(sdx / lift, sdz / lift, 2.5) - 0.5, 0, 1) * 1.2
                     * np.clip((elevation - 0.03) * 8, 0, 1))
        for c in range(3):
            channels[c][sky] = 255.0 * (scene.sky_horizon[c] + (scene.sky_zenith[c] - scene.sky_horizon[c]) * blend
                                        + cloud)
    # saturating float -> uint8 conversion and interleave in two OpenCV passes
    return cv2.merge([cv2.convertScaleAbs(channel.reshape(height, width)) for channel in channels])


def render_scene(scene: Scene, camera_position: np.ndarray, pitch_deg: float, yaw_deg: float,
                 intrinsics: np.ndarray, height: int, width: int,
                 max_depth_m: float = STREET_MAX_DEPTH_M) -> tuple[np.ndarray, np.ndarray]:
    """Ray-cast one view of ``scene``; returns (rgb uint8 HxWx3, depth_m float32 HxW clipped to max depth)."""
    caster = _Raycaster(np.asarray(camera_position, np.float32), camera_rotation(pitch_deg, yaw_deg),
                        intrinsics, height, width)
    nan = np.float32(np.nan)
    # objects: (material, rgb, centre for curved normals (y = nan for vertical cylinders))
    objects: list = []
    if scene.has_ground:
        objects.append((GROUND, np.zeros(3, np.float32), np.zeros(3, np.float32)))
        caster.ground(0)
    if scene.room is not None:
        caster.room(scene.room, len(objects))
        objects.append((WALL, scene.wall_rgb, np.zeros(3, np.float32)))
        room_index = len(objects) - 1
    first = len(objects)
    objects += [(box[6], box[7], np.zeros(3, np.float32)) for box in scene.boxes]
    objects += [(cyl[5], cyl[6], np.array([cyl[0], nan, cyl[1]], np.float32)) for cyl in scene.cylinders]
    objects += [(sph[4], sph[5], np.array(sph[:3], np.float32)) for sph in scene.spheres]
    n_box, n_cyl = len(scene.boxes), len(scene.cylinders)
    caster.draw(np.array([b[:6] for b in scene.boxes], np.float64).reshape(-1, 6), first + np.arange(n_box),
                np.array([c[:5] for c in scene.cylinders], np.float64).reshape(-1, 5),
                first + n_box + np.arange(n_cyl),
                np.array([p[:4] for p in scene.spheres], np.float64).reshape(-1, 4),
                first + n_box + n_cyl + np.arange(len(scene.spheres)))
    if scene.room is not None:
        # the room box's floor and ceiling faces become their own materials
        room_pixels = caster.obj == room_index
        floor = room_pixels & (caster.face == 2)
        ceiling = room_pixels & (caster.face == 3)
        objects.append((FLOOR, scene.floor_rgb, np.zeros(3, np.float32)))
        caster.obj[floor] = len(objects) - 1
        objects.append((CEILING, np.array([0.9, 0.9, 0.88], np.float32), np.zeros(3, np.float32)))
        caster.obj[ceiling] = len(objects) - 1
    rgb = _shade(scene, caster, objects)
    return rgb, np.minimum(caster.t, np.float32(max_depth_m))


def _draw(rng: np.random.Generator, value: float | None, value_range: tuple[float, float]) -> float:
    return float(value) if value is not None else float(rng.uniform(*value_range))


def render_frame(seed: int, kind: str = "street", height: int | None = None, width: int | None = None,
                 intrinsics: np.ndarray | None = None, camera_range: CameraRange | None = None,
                 camera_height_m: float | None = None, camera_pitch_deg: float | None = None,
                 camera_yaw_deg: float | None = None, max_depth_m: float | None = None) -> SyntheticFrame:
    """Render a random scene of ``kind`` ("street" | "indoor"), fully determined by ``seed``.

    height, width: image size (default 176x576 street, 240x320 indoor).
    intrinsics: 3x3 K (default KITTI-like / NYU-like scaled to the size).
    camera_range: pose ranges (default STREET_TRAIN_CAMERA / INDOOR_TRAIN_CAMERA);
    camera_height_m / camera_pitch_deg / camera_yaw_deg: fixed values overriding the range.
    max_depth_m: depth clip and sky depth (default 80 street, 10 indoor).
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
    scene = make_street_scene(rng) if street else make_indoor_scene(rng)
    cam_h = _draw(rng, camera_height_m, camera_range.height_m)
    pitch = _draw(rng, camera_pitch_deg, camera_range.pitch_deg)
    yaw = _draw(rng, camera_yaw_deg, camera_range.yaw_deg)
    if street:
        position = np.array([rng.uniform(-0.5, 0.5) * scene.road_half_width_m, cam_h, 0.0])
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
    """

    def __init__(self, num_samples: int, kind: str = "street", height: int | None = None,
                 width: int | None = None, seed: int = 0, train: bool = True,
                 camera_range: CameraRange | None = None, intrinsics: np.ndarray | None = None,
                 max_depth_m: float | None = None, augment: AugmentConfig | None = None,
                 cache_frames: bool = False):
        """num_samples: dataset length; kind: "street" | "indoor"; height/width: render size
        (default 176x576 street, 240x320 indoor); seed: seed of sample 0; train: augment or not;
        camera_range / intrinsics / max_depth_m: passed to render_frame; augment: override the
        default chain (no crops, rotation 1 deg street / 2.5 deg indoor); cache_frames: keep rendered
        frames in memory (about 0.7 MB each at 176x576) instead of re-rendering every epoch."""
        if num_samples <= 0:
            raise ValueError(f"SyntheticDepthDataset: num_samples must be positive, got {num_samples}")
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
        if augment is None:
            augment = AugmentConfig(rotate_max_deg=1.0 if kind == "street" else 2.5, crop_height=None,
                                    crop_width=None,
                                    brightness_range=(0.9, 1.1) if kind == "street" else (0.75, 1.25))
        self.augment = augment
        self._cache: dict[int, SyntheticFrame] | None = {} if cache_frames else None

    def __len__(self) -> int:
        return self.num_samples

    def frame(self, index: int) -> SyntheticFrame:
        """The un-augmented rendered frame of sample ``index``."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"SyntheticDepthDataset: index {index} out of range [0, {self.num_samples})")
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        frame = render_frame(self.seed + index, kind=self.kind, height=self.height, width=self.width,
                             intrinsics=self.intrinsics, camera_range=self.camera_range,
                             max_depth_m=self.max_depth_m)
        if self._cache is not None:
            self._cache[index] = frame
        return frame

    def __getitem__(self, index: int) -> dict:
        frame = self.frame(index)
        image = frame.rgb.astype(np.float32) / 255.0
        depth_m = frame.depth_m
        if self.train:
            image, depth_m = augment_pair(image, depth_m, self.augment, sample_rng())
        return make_sample(image, depth_m, focal=float(frame.intrinsics[0, 0]))


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
    for car in [b for b in scene.boxes if b[6] in (VEHICLE, GLASS)]:
        # keep the driving corridor clear so the camera never drives through a car in the lane
        if car[0] < lane_x + 1.2 and car[1] > lane_x - 1.2:
            scene.boxes.remove(car)

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
