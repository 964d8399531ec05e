"""Depth image -> organized sensor_msgs/PointCloud2 payload, without ROS state.

sensor_msgs_py is not installable from PyPI, so the packing is written here once, matching
depth_image_proc (point_cloud_xyz / point_cloud_xyzrgb): fields x, y, z float32 at 0/4/8 with a
16-byte point, or x, y, z + rgb at 16 with a 32-byte point (the layout of PointCloud2Modifier's
"xyz", "rgb"); rgb is a float32 whose bits are 0x00RRGGBB. Invalid points are NaN, the cloud is
organized (H x W, or H/stride x W/stride) and not dense. Back-projection follows depth_image_proc:
x = (u - cx) / fx * z, y = (v - cy) / fy * z with P's fx, fy, cx, cy, in the optical frame (REP 103).
"""
from __future__ import annotations

import array
import functools
import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from urcdc_ros.image_codec import HOST_IS_BIGENDIAN

FLOAT32 = 7  # sensor_msgs/PointField.FLOAT32
XYZ_POINT_STEP = 16
XYZRGB_POINT_STEP = 32
RGB_OFFSET = 16
# (name, offset) of each float32 field, as depth_image_proc writes them.
XYZ_FIELDS = (("x", 0), ("y", 4), ("z", 8))
XYZRGB_FIELDS = XYZ_FIELDS + (("rgb", RGB_OFFSET),)


class CameraInfoError(ValueError):
    """A camera_info that cannot be used for back-projection; the text says why."""


@dataclass(frozen=True)
class PinholeIntrinsics:
    """Rectified pinhole intrinsics (from P, as image_geometry uses them) for an image of width x height."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values):
            raise CameraInfoError(f"intrinsics fx, fy, cx, cy = {values} are not all finite")
        if self.fx <= 0 or self.fy <= 0:
            raise CameraInfoError(f"focal lengths fx={self.fx}, fy={self.fy} must be > 0 (uncalibrated camera?)")
        if self.width <= 0 or self.height <= 0:
            raise CameraInfoError(f"camera_info size {self.width}x{self.height} must be > 0")


def intrinsics_from_camera_info(msg: Any) -> PinholeIntrinsics:
    """fx, fy, cx, cy from P (row-major 3x4) of a sensor_msgs/CameraInfo; raises CameraInfoError."""
    p = [float(v) for v in msg.p]
    if len(p) != 12:
        raise CameraInfoError(f"camera_info.p has {len(p)} values, expected 12")
    return PinholeIntrinsics(fx=p[0], fy=p[5], cx=p[2], cy=p[6], width=int(msg.width), height=int(msg.height))


@functools.lru_cache(maxsize=16)
def ray_grid(intrinsics: PinholeIntrinsics, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(x/z of each kept column as 1 x W', y/z of each kept row as H' x 1), cached per intrinsics and stride.

    The pinhole model is separable, so two vectors broadcast to the full H' x W' grid.
    """
    cols = np.arange(0, intrinsics.width, stride, dtype=np.float64)
    rows = np.arange(0, intrinsics.height, stride, dtype=np.float64)
    x_over_z = ((cols - intrinsics.cx) / intrinsics.fx).astype(np.float32)[None, :]
    y_over_z = ((rows - intrinsics.cy) / intrinsics.fy).astype(np.float32)[:, None]
    x_over_z.setflags(write=False)
    y_over_z.setflags(write=False)
    return x_over_z, y_over_z


@dataclass
class CloudPayload:
    """The ``data`` of an organized PointCloud2 and the geometry that goes with it."""

    data: array.array
    height: int
    width: int
    point_step: int
    floats: np.ndarray  # H' x W' x point_step/4 float32 view over ``data``

    @property
    def fields(self) -> tuple[tuple[str, int], ...]:
        return XYZRGB_FIELDS if self.point_step == XYZRGB_POINT_STEP else XYZ_FIELDS

    @property
    def row_step(self) -> int:
        return self.width * self.point_step


