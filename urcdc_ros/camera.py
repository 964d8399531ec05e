"""Which intrinsics a frame is processed with: the latest camera_info's, or the model's fallback.

The node passes the camera's K (from P, the rectified intrinsics the cloud uses too) to the model,
so depth is metric for that camera. Without a camera_info, or with one that cannot describe the
frame (NaN or non-positive focal length, another resolution, a principal point the model rejects),
the model runs with its fallback field of view and no cloud or depth/camera_info is published.
No ROS state here; ``CameraSelector`` only caches the decision per camera_info and frame size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from urcdc_ros.pointcloud import CameraInfoError, PinholeIntrinsics, intrinsics_from_camera_info


@dataclass(frozen=True)
class FrameCamera:
    """The camera of one frame size: usable intrinsics, or the reason there are none (fallback)."""

    intrinsics: PinholeIntrinsics | None
    problem: str | None = None  # why ``intrinsics`` is None; None when usable
    camera_info: Any = None  # the sensor_msgs/CameraInfo it came from, when usable

    @property
    def k(self) -> np.ndarray | None:
        """3×3 K for the model (None = fallback field of view)."""
        if self.intrinsics is None:
            return None
        i = self.intrinsics
        return np.array([[i.fx, 0.0, i.cx], [0.0, i.fy, i.cy], [0.0, 0.0, 1.0]])


def frame_camera(info: Any, width: int, height: int, info_topic: str,
                 check_k: Callable[[np.ndarray, tuple[int, int]], None] | None = None) -> FrameCamera:
    """Decide the camera for a ``width`` x ``height`` frame given the latest camera_info (or None).

    check_k: the model's own validation of K for this frame size (raises ValueError), if any.
    """
    if info is None:
        return FrameCamera(None, f"no camera_info on {info_topic}: depth uses the model's fallback field of "
                                 "view (not metric for this camera), no cloud or depth/camera_info")
    try:
        intrinsics = intrinsics_from_camera_info(info)
        if (intrinsics.width, intrinsics.height) != (width, height):
            raise CameraInfoError(f"camera_info is {intrinsics.width}x{intrinsics.height}, the image {width}x{height}")
        camera = FrameCamera(intrinsics, None, info)
        if check_k is not None:
            check_k(camera.k, (height, width))
    except (CameraInfoError, ValueError) as error:
        return FrameCamera(None, f"unusable camera_info on {info_topic} ({error}): depth uses the model's "
                                 "fallback field of view, no cloud or depth/camera_info")
    return camera


def camera_info_key(info: Any) -> tuple:
    """The fields of a camera_info that matter here, hashable (camera_info arrives with every frame)."""
    return (int(info.width), int(info.height), str(info.distortion_model), tuple(info.p), tuple(info.k),
            tuple(info.d), tuple(info.r), int(info.binning_x), int(info.binning_y))


class CameraSelector:
    """``frame_camera`` cached per camera_info contents and frame size (a new message each frame is usual)."""

    def __init__(self, info_topic: str, check_k: Callable[[np.ndarray, tuple[int, int]], None] | None = None):
        self.info_topic = info_topic
        self.check_k = check_k
        self._last: tuple[Any, int, int, FrameCamera] | None = None  # (info object, width, height, camera)
        self._by_key: dict[tuple, FrameCamera] = {}

    def select(self, info: Any, width: int, height: int) -> FrameCamera:
        last = self._last
        if last is not None and last[0] is info and last[1:3] == (width, height):
            return last[3]
        key = (None if info is None else camera_info_key(info), width, height)
        camera = self._by_key.get(key)
        if camera is None:
            camera = frame_camera(info, width, height, self.info_topic, self.check_k)
            if len(self._by_key) >= 8:  # a camera that keeps changing must not grow this
                self._by_key.clear()
            self._by_key[key] = camera
        self._last = (info, width, height, camera)
        return camera
