"""A KITTI raw ``_sync`` drive as a rosbag2 (mcap or sqlite3), written with the ``rosbags`` library.

    python -m urcdc_ros.kitti_to_bag --drive 2011_09_26/2011_09_26_drive_0001_sync --output drive_0001

Topics follow kitti2bag so existing RViz layouts and scripts keep working:

| topic | type | from |
|---|---|---|
| ``/kitti/camera_color_left/image_raw`` | Image rgb8 | ``image_02/data/*.png`` |
| ``/kitti/camera_color_left/camera_info`` | CameraInfo | ``calib_cam_to_cam.txt``: K, P = P_rect_02, R = R_rect_02, D = 0 |
| ``/kitti/camera_color_right/…`` | same | ``image_03`` (``--cameras 2,3``) |
| ``/kitti/camera_gray_left/…``, ``…_right/…`` | Image mono8 | ``image_00``, ``image_01`` (``--cameras 0,1``) |
| ``/kitti/velo/pointcloud`` | PointCloud2 x,y,z,intensity | ``velodyne_points/data/*.bin`` |
| ``/kitti/camera_color_left/depth_gt`` | Image 32FC1 metres, NaN = none | annotated PNGs or projected LiDAR |
| ``/tf_static`` | TFMessage, latched | ``velo_link`` -> each camera's optical frame (needs ``calib_velo_to_cam.txt``) |

D is zero because ``_sync`` images are already rectified; R and P are what kitti2bag writes, so
``image_geometry`` projects exactly as KITTI's devkit does. Header stamps come from each sensor's
``timestamps.txt`` (read as UTC, nanoseconds kept), the bag's log time equals the header stamp, and
frames are matched to timestamp lines by their file number (``0000000050.png`` ↔ line 50), so a
drive holding only some frames still gets their true times. Frame ids are the REP 103 optical frames
(``camera_color_left_optical_frame``, …) and ``velo_link``.

``--ros-distro`` (default humble) picks the rosbag2 metadata: Humble's version 5, which Humble,
Jazzy and Kilted all read, or version 9 as Jazzy and Kilted write it themselves (``bag_metadata``).
The payload is the same either way.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
from scipy.spatial.transform import Rotation
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from tqdm import tqdm

from urcdc_model import cli
from urcdc_model.data import calib as kitti_calib
from urcdc_ros.bag_metadata import ROS_DISTROS, BagMetadataError, rosbags_writer_version, write_for_distro

# Humble's definitions: the oldest distro we support, identical for these types in Jazzy and Kilted.
TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)
# Version-5 metadata (Humble's): every supported distro reads it (urcdc_ros.bag_metadata).
DEFAULT_ROS_DISTRO = "humble"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
GT_SOURCES = ("auto", "annotated", "velodyne", "none")
ANNOTATED_DEPTH_SCALE = 256.0  # KITTI depth benchmark: uint16 PNG, metres = value / 256, 0 = none
VELO_TOPIC = "/kitti/velo/pointcloud"
VELO_FRAME = "velo_link"
TF_STATIC_TOPIC = "/tf_static"
_FOREVER = QosTime(sec=2147483647, nsec=4294967295)  # rosbag2's "infinite" duration
# What tf2's static broadcaster offers, so `ros2 bag play` re-publishes /tf_static latched.
TF_STATIC_QOS = Qos(history=QosHistory.KEEP_LAST, depth=1, reliability=QosReliability.RELIABLE,
                    durability=QosDurability.TRANSIENT_LOCAL, deadline=_FOREVER, lifespan=_FOREVER,
                    liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_FOREVER,
                    avoid_ros_namespace_conventions=False)
# What `ros2 bag record` stores for a default (reliable, volatile) publisher, e.g. a camera driver: the
# writer's history is not visible to a recorder, hence UNKNOWN. Played back reliable and volatile;
# an empty offer list is what rosbags writes otherwise, which older players may not parse.
SENSOR_QOS = Qos(history=QosHistory.UNKNOWN, depth=0, reliability=QosReliability.RELIABLE,
                 durability=QosDurability.VOLATILE, deadline=_FOREVER, lifespan=_FOREVER,
                 liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_FOREVER,
                 avoid_ros_namespace_conventions=False)


@dataclass(frozen=True)
class CameraSpec:
    """One KITTI camera as kitti2bag names it."""

    index: int
    name: str  # camera_color_left, ...
    encoding: str  # what the bag carries: rgb8 for colour cameras, mono8 for the grey ones

    @property
    def topic_prefix(self) -> str:
        return f"/kitti/{self.name}"

    @property
    def image_topic(self) -> str:
        return f"{self.topic_prefix}/image_raw"

    @property
    def info_topic(self) -> str:
        return f"{self.topic_prefix}/camera_info"

    @property
    def gt_topic(self) -> str:
        return f"{self.topic_prefix}/depth_gt"

    @property
    def frame_id(self) -> str:
        return f"{self.name}_optical_frame"

    @property
    def folder(self) -> str:
        return f"image_{self.index:02d}"


CAMERAS = {
    0: CameraSpec(0, "camera_gray_left", "mono8"),
    1: CameraSpec(1, "camera_gray_right", "mono8"),
    2: CameraSpec(2, "camera_color_left", "rgb8"),
    3: CameraSpec(3, "camera_color_right", "rgb8"),
}
# Ground truth belongs to the left colour camera, as in the KITTI depth benchmark.
GT_CAMERA = CAMERAS[2]


class DriveError(ValueError):
    """A drive folder that cannot be converted; the message names the file and the fix."""


@dataclass
class BagSummary:
    """What was written: message counts per topic and the header stamps of the GT camera's frames."""

    path: Path
    storage: str
    counts: dict[str, int] = field(default_factory=dict)
    frame_stamps_ns: list[int] = field(default_factory=list)
    gt_source: str = "none"
    ros_distro: str = DEFAULT_ROS_DISTRO
    metadata_version: int = 0


