"""KITTI calibration: raw-sequence files, object-benchmark files, and LiDAR-to-depth-map projection.

Raw (per date): ``calib_cam_to_cam.txt`` (P_rect_0X, R_rect_00, S_rect_0X, ...) and
``calib_velo_to_cam.txt`` (R, T). Object benchmark (per frame): ``P0..P3``, ``R0_rect``, ``Tr_velo_to_cam``.
A Velodyne point X maps to pixel (u, v) and depth z by ``P_rect_0X @ R_rect_00 @ Tr_velo_to_cam @ X``
(homogeneous), as in the KITTI devkit and monodepth2's ``generate_depth_map``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

CAM_TO_CAM_FILE = "calib_cam_to_cam.txt"
VELO_TO_CAM_FILE = "calib_velo_to_cam.txt"
_TEXT_KEYS = {"calib_time"}


def read_calib_file(path: str | Path) -> dict[str, np.ndarray | str]:
    """Parse ``key: v1 v2 ...`` lines into float arrays; non-numeric values (calib_time) stay strings."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: calibration file not found")
    entries: dict[str, np.ndarray | str] = {}
    for line_number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"{path}:{line_number}: bad calib line {line!r} (expected 'key: values')")
        key, value = key.strip(), value.strip()
        try:
            entries[key] = np.array([float(v) for v in value.split()], dtype=np.float64)
        except ValueError:
            if key in _TEXT_KEYS:
                entries[key] = value
            else:
                raise ValueError(f"{path}:{line_number}: bad calib line for {key!r}: {value!r} "
                                 "(expected space-separated numbers)") from None
    return entries


def _matrix(entries: dict, key: str, shape: tuple[int, int], path: Path) -> np.ndarray:
    if key not in entries:
        raise KeyError(f"{path}: no {key} line")
    value = entries[key]
    if isinstance(value, str) or value.size != shape[0] * shape[1]:
        raise ValueError(f"{path}: {key} must have {shape[0] * shape[1]} numbers, "
                         f"got {value if isinstance(value, str) else value.size}")
    return value.reshape(shape)


def _homogeneous(matrix: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:matrix.shape[0], :matrix.shape[1]] = matrix
    return out


@dataclass
class CameraCalibration:
    """One rectified camera: projection P (3x4), rectification (4x4), LiDAR extrinsics (4x4 or None)."""

    projection: np.ndarray
    rectification: np.ndarray
    velo_to_cam: np.ndarray | None = None
    image_size: tuple[int, int] | None = None     # (height, width) of the rectified image when known
    source: str = ""

    @property
    def intrinsics(self) -> np.ndarray:
        """3x3 K of the rectified camera (the left 3x3 of P)."""
        return self.projection[:, :3].copy()

    def velo_to_image(self) -> np.ndarray:
        """3x4 matrix mapping homogeneous Velodyne points to (u*z, v*z, z)."""
        if self.velo_to_cam is None:
            raise ValueError(f"{self.source}: no Velodyne-to-camera transform ({VELO_TO_CAM_FILE} missing); "
                             "projected LiDAR depth needs it - use annotated ground truth instead")
        return self.projection @ self.rectification @ self.velo_to_cam


def load_raw_calibration(calib_dir: str | Path, camera: int = 2) -> CameraCalibration:
    """Calibration of KITTI raw camera ``camera`` (2 = left colour) from a date folder.

    ``calib_velo_to_cam.txt`` is optional: without it, ``velo_to_cam`` is None and only the camera
    geometry is available (``velo_to_image`` then raises a clear error).
    """
    calib_dir = Path(calib_dir)
    cam_path = calib_dir / CAM_TO_CAM_FILE
    cam = read_calib_file(cam_path)
    projection = _matrix(cam, f"P_rect_0{camera}", (3, 4), cam_path)
    rectification = _homogeneous(_matrix(cam, "R_rect_00", (3, 3), cam_path))
    image_size = None
    if f"S_rect_0{camera}" in cam:
        width, height = _matrix(cam, f"S_rect_0{camera}", (1, 2), cam_path)[0]
        image_size = (int(round(height)), int(round(width)))
    velo_path = calib_dir / VELO_TO_CAM_FILE
    velo_to_cam = None
    if velo_path.is_file():
        velo = read_calib_file(velo_path)
        velo_to_cam = np.eye(4)
        velo_to_cam[:3, :3] = _matrix(velo, "R", (3, 3), velo_path)
        velo_to_cam[:3, 3] = _matrix(velo, "T", (3, 1), velo_path)[:, 0]
    return CameraCalibration(projection, rectification, velo_to_cam, image_size, source=str(calib_dir))


