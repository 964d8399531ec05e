"""Vectorised numpy ray caster with exact pinhole depth, and the shading of its hits.

Every primitive's ray intersection is solved in closed form for all pixels inside its projected screen
rectangle at once; primitives are drawn near to far and skipped when what is already drawn hides them.
Pixel rays are built with camera-z = 1, so the ray parameter t of a hit *is* the pinhole depth (z in the
camera frame), which is what KITTI/NYU ground truth stores. Textures (asphalt, lane marks, paving,
facades with windows, foliage, wood) are functions of the 3-D hit point; shading is Lambertian with the
scene's sun plus aerial perspective.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from urcdc_model.data.scenes import (CEILING, FACADE, FLOOR, FOLIAGE, FURNITURE, GLASS, GROUND, SKY,
                                     STREET_MAX_DEPTH_M, WALL, Scene)

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
