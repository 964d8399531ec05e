"""Random procedural scenes: streets (road, sidewalks, building rows, cars, poles, trees) and rooms.

A scene is a list of analytic primitives (axis-aligned boxes, vertical cylinders, spheres, the inside
of a room box, the ground plane) with a material and colour each; ``urcdc_model.data.raycast`` renders
it. World frame: X right, Y up, Z forward (the street runs along +Z), metres.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STREET_MAX_DEPTH_M = 80.0
INDOOR_MAX_DEPTH_M = 10.0

# Materials (per object); ground-plane texture is chosen from the hit point (road / sidewalk / verge).
SKY, GROUND, FACADE, VEHICLE, GLASS, POLE, FOLIAGE, WALL, FLOOR, CEILING, FURNITURE = range(11)


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


CROSS_BUILDING_RANGE_M = (50.0, 130.0)    # where half the streets end at a building across them
CROSS_BUILDING_PROBABILITY = 0.5


def make_street_scene(rng: np.random.Generator, length_m: float = 140.0, start_z_m: float = -15.0,
                      cross_building_range_m: tuple[float, float] = CROSS_BUILDING_RANGE_M,
                      cross_building_probability: float = CROSS_BUILDING_PROBABILITY) -> Scene:
    """A random street: road, sidewalks, building rows, parked/leading cars, poles and trees, sky.

    cross_building_range_m: distance range of the building that ends half the streets (a T-junction or
    dead end), and ``cross_building_probability`` the share of streets it ends. Another range or share
    draws the same random numbers, so every other object of a seed stays put."""
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
    if rng.random() < cross_building_probability:   # the street ends at a cross building
        z_far = rng.uniform(*cross_building_range_m)
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


def clear_corridor(scene: Scene, x_m: float, z_range_m: tuple[float, float], half_width_m: float = 1.2) -> None:
    """Remove the cars whose footprint meets the camera's path (a camera must never sit inside a car).

    The z window is widened by a car length so no car loses only some of its boxes.
    """
    z_lo, z_hi = z_range_m[0] - 5.0, z_range_m[1] + 5.0
    scene.boxes = [box for box in scene.boxes
                   if box[6] not in (VEHICLE, GLASS)
                   or not (box[0] < x_m + half_width_m and box[1] > x_m - half_width_m
                           and box[4] < z_hi and box[5] > z_lo)]