def load_object_calibration(path: str | Path, camera: int = 2) -> CameraCalibration:
    """Calibration from a KITTI object-benchmark file (``P2``, ``R0_rect``, ``Tr_velo_to_cam``)."""
    path = Path(path)
    entries = read_calib_file(path)
    projection = _matrix(entries, f"P{camera}", (3, 4), path)
    rectification = _homogeneous(_matrix(entries, "R0_rect", (3, 3), path))
    velo_to_cam = _homogeneous(_matrix(entries, "Tr_velo_to_cam", (3, 4), path)) if "Tr_velo_to_cam" in entries \
        else None
    return CameraCalibration(projection, rectification, velo_to_cam, None, source=str(path))


def read_velodyne_points(path: str | Path) -> np.ndarray:
    """A KITTI ``velodyne/*.bin`` scan as N x 4 float32 (x, y, z, reflectance) in the Velodyne frame."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.float32)
    if raw.size % 4:
        raise ValueError(f"{path}: {raw.size} floats is not a multiple of 4 (x, y, z, reflectance)")
    return raw.reshape(-1, 4)


def project_velodyne_to_depth(points: np.ndarray, calib: CameraCalibration,
                              image_shape: tuple[int, int], min_forward_m: float = 0.0) -> np.ndarray:
    """Sparse depth map (H x W float32 metres, 0 = no point) from Velodyne points.

    Points behind the sensor (x < ``min_forward_m``) or behind the camera are dropped; pixel =
    rounded projection; where several points land on one pixel the nearest wins.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    xyz = np.asarray(points, dtype=np.float64)[:, :3]
    xyz = xyz[xyz[:, 0] >= min_forward_m]
    projected = np.c_[xyz, np.ones(len(xyz))] @ calib.velo_to_image().T       # N x 3: u*z, v*z, z
    depth = projected[:, 2]
    in_front = depth > 0
    projected, depth = projected[in_front], depth[in_front]
    u = np.round(projected[:, 0] / depth).astype(np.int64)
    v = np.round(projected[:, 1] / depth).astype(np.int64)
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    u, v, depth = u[inside], v[inside], depth[inside]
    order = np.argsort(-depth)                 # far first, so the nearest point is written last and wins
    depth_map = np.zeros((height, width), np.float32)
    depth_map[v[order], u[order]] = depth[order]
    return depth_map


def _format_values(values: np.ndarray) -> str:
    return " ".join(f"{v:.6e}" for v in np.asarray(values, dtype=np.float64).ravel())


def write_raw_calibration(calib_dir: str | Path, intrinsics: np.ndarray, image_size: tuple[int, int],
                          velo_to_cam: np.ndarray | None = None) -> None:
    """Write ``calib_cam_to_cam.txt`` and ``calib_velo_to_cam.txt`` for a rectified camera 2 (no distortion).

    Identity rectification; cameras 0-3 share the intrinsics with KITTI's stereo baselines so
    readers that expect all four cameras find them. ``velo_to_cam`` defaults to KITTI's axis swap
    (Velodyne x forward, y left, z up -> camera x right, y down, z forward) at the same origin.
    """
    calib_dir = Path(calib_dir)
    calib_dir.mkdir(parents=True, exist_ok=True)
    k = np.asarray(intrinsics, dtype=np.float64)
    height, width = image_size
    baselines_m = (0.0, -0.537, 0.06, -0.47)          # KITTI rig: cams 0/1 grey, 2/3 colour
    lines = ["calib_time: 01-Jan-2026 00:00:00 (urcdc procedural)", "corner_dist: 9.950000e-02"]
    for cam, baseline in enumerate(baselines_m):
        projection = np.c_[k, [k[0, 0] * baseline, 0.0, 0.0]]
        lines += [f"S_0{cam}: {_format_values([width, height])}", f"K_0{cam}: {_format_values(k)}",
                  f"D_0{cam}: {_format_values(np.zeros(5))}", f"R_0{cam}: {_format_values(np.eye(3))}",
                  f"T_0{cam}: {_format_values([baseline, 0.0, 0.0])}",
                  f"S_rect_0{cam}: {_format_values([width, height])}",
                  f"R_rect_0{cam}: {_format_values(np.eye(3))}", f"P_rect_0{cam}: {_format_values(projection)}"]
    (calib_dir / CAM_TO_CAM_FILE).write_text("\n".join(lines) + "\n")
    if velo_to_cam is None:
        velo_to_cam = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    (calib_dir / VELO_TO_CAM_FILE).write_text(
        "calib_time: 01-Jan-2026 00:00:00 (urcdc procedural)\n"
        f"R: {_format_values(velo_to_cam[:3, :3])}\nT: {_format_values(velo_to_cam[:3, 3])}\n"
        "delta_f: 0.000000e+00 0.000000e+00\ndelta_c: 0.000000e+00 0.000000e+00\n")
