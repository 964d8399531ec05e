"""sensor_msgs/Image and CompressedImage <-> numpy, without ROS state.

cv_bridge is not installable from PyPI, so the conversions the node needs are written here once,
following the encoding definitions of sensor_msgs/image_encodings.hpp. Decoding is zero-copy:
the arrays returned are views over ``msg.data`` (rows honour ``step``); encoding writes into a
reusable ``array.array`` that rclpy copies once when the message is published.
"""
from __future__ import annotations

import array
import sys
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

# encoding -> (channels, numpy dtype of one channel); the 8-bit colour ones are what cameras send.
ENCODINGS: dict[str, tuple[int, np.dtype]] = {
    "rgb8": (3, np.dtype(np.uint8)),
    "bgr8": (3, np.dtype(np.uint8)),
    "rgba8": (4, np.dtype(np.uint8)),
    "bgra8": (4, np.dtype(np.uint8)),
    "mono8": (1, np.dtype(np.uint8)),
    "8UC1": (1, np.dtype(np.uint8)),
    "8UC3": (3, np.dtype(np.uint8)),
    "mono16": (1, np.dtype(np.uint16)),
    "16UC1": (1, np.dtype(np.uint16)),
    "32FC1": (1, np.dtype(np.float32)),
}
# What the node accepts as a camera image.
COLOR_INPUT_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
# Larger than any camera we know of (16K x 16K); stops a corrupt header from allocating gigabytes.
MAX_IMAGE_SIDE_PX = 16384
HOST_IS_BIGENDIAN = sys.byteorder == "big"


class ImageDecodeError(ValueError):
    """A message that cannot be turned into an image; the text says which field is wrong."""


def _check_geometry(height: int, width: int, step: int, bytes_per_pixel: int, data_len: int) -> None:
    if height <= 0 or width <= 0:
        raise ImageDecodeError(f"image is {width}x{height}: width and height must be > 0")
    if height > MAX_IMAGE_SIDE_PX or width > MAX_IMAGE_SIDE_PX:
        raise ImageDecodeError(
            f"image is {width}x{height}: larger than {MAX_IMAGE_SIDE_PX} px per side, header looks corrupt")
    row_bytes = width * bytes_per_pixel
    if step < row_bytes:
        raise ImageDecodeError(f"step {step} < width {width} x {bytes_per_pixel} bytes per pixel = {row_bytes}")
    # The last row may stop at its pixels (some drivers trim the padding); anything shorter is truncated.
    needed = (height - 1) * step + row_bytes
    if data_len < needed:
        raise ImageDecodeError(
            f"data has {data_len} bytes, {width}x{height} with step {step} needs at least {needed} (truncated)")


def image_to_array(msg: Any) -> np.ndarray:
    """View ``msg.data`` as H x W (x C) in its own encoding and native byte order.

    Zero-copy for 8-bit encodings and native-endian wider ones; byte-swaps (one copy) otherwise.
    Raises ImageDecodeError naming the bad field.
    """
    encoding = str(msg.encoding)
    if encoding not in ENCODINGS:
        raise ImageDecodeError(f"encoding '{encoding}' not supported; use one of {', '.join(ENCODINGS)}")
    channels, dtype = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    bytes_per_pixel = channels * dtype.itemsize
    raw = np.frombuffer(msg.data, dtype=np.uint8)
    _check_geometry(height, width, step, bytes_per_pixel, raw.size)
    # as_strided, not reshape: rows are `step` apart and the last one may stop at its pixels.
    pixel_bytes = np.lib.stride_tricks.as_strided(
        raw, shape=(height, width, bytes_per_pixel), strides=(step, bytes_per_pixel, 1), writeable=False)
    if dtype.itemsize == 1:
        view = pixel_bytes
    else:
        msg_dtype = dtype.newbyteorder(">" if msg.is_bigendian else "<")
        view = pixel_bytes.view(msg_dtype)  # last axis is contiguous, so this stays a view
        if msg_dtype != dtype:
            view = view.astype(dtype)  # the one case that needs a copy: foreign byte order
    return view[..., 0] if channels == 1 else view


def image_to_rgb(msg: Any) -> np.ndarray:
    """An rgb8/bgr8/rgba8/bgra8/mono8 Image as an H x W x 3 uint8 RGB view (no copy except mono8)."""
    encoding = str(msg.encoding)
    if encoding not in COLOR_INPUT_ENCODINGS:
        raise ImageDecodeError(
            f"encoding '{encoding}' is not a camera image; send one of {', '.join(COLOR_INPUT_ENCODINGS)}")
    pixels = image_to_array(msg)
    if encoding == "rgb8":
        return pixels
    if encoding in ("bgr8", "bgra8"):
        return pixels[..., 2::-1]
    if encoding == "rgba8":
        return pixels[..., :3]
    return np.broadcast_to(pixels[..., None], pixels.shape + (3,))  # mono8: grey in all three channels