# ---------------------------------------------------------------------------------------------
# Reading the drive


def read_timestamps_ns(path: Path) -> list[int | None]:
    """``timestamps.txt`` as UTC nanoseconds since the epoch; blank lines (KITTI has some) become None."""
    if not path.is_file():
        raise DriveError(f"{path}: missing; every KITTI sensor folder has a timestamps.txt")
    stamps: list[int | None] = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            stamps.append(None)
            continue
        try:
            stamps.append(int(np.datetime64(text.replace(" ", "T"), "ns").astype(np.int64)))
        except ValueError as err:
            raise DriveError(f"{path}:{line_no}: '{text}' is not a 'YYYY-MM-DD hh:mm:ss.fffffffff' time") from err
    return stamps


def frame_number(path: Path) -> int:
    """KITTI names frames by their index in the drive: 0000000050.png is frame 50."""
    try:
        return int(path.stem)
    except ValueError as err:
        raise DriveError(f"{path}: file name is not a KITTI frame number like 0000000050") from err


def list_frames(folder: Path, suffix: str) -> list[Path]:
    if not folder.is_dir():
        raise DriveError(f"{folder}: missing folder")
    files = sorted(folder.glob(f"*{suffix}"))
    if not files:
        raise DriveError(f"{folder}: no *{suffix} files")
    return files


def stamp_of(path: Path, stamps_ns: Sequence[int | None], stamps_file: Path) -> int:
    number = frame_number(path)
    if number >= len(stamps_ns) or stamps_ns[number] is None:
        raise DriveError(f"{stamps_file}: no time for frame {number} ({path.name}); the file has "
                         f"{len(stamps_ns)} lines, one per frame of the drive")
    return int(stamps_ns[number])


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DriveError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def read_gray(path: Path) -> np.ndarray:
    gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if gray is None:
        raise DriveError(f"{path}: not a readable image")
    return gray


