"""Preload camera frames, their camera_info and ground-truth depth from a bag (no ROS graph needed).

Reads rosbag2 folders (mcap or sqlite3, e.g. from ``urcdc-kitti2bag`` or
``ros2 bag record`` on Humble, Jazzy or Kilted: metadata versions up to 9), lone ``.mcap`` files (kitti2mcap) and ROS 1 ``.bag`` files (kitti2bag) through
``rosbags.highlevel.AnyReader``.
Images may be raw (any encoding ``image_codec`` knows) or CompressedImage (jpeg/png, decoded to
rgb8). Ground truth may be 32FC1 metres (NaN or 0 = none) or 16UC1 millimetres (REP 118).
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from urcdc_ros.image_codec import ImageDecodeError, compressed_to_rgb, image_to_array, image_to_rgb

DEFAULT_IMAGE_TOPIC = "/kitti/camera_color_left/image_raw"
DEFAULT_INFO_TOPIC = "/kitti/camera_color_left/camera_info"
DEFAULT_GT_TOPIC = "/kitti/camera_color_left/depth_gt"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
# GT and images from one recording share stamps; this allows for drivers that round them differently.
GT_MATCH_TOLERANCE_NS = 1_000_000
# Humble's sqlite3 bags carry no message definitions (Iron added them): read those with Humble's.
HUMBLE_TYPES = get_typestore(Stores.ROS2_HUMBLE)


class BagTopicError(ValueError):
    """A topic the replay needs is missing from the bag or has the wrong type; lists what the bag has."""


@dataclass
class CameraInfoData:
    """The fields of a sensor_msgs/CameraInfo, independent of the message library that read it."""

    frame_id: str
    width: int
    height: int
    distortion_model: str
    d: np.ndarray
    k: np.ndarray  # 9
    r: np.ndarray  # 9
    p: np.ndarray  # 12
    binning_x: int = 0
    binning_y: int = 0


@dataclass
class BagFrame:
    """One camera frame ready to publish: pixels in the bag's own encoding, plus what goes with it."""

    stamp_ns: int
    frame_id: str
    encoding: str
    pixels: np.ndarray  # H x W (x C), contiguous, in ``encoding``
    camera_info: CameraInfoData | None = None
    gt_depth_m: np.ndarray | None = None  # H x W float32, NaN = no ground truth

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def rgb(self) -> np.ndarray:
        """The frame as H x W x 3 uint8 RGB (for pictures)."""
        return np.ascontiguousarray(image_to_rgb(_ArrayImage(self.pixels, self.encoding)))


@dataclass
class BagContents:
    """Frames in stamp order and where they came from."""

    path: Path
    image_topic: str
    info_topic: str | None
    gt_topic: str | None
    frames: list[BagFrame] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)  # every topic of the bag -> message type

    @property
    def frames_with_gt(self) -> int:
        return sum(f.gt_depth_m is not None for f in self.frames)

    @property
    def duration_s(self) -> float:
        if len(self.frames) < 2:
            return 0.0
        return (self.frames[-1].stamp_ns - self.frames[0].stamp_ns) / 1e9


@dataclass
class _ArrayImage:
    """Duck-types the Image fields image_codec reads, for an array we already hold."""

    pixels: np.ndarray
    encoding: str

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    @property
    def step(self) -> int:
        return self.pixels.strides[0]

    @property
    def is_bigendian(self) -> int:
        return int(self.pixels.dtype.byteorder == ">")

    @property
    def data(self) -> np.ndarray:
        return self.pixels.reshape(-1).view(np.uint8)


def _stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    # ROS 1 messages read by rosbags carry sec/nanosec too; guard against secs/nsecs spellings anyway.
    sec = getattr(stamp, "sec", getattr(stamp, "secs", 0))
    nanosec = getattr(stamp, "nanosec", getattr(stamp, "nsecs", 0))
    return int(sec) * 1_000_000_000 + int(nanosec)


def _field(msg: Any, name: str) -> Any:
    """ROS 2 spells CameraInfo arrays d/k/r/p, ROS 1 D/K/R/P."""
    return getattr(msg, name) if hasattr(msg, name) else getattr(msg, name.upper())


def camera_info_data(msg: Any) -> CameraInfoData:
    return CameraInfoData(
        frame_id=str(msg.header.frame_id), width=int(msg.width), height=int(msg.height),
        distortion_model=str(msg.distortion_model),
        d=np.asarray(_field(msg, "d"), dtype=np.float64), k=np.asarray(_field(msg, "k"), dtype=np.float64),
        r=np.asarray(_field(msg, "r"), dtype=np.float64), p=np.asarray(_field(msg, "p"), dtype=np.float64),
        binning_x=int(msg.binning_x), binning_y=int(msg.binning_y))


def decode_gt_depth_m(msg: Any, where: str) -> np.ndarray:
    """A depth Image as float32 metres, NaN where there is no ground truth."""
    try:
        values = image_to_array(msg)
    except ImageDecodeError as err:
        raise ValueError(f"{where}: {err}") from err
    if msg.encoding == "32FC1":
        depth_m = np.array(values, dtype=np.float32)
    elif msg.encoding in ("16UC1", "mono16"):
        depth_m = values.astype(np.float32) / 1000.0  # REP 118: unsigned 16-bit depth is millimetres
    else:
        raise ValueError(f"{where}: ground-truth encoding '{msg.encoding}'; expected 32FC1 metres or 16UC1 mm")
    depth_m[~np.isfinite(depth_m) | (depth_m <= 0)] = np.nan
    return depth_m