def compressed_to_rgb(msg: Any) -> np.ndarray:
    """A jpeg/png sensor_msgs/CompressedImage as H x W x 3 uint8 RGB (a view of OpenCV's BGR output)."""
    fmt = str(msg.format).lower()
    if "jpeg" not in fmt and "jpg" not in fmt and "png" not in fmt:
        raise ImageDecodeError(f"compressed format '{msg.format}' not supported; send jpeg or png")
    if "compresseddepth" in fmt.replace(" ", ""):
        raise ImageDecodeError(f"compressed format '{msg.format}' is a depth image, not a camera image")
    encoded = np.frombuffer(msg.data, dtype=np.uint8)
    if encoded.size == 0:
        raise ImageDecodeError("compressed image has no data")
    bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if bgr is None or bgr.size == 0:
        raise ImageDecodeError(f"compressed image ({msg.format}, {encoded.size} bytes) could not be decoded")
    return bgr[..., ::-1]


@dataclass
class ImageBuffer:
    """A reusable message payload: rclpy copies ``data`` when publishing, so one buffer serves every frame."""

    data: array.array
    view: np.ndarray  # H x W (x C) numpy view writing into ``data``


def make_image_buffer(height: int, width: int, encoding: str) -> ImageBuffer:
    """Allocate a native-endian payload for an H x W image of ``encoding``."""
    channels, dtype = ENCODINGS[encoding]
    data = array.array("B", bytes(height * width * channels * dtype.itemsize))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return ImageBuffer(data=data, view=np.frombuffer(data, dtype=dtype).reshape(shape))


def fill_image_msg(msg: Any, buffer: ImageBuffer, encoding: str, header: Any) -> Any:
    """Point ``msg`` at ``buffer`` with the geometry of its view; returns ``msg``.

    Humble's setters, and Jazzy/Kilted's on a message built with ``check_fields=True``
    (``ros_compat.message_factory``), keep an assigned array.array without copying; otherwise the
    setter copies it once (memcpy, still correct).
    """
    height, width = buffer.view.shape[:2]
    msg.header = header
    msg.height, msg.width = height, width
    msg.encoding = encoding
    msg.is_bigendian = int(HOST_IS_BIGENDIAN)
    msg.step = buffer.view.strides[0]
    msg.data = buffer.data
    return msg


def array_to_image_msg(pixels: np.ndarray, encoding: str, header: Any, msg_type: Any = None) -> Any:
    """Build a new Image from an array (one copy). For the node's steady state use the buffer helpers."""
    if msg_type is None:
        from sensor_msgs.msg import Image as msg_type  # noqa: N813 - a lazy import keeps this module ROS-free
    from urcdc_ros.ros_compat import message_factory

    channels, dtype = ENCODINGS[encoding]
    expected_ndim = 2 if channels == 1 else 3
    if pixels.ndim != expected_ndim or (channels > 1 and pixels.shape[2] != channels):
        raise ValueError(f"{encoding} needs {channels} channel(s), got an array of shape {pixels.shape}")
    buffer = make_image_buffer(pixels.shape[0], pixels.shape[1], encoding)
    buffer.view[...] = pixels.astype(dtype, copy=False)
    return fill_image_msg(message_factory(msg_type)(), buffer, encoding, header)


def colorize_depth(depth_m: np.ndarray, max_depth_m: float, out_bgr: np.ndarray | None = None) -> np.ndarray:
    """Depth as a bgr8 TURBO colour map (near = red, far = blue); invalid (NaN/inf/<=0) pixels black."""
    scale = 255.0 / max(float(max_depth_m), 1e-6)
    with np.errstate(invalid="ignore"):
        levels = np.clip(255.0 - np.nan_to_num(depth_m, nan=max_depth_m, posinf=max_depth_m) * scale, 0, 255)
    bgr = cv2.applyColorMap(levels.astype(np.uint8), cv2.COLORMAP_TURBO, dst=out_bgr)
    with np.errstate(invalid="ignore"):
        invalid = ~((depth_m > 0) & (depth_m < np.inf))
    if invalid.any():
        bgr[invalid] = 0
    return bgr
