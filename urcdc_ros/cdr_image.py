"""sensor_msgs/Image and CompressedImage (and any message's leading Header) read from serialized CDR bytes.

The node subscribes its image topic with ``raw=True``: rclpy then hands over the serialized bytes
(one copy out of the middleware) instead of deserialising into a C message and converting that
into a Python message with an ``array.array`` payload (three more copies of every frame and a
Python object per field). The pixels are a view into those bytes. No ROS state here.

Layout (OMG CDR, as rmw serialises ROS 2 messages): a 4-byte encapsulation header (byte order,
plain CDR or XCDR2, which coincide for these types: no member is wider than 4 bytes and ROS types
are final), then the fields in order, each aligned to its size from the end of that header;
strings are a uint32 length that counts a terminating NUL, sequences a uint32 element count.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from urcdc_ros.image_codec import ImageDecodeError

# encapsulation kind (2nd byte of the header) -> struct byte order: CDR_BE, CDR_LE, PLAIN_CDR2_BE, PLAIN_CDR2_LE
BYTE_ORDERS = {0x00: ">", 0x01: "<", 0x06: ">", 0x07: "<"}
ENCAPSULATION_BYTES = 4


@dataclass(frozen=True)
class Stamp:
    sec: int
    nanosec: int


@dataclass(frozen=True)
class RawHeader:
    stamp: Stamp
    frame_id: str


@dataclass(frozen=True)
class RawImage:
    """The fields of a sensor_msgs/Image; ``data`` is a view into the serialized message."""

    header: RawHeader
    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: memoryview


@dataclass(frozen=True)
class RawCompressedImage:
    """The fields of a sensor_msgs/CompressedImage; ``data`` is a view into the serialized message."""

    header: RawHeader
    format: str
    data: memoryview


class _CdrReader:
    def __init__(self, serialized: bytes | bytearray | memoryview, what: str):
        self.buffer = memoryview(serialized).cast("B")
        self.what = what
        if len(self.buffer) < ENCAPSULATION_BYTES or self.buffer[1] not in BYTE_ORDERS or self.buffer[0] != 0:
            raise ImageDecodeError(f"{what}: not a CDR-serialised message (encapsulation "
                                   f"{bytes(self.buffer[:2]).hex() or 'missing'})")
        self.order = BYTE_ORDERS[self.buffer[1]]
        self.position = ENCAPSULATION_BYTES

    def _take(self, size: int, align: int) -> int:
        self.position += -(self.position - ENCAPSULATION_BYTES) % align
        start = self.position
        if size < 0 or start + size > len(self.buffer):
            raise ImageDecodeError(f"{self.what}: serialized message ends at byte {len(self.buffer)}, "
                                   f"a field needs bytes {start}..{start + size} (truncated)")
        self.position = start + size
        return start

    def uint32(self) -> int:
        return struct.unpack_from(self.order + "I", self.buffer, self._take(4, 4))[0]

    def int32(self) -> int:
        return struct.unpack_from(self.order + "i", self.buffer, self._take(4, 4))[0]

    def uint8(self) -> int:
        return self.buffer[self._take(1, 1)]

    def string(self) -> str:
        length = self.uint32()
        raw = self.buffer[self._take(length, 1):self.position]
        text = bytes(raw[:-1] if length and raw[-1] == 0 else raw)
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as error:
            raise ImageDecodeError(f"{self.what}: a string field is not UTF-8 ({error})") from error

    def octets(self) -> memoryview:
        count = self.uint32()
        start = self._take(count, 1)
        return self.buffer[start:start + count]

    def header(self) -> RawHeader:
        stamp = Stamp(sec=self.int32(), nanosec=self.uint32())
        return RawHeader(stamp=stamp, frame_id=self.string())


def parse_header(serialized: bytes | bytearray | memoryview, what: str = "message") -> RawHeader:
    """The std_msgs/Header that starts a serialized message (Image, CameraInfo, PointCloud2, ...)."""
    return _CdrReader(serialized, what).header()


def parse_image(serialized: bytes | bytearray | memoryview) -> RawImage:
    """A serialized sensor_msgs/Image; raises ImageDecodeError for bytes that cannot be one."""
    reader = _CdrReader(serialized, "sensor_msgs/Image")
    header = reader.header()
    height, width = reader.uint32(), reader.uint32()
    encoding = reader.string()
    is_bigendian = reader.uint8()
    step = reader.uint32()
    return RawImage(header=header, height=height, width=width, encoding=encoding, is_bigendian=is_bigendian,
                    step=step, data=reader.octets())


def parse_compressed_image(serialized: bytes | bytearray | memoryview) -> RawCompressedImage:
    """A serialized sensor_msgs/CompressedImage; raises ImageDecodeError for bytes that cannot be one."""
    reader = _CdrReader(serialized, "sensor_msgs/CompressedImage")
    header = reader.header()
    return RawCompressedImage(header=header, format=reader.string(), data=reader.octets())
