"""Camera intrinsics from the outside world: ``FX FY CX CY`` values and ROS camera_info YAML files.

The CLIs (``predict``) turn these into the 3×3 K that :mod:`urcdc_model.deploy.geometry` checks
against the frame. A camera_info YAML is the file ``camera_calibration`` (image_pipeline) writes::

    image_width: 640
    image_height: 480
    camera_matrix: {rows: 3, cols: 3, data: [fx, 0, cx, 0, fy, cy, 0, 0, 1]}
    projection_matrix: {rows: 3, cols: 4, data: [fx', 0, cx', Tx, 0, fy', cy', Ty, 0, 0, 1, 0]}

``projection_matrix`` (P) describes the rectified image, ``camera_matrix`` (K) the raw one; like the
node (which reads P of each CameraInfo) P wins when it is set, K is used when P is absent or all zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

INTRINSICS_FIELDS = ("fx", "fy", "cx", "cy")


def intrinsics_matrix(fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """The 3×3 pinhole K (pixels)."""
    return np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]], dtype=np.float64)


def centred_intrinsics(focal_px: float, frame_hw: tuple[int, int]) -> np.ndarray:
    """K with square pixels and the principal point at the image centre.

    For datasets that record only a focal length (KITTI/NYU split files): the input plan depends on
    the focal length alone, so the principal point only has to lie inside the frame."""
    height, width = frame_hw
    return intrinsics_matrix(focal_px, focal_px, (width - 1) / 2.0, (height - 1) / 2.0)


def parse_intrinsics_values(values: Sequence[str], option: str = "--intrinsics") -> np.ndarray:
    """``["FX", "FY", "CX", "CY"]`` (strings, pixels) → K; ValueError naming the option and the field."""
    if len(values) != len(INTRINSICS_FIELDS):
        raise ValueError(f"{option} needs 4 values FX FY CX CY (pixels), got {len(values)}")
    numbers = []
    for name, text in zip(INTRINSICS_FIELDS, values):
        try:
            numbers.append(float(text))
        except ValueError:
            raise ValueError(f"{option} {name.upper()} = {text!r} is not a number") from None
    return intrinsics_matrix(*numbers)


@dataclass(frozen=True)
class CameraInfoFile:
    """What a camera_info YAML says about the camera."""

    intrinsics: np.ndarray          # 3×3 K of the image the file describes
    frame_hw: tuple[int, int]       # (image_height, image_width)
    source: str                     # "projection_matrix" | "camera_matrix"


def _matrix(data: dict, key: str, rows: int, cols: int, path: Path) -> np.ndarray | None:
    entry = data.get(key)
    if entry is None:
        return None
    values = entry.get("data") if isinstance(entry, dict) else None
    if not isinstance(values, list) or len(values) != rows * cols:
        count = len(values) if isinstance(values, list) else 0
        raise ValueError(f"{path}: {key}.data must hold {rows * cols} numbers ({rows}x{cols}), got {count}")
    try:
        matrix = np.array([float(v) for v in values], dtype=np.float64).reshape(rows, cols)
    except (TypeError, ValueError):
        raise ValueError(f"{path}: {key}.data has a value that is not a number") from None
    return matrix


def read_camera_info_yaml(path: str | Path) -> CameraInfoFile:
    """Read a ROS camera_info YAML (camera_calibration's format); ValueError naming the file and field."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: camera_info file not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not a YAML file ({exc.__class__.__name__})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a camera_info mapping (image_width, camera_matrix, ...)")
    size = []
    for key in ("image_height", "image_width"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{path}: {key} must be a positive integer, got {value!r}")
        size.append(value)
    projection = _matrix(data, "projection_matrix", 3, 4, path)
    camera = _matrix(data, "camera_matrix", 3, 3, path)
    # An uncalibrated CameraInfo carries an all-zero P; a zero focal there means "not set", not "0 px".
    if projection is not None and projection[0, 0] != 0.0:
        k, source = projection[:, :3].copy(), "projection_matrix"
    elif camera is not None:
        k, source = camera, "camera_matrix"
    else:
        raise ValueError(f"{path}: neither projection_matrix nor camera_matrix is set")
    for name, value in (("fx", k[0, 0]), ("fy", k[1, 1]), ("cx", k[0, 2]), ("cy", k[1, 2])):
        if not math.isfinite(value):
            raise ValueError(f"{path}: {source} {name} is {value}: not a number")
    return CameraInfoFile(intrinsics=k, frame_hw=(size[0], size[1]), source=source)
