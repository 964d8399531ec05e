"""image_codec against the encoding definitions (sensor_msgs/image_encodings.hpp), without a ROS graph."""
import array
import sys

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from urcdc_ros.image_codec import (
    ImageDecodeError,
    array_to_image_msg,
    colorize_depth,
    compressed_to_rgb,
    fill_image_msg,
    image_to_array,
    image_to_rgb,
    make_image_buffer,
)


def _image(pixels_u8_rows: np.ndarray, encoding: str, width: int, height: int, step: int,
           is_bigendian: int = 0) -> Image:
    msg = Image(height=height, width=width, encoding=encoding, step=step, is_bigendian=is_bigendian)
    msg.data = array.array("B", pixels_u8_rows.tobytes())
    return msg


def _padded(pixels: np.ndarray, pad_bytes: int) -> tuple[np.ndarray, int]:
    """Rows of ``pixels`` as bytes with ``pad_bytes`` of junk after each, as some drivers send them."""
    rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
    junk = np.full((rows.shape[0], pad_bytes), 0xAB, np.uint8)
    padded = np.concatenate([rows, junk], axis=1)
    return padded, padded.shape[1]


@pytest.fixture(scope="module")
def kitti_rgb(shared_data) -> np.ndarray:
    path = sorted((shared_data / "kitti_depth_annotated" / "rgb").glob("*.png"))[0]
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return np.ascontiguousarray(bgr[..., ::-1])


def test_rgb8_with_row_padding_is_a_zero_copy_view(kitti_rgb):
    height, width, _ = kitti_rgb.shape
    rows, step = _padded(kitti_rgb, pad_bytes=10)
    msg = _image(rows, "rgb8", width, height, step)
    rgb = image_to_rgb(msg)
    assert rgb.shape == (height, width, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb, kitti_rgb)
    assert np.shares_memory(rgb, np.frombuffer(msg.data, np.uint8))


def test_bgr_rgba_bgra_mono_give_rgb(kitti_rgb):
    rgb = kitti_rgb[:40, :60]
    height, width = rgb.shape[:2]
    alpha = np.full((height, width, 1), 7, np.uint8)
    cases = {
        "bgr8": rgb[..., ::-1],
        "rgba8": np.concatenate([rgb, alpha], axis=2),
        "bgra8": np.concatenate([rgb[..., ::-1], alpha], axis=2),
    }
    for encoding, pixels in cases.items():
        pixels = np.ascontiguousarray(pixels)
        msg = _image(pixels, encoding, width, height, pixels.shape[1] * pixels.shape[2])
        np.testing.assert_array_equal(image_to_rgb(msg), rgb, err_msg=encoding)
    grey = np.ascontiguousarray(rgb[..., 1])
    msg = _image(grey, "mono8", width, height, width)
    np.testing.assert_array_equal(image_to_rgb(msg), np.repeat(grey[..., None], 3, axis=2))


@pytest.mark.parametrize("is_bigendian", [0, 1])
def test_32fc1_honours_is_bigendian_and_step(is_bigendian):
    depth = np.linspace(0.5, 80.0, 7 * 5, dtype=np.float32).reshape(7, 5)
    depth[2, 3] = np.nan
    wire = depth.astype(">f4" if is_bigendian else "<f4")
    rows, step = _padded(wire, pad_bytes=4)
    decoded = image_to_array(_image(rows, "32FC1", 5, 7, step, is_bigendian=is_bigendian))
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, depth)  # NaN == NaN in assert_array_equal


def test_last_row_without_padding_is_accepted():
    pixels = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    rows, step = _padded(pixels, pad_bytes=3)
    data = rows.tobytes()[:-3]  # the driver trimmed the final row's padding
    msg = Image(height=4, width=3, encoding="rgb8", step=step)
    msg.data = array.array("B", data)
    np.testing.assert_array_equal(image_to_rgb(msg), pixels)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("encoding", "yuv422", "not a camera image"),
    ("encoding", "32FC1", "not a camera image"),
    ("step", 10, "step 10 <"),
    ("data", b"\x00" * 40, "truncated"),
    ("height", 0, "must be > 0"),
    ("width", 100000, "header looks corrupt"),
])
def test_malformed_images_raise_with_the_field(field, value, message):
    msg = Image(height=4, width=4, encoding="rgb8", step=12)
    msg.data = array.array("B", bytes(48))
    if field == "data":
        msg.data = array.array("B", value)
    else:
        setattr(msg, field, value)
    with pytest.raises(ImageDecodeError, match=message):
        image_to_rgb(msg)


@pytest.mark.parametrize("ext", [".png", ".jpg"])
def test_compressed_png_and_jpeg(kitti_rgb, ext):
    ok, encoded = cv2.imencode(ext, kitti_rgb[..., ::-1])
    assert ok
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8" if ext == ".jpg" else "png")
    msg.data = array.array("B", encoded.tobytes())
    rgb = compressed_to_rgb(msg)
    assert rgb.shape == kitti_rgb.shape
    error = np.abs(rgb.astype(int) - kitti_rgb.astype(int)).mean()
    assert error == 0 if ext == ".png" else error < 8  # default JPEG quality 95 on KITTI texture: ~4.8


def test_unknown_encoding_is_named():
    msg = Image(height=1, width=1, encoding="yuv422", step=2)
    with pytest.raises(ImageDecodeError, match="'yuv422' not supported"):
        image_to_array(msg)


def test_compressed_errors():
    msg = CompressedImage(format="jpeg")
    msg.data = array.array("B", b"not a jpeg at all")
    with pytest.raises(ImageDecodeError, match="could not be decoded"):
        compressed_to_rgb(msg)
    with pytest.raises(ImageDecodeError, match="not supported"):
        compressed_to_rgb(CompressedImage(format="theora"))
    with pytest.raises(ImageDecodeError, match="no data"):
        compressed_to_rgb(CompressedImage(format="png"))


def test_depth_message_layout_matches_32fc1_definition():
    depth = np.random.default_rng(0).uniform(1, 50, (6, 9)).astype(np.float32)
    header = Header(frame_id="cam_optical")
    header.stamp.sec, header.stamp.nanosec = 12, 345
    msg = array_to_image_msg(depth, "32FC1", header)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (6, 9, 36, "32FC1")
    assert msg.is_bigendian == (sys.byteorder == "big")
    assert bytes(msg.data) == depth.tobytes()
    assert msg.header.frame_id == "cam_optical" and msg.header.stamp.nanosec == 345


def test_reused_buffer_is_what_gets_published():
    buffer = make_image_buffer(3, 4, "bgr8")
    buffer.view[...] = 9
    msg = fill_image_msg(Image(check_fields=True), buffer, "bgr8", Header())
    assert msg.data is buffer.data and msg.step == 12
    np.testing.assert_array_equal(image_to_array(msg), np.full((3, 4, 3), 9, np.uint8))


def test_colorize_marks_invalid_black_and_orders_near_far():
    depth = np.array([[1.0, 40.0, np.nan, np.inf, 0.0]], np.float32)
    bgr = colorize_depth(depth, max_depth_m=80.0)
    assert bgr.shape == (1, 5, 3) and bgr.dtype == np.uint8
    assert (bgr[0, 2:] == 0).all()
    assert (bgr[0, 0] != bgr[0, 1]).any()
