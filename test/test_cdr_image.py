"""Reading sensor_msgs/Image and CompressedImage from serialized bytes, against rclpy's and rosbags' serializers."""
from __future__ import annotations

import array

import numpy as np
import pytest
from rclpy.serialization import serialize_message
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image

from urcdc_ros.cdr_image import parse_compressed_image, parse_image
from urcdc_ros.image_codec import ImageDecodeError, image_to_rgb


def image_msg(frame_id: str, encoding: str, pixels: np.ndarray, sec: int = -3, nanosec: int = 999_999_999) -> Image:
    msg = Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding, step=pixels.strides[0],
                is_bigendian=0)
    msg.header.frame_id, msg.header.stamp.sec, msg.header.stamp.nanosec = frame_id, sec, nanosec
    msg.data = array.array("B", pixels.tobytes())
    return msg


@pytest.mark.parametrize("frame_id", ["", "c", "cam", "camera_optical", "相机"])  # every string padding
@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "bgra8"])
def test_image_fields_and_pixels_match_rclpys_serialization(frame_id: str, encoding: str):
    channels = {"rgb8": 3, "mono8": 1, "bgra8": 4}[encoding]
    pixels = np.random.default_rng(0).integers(0, 256, (5, 7, channels), dtype=np.uint8)
    serialized = serialize_message(image_msg(frame_id, encoding, pixels))
    parsed = parse_image(serialized)
    assert (parsed.header.frame_id, parsed.header.stamp.sec, parsed.header.stamp.nanosec) == (frame_id, -3, 999_999_999)
    assert (parsed.height, parsed.width, parsed.encoding, parsed.step, parsed.is_bigendian) == (5, 7, encoding,
                                                                                              7 * channels, 0)
    assert bytes(parsed.data) == pixels.tobytes()
    if encoding != "mono8":
        rgb = image_to_rgb(parsed)
        expected = pixels[..., :3] if encoding == "rgb8" else pixels[..., 2::-1]
        np.testing.assert_array_equal(rgb, expected)
        assert np.shares_memory(rgb, np.frombuffer(serialized, np.uint8))  # a view of the received bytes


def test_compressed_image_matches_rclpys_serialization():
    msg = CompressedImage(format="rgb8; jpeg compressed bgr8")
    msg.header.frame_id, msg.header.stamp.sec = "cam", 12
    msg.data = array.array("B", b"\xff\xd8 jpeg bytes \xff\xd9")
    parsed = parse_compressed_image(serialize_message(msg))
    assert (parsed.header.frame_id, parsed.header.stamp.sec, parsed.format) == ("cam", 12, msg.format)
    assert bytes(parsed.data) == bytes(msg.data)


def test_big_endian_cdr():
    """Another machine's byte order (rosbags serialises big-endian CDR on request)."""
    types = get_typestore(Stores.ROS2_HUMBLE)
    t = types.types
    pixels = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = t["sensor_msgs/msg/Image"](
        header=t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=70_000, nanosec=5), frame_id="ab"),
        height=2, width=3, encoding="rgb8", is_bigendian=1, step=9, data=pixels.reshape(-1))
    serialized = types.serialize_cdr(msg, "sensor_msgs/msg/Image", little_endian=False)
    assert serialized[1] == 0x00  # CDR_BE
    parsed = parse_image(serialized)
    assert (parsed.header.stamp.sec, parsed.header.stamp.nanosec, parsed.header.frame_id) == (70_000, 5, "ab")
    assert (parsed.height, parsed.width, parsed.step) == (2, 3, 9)
    np.testing.assert_array_equal(image_to_rgb(parsed), pixels)


def test_bytes_that_are_no_image_raise_image_decode_errors():
    serialized = serialize_message(image_msg("cam", "rgb8", np.zeros((4, 4, 3), np.uint8)))
    with pytest.raises(ImageDecodeError, match="truncated"):
        parse_image(serialized[:-5])
    with pytest.raises(ImageDecodeError, match="truncated"):
        parse_image(serialized[:10])
    with pytest.raises(ImageDecodeError, match="not a CDR-serialised message"):
        parse_image(b"\x12\x34\x00\x00" + serialized[4:])
    with pytest.raises(ImageDecodeError, match="not a CDR-serialised message"):
        parse_image(b"")
    huge_count = bytearray(serialized)
    huge_count[-48 - 4:-48] = (2**31).to_bytes(4, "little")  # the data length field claims 2 GB
    with pytest.raises(ImageDecodeError, match="truncated"):
        parse_image(bytes(huge_count))