def _decode_frame(msg: Any, msgtype: str, where: str) -> tuple[str, np.ndarray]:
    try:
        if msgtype.endswith("CompressedImage"):
            return "rgb8", np.ascontiguousarray(compressed_to_rgb(msg))
        return str(msg.encoding), np.ascontiguousarray(image_to_array(msg))
    except ImageDecodeError as err:
        raise ValueError(f"{where}: {err}") from err


def _topic_listing(topics: dict[str, str], counts: dict[str, int]) -> str:
    return "\n".join(f"  {name}  [{msgtype}, {counts.get(name, 0)} messages]"
                     for name, msgtype in sorted(topics.items()))


def _require(topic: str, expected: tuple[str, ...], topics: dict[str, str], counts: dict[str, int],
             option: str, path: Path) -> None:
    if topic not in topics:
        raise BagTopicError(f"{path}: no topic '{topic}' ({option}); the bag has:\n{_topic_listing(topics, counts)}")
    if topics[topic] not in expected:
        raise BagTopicError(f"{path}: topic '{topic}' ({option}) is {topics[topic]}, expected "
                            f"{' or '.join(expected)}; the bag has:\n{_topic_listing(topics, counts)}")


def load_bag(path: str | Path, image_topic: str = DEFAULT_IMAGE_TOPIC, info_topic: str | None = DEFAULT_INFO_TOPIC,
             gt_topic: str | None = None, max_frames: int | None = None) -> BagContents:
    """Read the frames of ``image_topic`` with their camera_info and ground truth into memory.

    info_topic: None or "" to replay images only. gt_topic: None = the KITTI GT topic if the bag has
    it, "" = ignore ground truth, a name = required. Raises BagTopicError naming what the bag has.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such bag (a rosbag2 folder or a ROS 1 .bag file)")
    try:
        reader = AnyReader([path], default_typestore=HUMBLE_TYPES)
        reader.open()
    except Exception as err:  # rosbags raises several reader-specific types for unreadable bags
        raise ValueError(f"{path}: not a readable rosbag2 folder or ROS 1 bag ({err})") from err
    try:
        topics = {name: info.msgtype for name, info in reader.topics.items()}
        counts = {name: info.msgcount for name, info in reader.topics.items()}
        _require(image_topic, IMAGE_TYPES, topics, counts, "--image-topic", path)
        if info_topic:
            _require(info_topic, ("sensor_msgs/msg/CameraInfo",), topics, counts, "--info-topic", path)
        if gt_topic is None:
            gt_topic = DEFAULT_GT_TOPIC if DEFAULT_GT_TOPIC in topics else ""
        if gt_topic:
            _require(gt_topic, ("sensor_msgs/msg/Image",), topics, counts, "--gt-topic", path)
        contents = BagContents(path=path, image_topic=image_topic, info_topic=info_topic or None,
                               gt_topic=gt_topic or None, topics=topics)

        wanted = [c for c in reader.connections if c.topic in {image_topic, info_topic, gt_topic}]
        infos: list[tuple[int, CameraInfoData]] = []
        gts: list[tuple[int, Any]] = []  # (stamp, raw msg) decoded only when matched to a frame
        for connection, _, rawdata in reader.messages(connections=wanted):
            msg = reader.deserialize(rawdata, connection.msgtype)
            stamp_ns = _stamp_ns(msg)
            if connection.topic == image_topic:
                if max_frames is not None and len(contents.frames) >= max_frames:
                    continue
                where = f"{path}: {image_topic} at stamp {stamp_ns}"
                encoding, pixels = _decode_frame(msg, connection.msgtype, where)
                contents.frames.append(BagFrame(stamp_ns=stamp_ns, frame_id=str(msg.header.frame_id),
                                                encoding=encoding, pixels=pixels))
            elif connection.topic == info_topic:
                infos.append((stamp_ns, camera_info_data(msg)))
            else:
                gts.append((stamp_ns, msg))
    finally:
        reader.close()

    if not contents.frames:
        raise BagTopicError(f"{path}: topic '{image_topic}' has no messages")
    contents.frames.sort(key=lambda f: f.stamp_ns)
    _attach_camera_info(contents.frames, infos)
    _attach_ground_truth(contents.frames, gts, f"{path}: {gt_topic}")
    return contents


def _attach_camera_info(frames: list[BagFrame], infos: list[tuple[int, CameraInfoData]]) -> None:
    """Each frame gets the camera_info with its stamp, else the latest one before it, else the first."""
    if not infos:
        return
    infos.sort(key=lambda item: item[0])
    stamps = [s for s, _ in infos]
    for frame in frames:
        i = bisect.bisect_right(stamps, frame.stamp_ns) - 1
        frame.camera_info = infos[max(i, 0)][1]


def _attach_ground_truth(frames: list[BagFrame], gts: list[tuple[int, Any]], where: str) -> None:
    if not gts:
        return
    gts.sort(key=lambda item: item[0])
    stamps = np.array([s for s, _ in gts], dtype=np.int64)
    for frame in frames:
        i = int(np.argmin(np.abs(stamps - frame.stamp_ns)))
        if abs(int(stamps[i]) - frame.stamp_ns) > GT_MATCH_TOLERANCE_NS:
            continue
        depth_m = decode_gt_depth_m(gts[i][1], f"{where} at stamp {stamps[i]}")
        if depth_m.shape != (frame.height, frame.width):
            raise ValueError(f"{where} at stamp {stamps[i]}: GT is {depth_m.shape[1]}x{depth_m.shape[0]}, "
                             f"the image is {frame.width}x{frame.height}")
        frame.gt_depth_m = depth_m