class _Workspace:
    """Every array one cloud size needs, allocated once: the payload and contiguous H' x W' scratch planes."""

    def __init__(self, height: int, width: int, point_step: int) -> None:
        data = array.array("B", bytes(height * width * point_step))
        floats = np.frombuffer(data, dtype=np.float32).reshape(height, width, point_step // 4)
        self.payload = CloudPayload(data=data, height=height, width=width, point_step=point_step, floats=floats)
        plane = (height, width)
        self.x, self.y, self.z, self.factor = (np.empty(plane, np.float32) for _ in range(4))
        self.zeros = np.zeros(plane, np.float32)  # the padding channels
        self.keep, self.test = np.empty(plane, bool), np.empty(plane, bool)
        self.rgb_bits = np.empty(plane, np.uint32)
        self.channel = np.empty(plane, np.uint32)
        if point_step == XYZRGB_POINT_STEP:  # 8-byte halves of the 32-byte point: (x,y), (z,0), (rgb,0)
            self.xy, self.z0, self.rgb0 = (np.empty(plane + (2,), np.float32) for _ in range(3))
            self.zeros64 = np.zeros(plane, np.float64)


class CloudBuilder:
    """Builds clouds into one reused buffer (rclpy copies it on publish, so reuse is safe between frames).

    Every step is a branch-free whole-plane numpy pass, and cv2.merge interleaves the planes into
    the message layout. Cost against a plain copy of the output buffer: python -m urcdc_ros.node_bench.
    """

    def __init__(self) -> None:
        self._workspace: _Workspace | None = None

    def build(
        self,
        depth_m: np.ndarray,
        intrinsics: PinholeIntrinsics,
        stride: int = 1,
        rgb: np.ndarray | None = None,
        uncertainty_m: np.ndarray | None = None,
        max_uncertainty_m: float = 0.0,
        max_relative_uncertainty: float = 0.0,
    ) -> CloudPayload:
        """Back-project ``depth_m`` (H x W metres; NaN/inf/<=0 invalid) into the reused payload.

        rgb: H x W x 3 uint8 RGB to colour the points (x,y,z,rgb layout) or None (x,y,z).
        Points whose uncertainty exceeds ``max_uncertainty_m`` or ``max_relative_uncertainty`` x depth
        become NaN (a threshold of 0 disables it).
        """
        height, width = depth_m.shape
        if (intrinsics.height, intrinsics.width) != (height, width):
            raise CameraInfoError(
                f"camera_info is {intrinsics.width}x{intrinsics.height} but the depth image is {width}x{height}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        point_step = XYZ_POINT_STEP if rgb is None else XYZRGB_POINT_STEP
        out_h, out_w = -(-height // stride), -(-width // stride)
        ws = self._workspace
        if ws is None or (ws.payload.height, ws.payload.width, ws.payload.point_step) != (out_h, out_w, point_step):
            ws = self._workspace = _Workspace(out_h, out_w, point_step)
        depth = depth_m[::stride, ::stride]
        # NaN is the expected "no point" value here; FP-exception bookkeeping would only cost time.
        with np.errstate(all="ignore"):
            # z = depth where 0 < depth < inf, else NaN, branch-free (boolean indexing is ~10x slower):
            # max(d, 0) turns negatives into 0 and keeps NaN; z / z is 1, or NaN for 0, inf and NaN.
            np.maximum(depth, 0, out=ws.z)
            np.divide(ws.z, ws.z, out=ws.factor)
            if uncertainty_m is not None and (max_uncertainty_m > 0 or max_relative_uncertainty > 0):
                self._blank_uncertain(ws, uncertainty_m[::stride, ::stride], max_uncertainty_m,
                                      max_relative_uncertainty)
            np.multiply(ws.z, ws.factor, out=ws.z)
            x_over_z, y_over_z = ray_grid(intrinsics, stride)
            floats = ws.payload.floats
            np.multiply(ws.z, x_over_z, out=ws.x)
            np.multiply(ws.z, y_over_z, out=ws.y)
            if rgb is None:
                # Contiguous planes + one cv2.merge interleave: about the cost of copying the buffer.
                _merge_into([ws.x, ws.y, ws.z, ws.zeros], floats)
            else:
                # cv2.merge has SIMD paths for up to 4 channels only, so the 32-byte point is merged as
                # four 8-byte float64 "channels" (x,y | z,0 | rgb,0 | 0,0), each made by a 2-channel merge.
                _merge_into([ws.x, ws.y], ws.xy)
                _merge_into([ws.z, ws.zeros], ws.z0)
                _merge_into([_pack_rgb(ws, rgb[::stride, ::stride]).view(np.float32), ws.zeros], ws.rgb0)
                _merge_into([ws.xy.view(np.float64)[..., 0], ws.z0.view(np.float64)[..., 0],
                             ws.rgb0.view(np.float64)[..., 0], ws.zeros64], floats.view(np.float64))
        return ws.payload

    @staticmethod
    def _blank_uncertain(ws: _Workspace, uncertainty_m: np.ndarray, max_uncertainty_m: float,
                         max_relative_uncertainty: float) -> None:
        """Multiply NaN into ws.factor where the uncertainty exceeds either threshold (0 = off)."""
        # Under both thresholds <=> under min(absolute, relative x depth): one comparison.
        if max_relative_uncertainty > 0:
            threshold = ws.x
            np.multiply(ws.z, max_relative_uncertainty, out=threshold)
            if max_uncertainty_m > 0:
                np.minimum(threshold, max_uncertainty_m, out=threshold)
        else:
            threshold = max_uncertainty_m
        np.less_equal(uncertainty_m, threshold, out=ws.keep)
        np.copyto(ws.x, ws.keep)
        np.divide(ws.x, ws.x, out=ws.x)  # 1 where kept, 0 / 0 = NaN where not
        np.multiply(ws.factor, ws.x, out=ws.factor)


def _merge_into(planes: list[np.ndarray], out: np.ndarray) -> None:
    """cv2.merge ``planes`` into ``out`` (a bit-exact copy, so NaN payloads and rgb bits survive)."""
    merged = cv2.merge(planes, dst=out)
    if not np.shares_memory(merged, out):  # cv2 reallocated: never expected, but stay correct
        np.copyto(out, merged.reshape(out.shape))


def _pack_rgb(ws: _Workspace, rgb: np.ndarray) -> np.ndarray:
    """0x00RRGGBB per point as uint32 (depth_image_proc's rgb field bits), in the host byte order."""
    if HOST_IS_BIGENDIAN:
        np.left_shift(rgb[..., 0], 16, out=ws.rgb_bits, dtype=np.uint32)
        np.left_shift(rgb[..., 1], 8, out=ws.channel, dtype=np.uint32)
        np.bitwise_or(ws.rgb_bits, ws.channel, out=ws.rgb_bits)
        np.copyto(ws.channel, rgb[..., 2])
        np.bitwise_or(ws.rgb_bits, ws.channel, out=ws.rgb_bits)
        return ws.rgb_bits
    # Little endian: 0x00RRGGBB is the byte sequence B, G, R, 0, i.e. BGRA with alpha cleared.
    bgra = ws.rgb_bits.view(np.uint8).reshape(*ws.rgb_bits.shape, 4)
    cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA, dst=bgra)
    bgra[..., 3] = 0  # depth_image_proc leaves the alpha byte 0
    return ws.rgb_bits


def fill_cloud_msg(msg: Any, payload: CloudPayload, header: Any, point_field_type: Any = None) -> Any:
    """Fill a sensor_msgs/PointCloud2 from ``payload`` (no copy of the data); returns ``msg``."""
    if point_field_type is None:
        from sensor_msgs.msg import PointField as point_field_type  # noqa: N813 - keeps this module ROS-free
    msg.header = header
    msg.height, msg.width = payload.height, payload.width
    msg.fields = [point_field_type(name=name, offset=offset, datatype=FLOAT32, count=1)
                  for name, offset in payload.fields]
    msg.is_bigendian = HOST_IS_BIGENDIAN
    msg.point_step = payload.point_step
    msg.row_step = payload.row_step
    msg.data = payload.data
    msg.is_dense = False
    return msg


def read_cloud_xyz(msg: Any) -> np.ndarray:
    """x, y, z of an organized float32 PointCloud2 as H x W x 3 (for consumers and tests)."""
    offsets = {f.name: (int(f.offset), int(f.datatype)) for f in msg.fields}
    for name in ("x", "y", "z"):
        if name not in offsets or offsets[name][1] != FLOAT32:
            raise ValueError(f"PointCloud2 has no float32 field '{name}' (fields: {sorted(offsets)})")
    dtype = np.dtype(">f4" if msg.is_bigendian else "<f4")
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    rows = raw[: msg.height * msg.row_step].reshape(msg.height, msg.row_step)
    points = rows[:, : msg.width * msg.point_step].reshape(msg.height, msg.width, msg.point_step)
    return np.stack([points[..., offsets[n][0]:offsets[n][0] + 4].copy().view(dtype)[..., 0] for n in "xyz"],
                    axis=-1).astype(np.float32)


def read_cloud_rgb(msg: Any) -> np.ndarray:
    """The packed rgb field of a PointCloud2 as H x W x 3 uint8 RGB."""
    offset = next((int(f.offset) for f in msg.fields if f.name in ("rgb", "rgba")), None)
    if offset is None:
        raise ValueError("PointCloud2 has no rgb field")
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    points = raw[: msg.height * msg.row_step].reshape(msg.height, msg.row_step)[:, : msg.width * msg.point_step]
    packed = points.reshape(msg.height, msg.width, msg.point_step)[..., offset:offset + 4].copy()
    bits = packed.view(">u4" if msg.is_bigendian else "<u4")[..., 0]
    return np.stack([(bits >> 16) & 0xFF, (bits >> 8) & 0xFF, bits & 0xFF], axis=-1).astype(np.uint8)