def read_annotated_depth_m(path: Path) -> np.ndarray:
    """A KITTI annotated depth PNG as float32 metres with NaN where there is no measurement."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise DriveError(f"{path}: not a single-channel 16-bit depth PNG (KITTI annotated depth)")
    depth_m = raw.astype(np.float32) / ANNOTATED_DEPTH_SCALE
    depth_m[raw == 0] = np.nan
    return depth_m


def read_velodyne(path: Path) -> np.ndarray:
    points = np.fromfile(path, dtype=np.float32)
    if points.size % 4:
        raise DriveError(f"{path}: {points.size} floats is not N x 4 (x, y, z, reflectance)")
    return points.reshape(-1, 4)


def date_folder(drive_dir: Path) -> Path:
    """The folder with the calibration files: the drive's parent, as in KITTI's raw download."""
    return drive_dir.parent


def load_calibrations(calib_dir: Path, cameras: Sequence[int]) -> dict[int, tuple[kitti_calib.CameraCalibration,
                                                                                   np.ndarray]]:
    """Per camera: its rectified calibration and its own R_rect_0X (what kitti2bag writes as CameraInfo.R)."""
    path = calib_dir / kitti_calib.CAM_TO_CAM_FILE
    try:
        entries = kitti_calib.read_calib_file(path)
        calibrations = {}
        for index in cameras:
            key = f"R_rect_0{index}"
            if key not in entries:
                raise KeyError(f"{path}: no {key} line")
            calibrations[index] = (kitti_calib.load_raw_calibration(calib_dir, camera=index),
                                   np.asarray(entries[key], dtype=np.float64).reshape(3, 3))
    except (FileNotFoundError, KeyError, ValueError) as err:
        message = err.args[0] if err.args else str(err)
        raise DriveError(f"{message} (KITTI raw calibration files live in the drive's date folder)") from err
    return calibrations


# ---------------------------------------------------------------------------------------------
# Messages (rosbags dataclasses, serialised to CDR)


def header(stamp_ns: int, frame_id: str):
    t = TYPESTORE.types
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
        frame_id=frame_id)


def image_message(pixels: np.ndarray, encoding: str, stamp_ns: int, frame_id: str):
    pixels = np.ascontiguousarray(pixels)
    height, width = pixels.shape[:2]
    return TYPESTORE.types["sensor_msgs/msg/Image"](
        header=header(stamp_ns, frame_id), height=height, width=width, encoding=encoding,
        is_bigendian=int(sys.byteorder == "big"), step=pixels.strides[0],
        data=pixels.reshape(-1).view(np.uint8))


def camera_info_message(projection: np.ndarray, rectification: np.ndarray, width: int, height: int,
                        stamp_ns: int, frame_id: str):
    """CameraInfo of a rectified image: K = P[:, :3], D = 0 (plumb_bob), R and P as calibrated."""
    t = TYPESTORE.types
    return t["sensor_msgs/msg/CameraInfo"](
        header=header(stamp_ns, frame_id), height=height, width=width, distortion_model="plumb_bob",
        d=np.zeros(5), k=np.asarray(projection[:, :3], dtype=np.float64).reshape(-1),
        r=np.asarray(rectification, dtype=np.float64).reshape(-1),
        p=np.asarray(projection, dtype=np.float64).reshape(-1), binning_x=0, binning_y=0,
        roi=t["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def pointcloud_message(points: np.ndarray, stamp_ns: int, frame_id: str):
    """Velodyne points as an unorganised PointCloud2 with x, y, z, intensity float32 (kitti2bag's layout)."""
    t = TYPESTORE.types
    field_type = t["sensor_msgs/msg/PointField"]
    fields = [field_type(name=name, offset=4 * i, datatype=field_type.FLOAT32, count=1)
              for i, name in enumerate(("x", "y", "z", "intensity"))]
    data = np.ascontiguousarray(points, dtype="<f4")
    return t["sensor_msgs/msg/PointCloud2"](
        header=header(stamp_ns, frame_id), height=1, width=len(data), fields=fields, is_bigendian=False,
        point_step=16, row_step=16 * len(data), data=data.reshape(-1).view(np.uint8), is_dense=False)


def camera_from_velo(calibration: kitti_calib.CameraCalibration) -> np.ndarray:
    """4x4 transform taking Velodyne points into the camera's rectified optical frame.

    P_rect = K [I | t], so the camera sits at -t in the rectified reference frame: t = K^-1 P[:, 3].
    """
    shift = np.eye(4)
    shift[:3, 3] = np.linalg.solve(calibration.intrinsics, calibration.projection[:, 3])
    return shift @ calibration.rectification @ calibration.velo_to_cam


def tf_static_message(transforms: dict[str, np.ndarray], parent: str, stamp_ns: int):
    """A TFMessage with ``parent`` -> child transforms (each 4x4 maps child points into ``parent``)."""
    t = TYPESTORE.types
    stamped = []
    for child, matrix in transforms.items():
        x, y, z, w = Rotation.from_matrix(matrix[:3, :3]).as_quat()  # nearest rotation to the calibrated one
        stamped.append(t["geometry_msgs/msg/TransformStamped"](
            header=header(stamp_ns, parent), child_frame_id=child,
            transform=t["geometry_msgs/msg/Transform"](
                translation=t["geometry_msgs/msg/Vector3"](x=float(matrix[0, 3]), y=float(matrix[1, 3]),
                                                           z=float(matrix[2, 3])),
                rotation=t["geometry_msgs/msg/Quaternion"](x=float(x), y=float(y), z=float(z), w=float(w)))))
    return t["tf2_msgs/msg/TFMessage"](transforms=stamped)


# ---------------------------------------------------------------------------------------------
# Conversion


def _parse_cameras(text: str) -> tuple[int, ...]:
    try:
        cameras = tuple(int(c) for c in text.split(",") if c.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--cameras '{text}': give KITTI camera numbers like 2 or 2,3") from err
    bad = [c for c in cameras if c not in CAMERAS]
    if bad or not cameras:
        raise argparse.ArgumentTypeError(f"--cameras '{text}': cameras are 0, 1 (grey), 2, 3 (colour)")
    return cameras


def resolve_gt_source(gt: str, drive_dir: Path, gt_dir: Path | None) -> str:
    """``auto`` picks annotated PNGs when present, else projected LiDAR, else no ground truth."""
    annotated = gt_dir or drive_dir / "proj_depth" / "groundtruth" / GT_CAMERA.folder
    velodyne = drive_dir / "velodyne_points" / "data"
    if gt == "auto":
        return "annotated" if annotated.is_dir() else ("velodyne" if velodyne.is_dir() else "none")
    if gt == "annotated" and not annotated.is_dir():
        raise DriveError(f"{annotated}: missing; --gt annotated needs the KITTI depth benchmark PNGs there "
                         "(or give --gt-dir, or use --gt velodyne)")
    if gt == "velodyne" and not velodyne.is_dir():
        raise DriveError(f"{velodyne}: missing; --gt velodyne needs the drive's velodyne_points")
    return gt


def _select(frames: list[Path], max_frames: int | None) -> list[Path]:
    return frames if max_frames is None else frames[:max_frames]


def convert_drive(drive_dir: str | Path, output: str | Path, storage: str = "mcap", gt: str = "auto",
                  cameras: Iterable[int] = (2,), velodyne: bool = True, max_frames: int | None = None,
                  gt_dir: str | Path | None = None, progress: bool = True,
                  ros_distro: str = DEFAULT_ROS_DISTRO) -> BagSummary:
    """Write ``drive_dir`` (``<date>/<date>_drive_XXXX_sync``) as a rosbag2 folder at ``output``.

    storage: ``mcap`` or ``sqlite3``. gt: ``auto`` | ``annotated`` | ``velodyne`` | ``none``.
    cameras: KITTI camera numbers (2 = left colour). velodyne: write ``/kitti/velo/pointcloud``
    when the drive has LiDAR scans. max_frames: only the first N frames of each sensor.
    gt_dir: annotated PNG folder when it is not ``<drive>/proj_depth/groundtruth/image_02``.
    ros_distro: humble (metadata version 5, read by every distro) | jazzy | kilted (version 9).
    """
    drive_dir, output = Path(drive_dir), Path(output)
    if not drive_dir.is_dir():
        raise DriveError(f"{drive_dir}: no such drive folder; expected <root>/<date>/<date>_drive_XXXX_sync")
    if storage not in STORAGES:
        raise DriveError(f"storage '{storage}': choose one of {', '.join(STORAGES)}")
    if gt not in GT_SOURCES:
        raise DriveError(f"gt '{gt}': choose one of {', '.join(GT_SOURCES)}")
    if ros_distro not in ROS_DISTROS:
        raise DriveError(f"ros_distro '{ros_distro}': choose one of {', '.join(ROS_DISTROS)}")
    if output.exists():
        raise DriveError(f"{output}: already exists; rosbag2 writes a new folder, remove it or pick another name")
    cameras = tuple(cameras)
    gt_dir = Path(gt_dir) if gt_dir else None
    gt_source = resolve_gt_source(gt, drive_dir, gt_dir)
    calibrations = load_calibrations(date_folder(drive_dir), cameras)
    velo_dir = drive_dir / "velodyne_points"
    write_velodyne = velodyne and (velo_dir / "data").is_dir()
    if gt_source == "velodyne" and calibrations[GT_CAMERA.index][0].velo_to_cam is None:
        raise DriveError(f"{date_folder(drive_dir) / kitti_calib.VELO_TO_CAM_FILE}: missing; --gt velodyne "
                         "needs it to project the scans")

    # Check every input before the bag exists, so a bad drive leaves no half-written bag behind.
    camera_frames = {}
    for index in cameras:
        spec = CAMERAS[index]
        folder = drive_dir / spec.folder
        stamps_file = folder / "timestamps.txt"
        stamps = read_timestamps_ns(stamps_file)
        frames = _select(list_frames(folder / "data", ".png"), max_frames)
        camera_frames[index] = [(path, stamp_of(path, stamps, stamps_file)) for path in frames]
    velo_frames = []
    if write_velodyne or gt_source == "velodyne":
        stamps_file = velo_dir / "timestamps.txt"
        stamps = read_timestamps_ns(stamps_file)
        velo_frames = [(path, stamp_of(path, stamps, stamps_file))
                       for path in _select(list_frames(velo_dir / "data", ".bin"), max_frames)]
    if gt_source != "none" and GT_CAMERA.index not in cameras:
        raise DriveError(f"ground truth is for camera {GT_CAMERA.index}; add it to --cameras or use --gt none")

    summary = BagSummary(path=output, storage=storage, gt_source=gt_source, ros_distro=ros_distro)
    summary.frame_stamps_ns = [stamp for _, stamp in camera_frames.get(GT_CAMERA.index, [])]
    total = sum(len(f) for f in camera_frames.values()) + (len(velo_frames) if write_velodyne else 0)
    output.parent.mkdir(parents=True, exist_ok=True)
    with Writer(output, version=rosbags_writer_version(ros_distro), storage_plugin=STORAGES[storage]) as writer, \
            tqdm(total=total, desc=f"kitti_to_bag {drive_dir.name}", unit="frame", disable=not progress) as bar:

        def add(topic: str, msgtype: str, qos: Sequence[Qos] = (SENSOR_QOS,)):
            return writer.add_connection(topic, msgtype, typestore=TYPESTORE, offered_qos_profiles=qos)

        def write(connection, msg, stamp_ns: int) -> None:
            writer.write(connection, stamp_ns, TYPESTORE.serialize_cdr(msg, connection.msgtype))
            summary.counts[connection.topic] = summary.counts.get(connection.topic, 0) + 1

        first_stamp = min(stamp for frames in camera_frames.values() for _, stamp in frames)
        if all(calibration.velo_to_cam is not None for calibration, _ in calibrations.values()):
            # velo_link -> each camera's optical frame, so the LiDAR and the cameras overlay in RViz
            transforms = {CAMERAS[i].frame_id: np.linalg.inv(camera_from_velo(calibration))
                          for i, (calibration, _) in calibrations.items()}
            write(add(TF_STATIC_TOPIC, "tf2_msgs/msg/TFMessage", [TF_STATIC_QOS]),
                  tf_static_message(transforms, VELO_FRAME, first_stamp), first_stamp)
        for index, frames in camera_frames.items():
            spec = CAMERAS[index]
            calibration, rectification = calibrations[index]
            image_conn = add(spec.image_topic, "sensor_msgs/msg/Image")
            info_conn = add(spec.info_topic, "sensor_msgs/msg/CameraInfo")
            gt_conn = add(spec.gt_topic, "sensor_msgs/msg/Image") if (
                index == GT_CAMERA.index and gt_source != "none") else None
            velo_by_number = {frame_number(p): p for p, _ in velo_frames}
            for path, stamp_ns in frames:
                pixels = read_rgb(path) if spec.encoding == "rgb8" else read_gray(path)
                height, width = pixels.shape[:2]
                write(image_conn, image_message(pixels, spec.encoding, stamp_ns, spec.frame_id), stamp_ns)
                write(info_conn, camera_info_message(calibration.projection, rectification, width, height,
                                                     stamp_ns, spec.frame_id), stamp_ns)
                if gt_conn is not None:
                    depth_m = _ground_truth_m(gt_source, path, drive_dir, gt_dir, velo_by_number, calibration,
                                              (height, width))
                    if depth_m is not None:
                        write(gt_conn, image_message(depth_m, "32FC1", stamp_ns, spec.frame_id), stamp_ns)
                bar.update()
        if write_velodyne:
            velo_conn = add(VELO_TOPIC, "sensor_msgs/msg/PointCloud2")
            for path, stamp_ns in velo_frames:
                write(velo_conn, pointcloud_message(read_velodyne(path), stamp_ns, VELO_FRAME), stamp_ns)
                bar.update()
    try:
        summary.metadata_version = int(write_for_distro(output, ros_distro)["version"])
    except BagMetadataError as error:  # rosbags wrote something unexpected: say so, naming the file
        raise DriveError(str(error)) from error
    return summary


def _ground_truth_m(source: str, image_path: Path, drive_dir: Path, gt_dir: Path | None,
                    velo_by_number: dict[int, Path], calibration: kitti_calib.CameraCalibration,
                    image_size: tuple[int, int]) -> np.ndarray | None:
    """GT depth for one frame, or None when that frame has none (the annotated set skips drive ends)."""
    if source == "annotated":
        path = (gt_dir or drive_dir / "proj_depth" / "groundtruth" / GT_CAMERA.folder) / image_path.name
        if not path.is_file():
            return None
        depth_m = read_annotated_depth_m(path)
        if depth_m.shape != image_size:
            raise DriveError(f"{path}: GT is {depth_m.shape[1]}x{depth_m.shape[0]}, "
                             f"image is {image_size[1]}x{image_size[0]}")
        return depth_m
    scan_path = velo_by_number.get(frame_number(image_path))
    if scan_path is None:
        return None
    depth_m = kitti_calib.project_velodyne_to_depth(read_velodyne(scan_path), calibration, image_size)
    depth_m[~(depth_m > 0)] = np.nan
    return depth_m


# ---------------------------------------------------------------------------------------------
# CLI


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_ros.kitti_to_bag", "Write a KITTI raw _sync drive as a rosbag2 (kitti2bag topic "
                            "names).", script="urcdc-kitti2bag")
    parser.add_argument("--drive", required=True, type=Path,
                        help="drive folder <root>/<date>/<date>_drive_XXXX_sync (calibration files in <root>/<date>)")
    parser.add_argument("--output", required=True, type=Path, help="bag folder to create (must not exist)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="rosbag2 storage plugin")
    parser.add_argument("--gt", choices=GT_SOURCES, default="auto",
                        help="ground-truth depth: annotated PNGs (proj_depth/groundtruth/image_02), projected "
                             "LiDAR, none; auto = annotated if present, else velodyne, else none")
    parser.add_argument("--gt-dir", type=Path, default=None,
                        help="annotated GT folder when it lives outside the drive "
                             "(data_depth_annotated/train/<drive>/proj_depth/groundtruth/image_02)")
    parser.add_argument("--cameras", type=_parse_cameras, default=(2,),
                        help="KITTI cameras, comma separated: 0, 1 grey; 2 left colour; 3 right colour (default: 2)")
    parser.add_argument("--no-velodyne", dest="velodyne", action="store_false",
                        help="leave /kitti/velo/pointcloud out (it is written when the drive has velodyne_points)")
    parser.add_argument("--max-frames", type=int, default=None, metavar="N",
                        help="use only the first N frames (of each sensor)")
    parser.add_argument("--ros-distro", choices=ROS_DISTROS, default=DEFAULT_ROS_DISTRO,
                        help="rosbag2 metadata for this distro: humble = version 5, read by Humble, Jazzy and "
                             "Kilted (default); jazzy, kilted = version 9, as they write it themselves")
    cli.add_no_progress(parser, old_name="--quiet")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.max_frames is not None and args.max_frames < 1:
        print("error: --max-frames must be >= 1", file=sys.stderr)
        return 2
    try:
        summary = convert_drive(args.drive, args.output, storage=args.storage, gt=args.gt, cameras=args.cameras,
                                velodyne=args.velodyne, max_frames=args.max_frames, gt_dir=args.gt_dir,
                                progress=not args.no_progress, ros_distro=args.ros_distro)
    except DriveError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"wrote {summary.path} ({summary.storage}, metadata version {summary.metadata_version} for "
          f"{summary.ros_distro}, ground truth: {summary.gt_source})")
    for topic, count in sorted(summary.counts.items()):
        print(f"  {topic:45s} {count:6d} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
