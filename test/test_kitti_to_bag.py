"""KITTI raw drive -> rosbag2: topics, types, counts, stamps, calibration, images and GT read back with rosbags."""
from __future__ import annotations

import calendar
import shutil
import sqlite3
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from scipy.spatial.transform import Rotation

from urcdc_model.data import calib as kitti_calib
from urcdc_model.data.synthetic import write_kitti_drive
from urcdc_ros import kitti_to_bag
from urcdc_ros.bag_metadata import main as metadata_cli
from urcdc_ros.kitti_to_bag import DriveError, convert_drive

DATE = "2011_09_26"
DRIVE = 1
NUM_FRAMES = 4
LEFT = "/kitti/camera_color_left"


def drive_path(root: Path) -> Path:
    return root / DATE / f"{DATE}_drive_{DRIVE:04d}_sync"


@pytest.fixture(scope="module")
def drive(tmp_path_factory, shared_data) -> Path:
    """A procedural drive rendered with the real 2011-09-26 calibration (copied into its date folder)."""
    root = tmp_path_factory.mktemp("kitti_raw")
    return write_kitti_drive(root, date=DATE, drive=DRIVE, num_frames=NUM_FRAMES, seed=3,
                             calib_dir=shared_data / "kitti_raw_calib_2011_09_26")


def calib_line(path: Path, key: str) -> np.ndarray:
    """A calibration entry read straight from the text, independent of the parser under test."""
    for line in path.read_text().splitlines():
        if line.startswith(f"{key}:"):
            return np.array([float(v) for v in line.split(":", 1)[1].split()])
    raise AssertionError(f"{path} has no {key}")


def kitti_time_ns(text: str) -> int:
    """'2011-09-26 13:02:25.964389445' as UTC nanoseconds, by hand."""
    day, clock = text.strip().split(" ")
    hms, fraction = clock.split(".")
    seconds = calendar.timegm(tuple(int(v) for v in day.split("-")) + tuple(int(v) for v in hms.split(":")))
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0")[:9])


def read_bag(path: Path) -> tuple[dict, dict]:
    """topic -> type, and topic -> list of (log time, message)."""
    with AnyReader([path]) as reader:
        types = {name: info.msgtype for name, info in reader.topics.items()}
        messages: dict[str, list] = {}
        for connection, log_time, raw in reader.messages():
            messages.setdefault(connection.topic, []).append(
                (log_time, reader.deserialize(raw, connection.msgtype)))
    return types, messages


def stamp_ns(msg) -> int:
    return msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_conversion_reads_back(drive: Path, tmp_path: Path, storage: str):
    bag = tmp_path / f"bag_{storage}"
    summary = convert_drive(drive, bag, storage=storage, gt="annotated", velodyne=False, progress=False)
    assert summary.gt_source == "annotated"
    types, messages = read_bag(bag)
    tf_static = messages.pop(kitti_to_bag.TF_STATIC_TOPIC)
    assert types.pop(kitti_to_bag.TF_STATIC_TOPIC) == "tf2_msgs/msg/TFMessage" and len(tf_static) == 1
    assert types == {f"{LEFT}/image_raw": "sensor_msgs/msg/Image",
                     f"{LEFT}/camera_info": "sensor_msgs/msg/CameraInfo",
                     f"{LEFT}/depth_gt": "sensor_msgs/msg/Image"}
    assert {topic: len(msgs) for topic, msgs in messages.items()} == {topic: NUM_FRAMES for topic in types}

    image_files = sorted((drive / "image_02" / "data").glob("*.png"))
    times = (drive / "image_02" / "timestamps.txt").read_text().splitlines()
    expected_stamps = [kitti_time_ns(times[int(p.stem)]) for p in image_files]
    for topic in types:
        assert [stamp_ns(m) for _, m in messages[topic]] == expected_stamps
        assert [t for t, _ in messages[topic]] == expected_stamps  # log time = header stamp
        assert {m.header.frame_id for _, m in messages[topic]} == {"camera_color_left_optical_frame"}

    cam_to_cam = drive.parent / "calib_cam_to_cam.txt"
    p_rect = calib_line(cam_to_cam, "P_rect_02")
    for (_, info), (_, image), path in zip(messages[f"{LEFT}/camera_info"], messages[f"{LEFT}/image_raw"],
                                           image_files):
        np.testing.assert_array_equal(info.p, p_rect)
        np.testing.assert_array_equal(info.k, p_rect.reshape(3, 4)[:, :3].ravel())
        np.testing.assert_array_equal(info.r, calib_line(cam_to_cam, "R_rect_02"))
        np.testing.assert_array_equal(info.d, np.zeros(5))
        assert info.distortion_model == "plumb_bob"
        assert (info.width, info.height) == (image.width, image.height)
        assert image.encoding == "rgb8" and image.step == 3 * image.width
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(image.data.reshape(image.height, image.width, 3), rgb)

    gt_dir = drive / "proj_depth" / "groundtruth" / "image_02"
    for (_, gt), path in zip(messages[f"{LEFT}/depth_gt"], image_files):
        assert gt.encoding == "32FC1"
        depth_m = gt.data.view(np.float32).reshape(gt.height, gt.width)
        raw = cv2.imread(str(gt_dir / path.name), cv2.IMREAD_UNCHANGED)
        assert raw.dtype == np.uint16
        np.testing.assert_array_equal(np.isnan(depth_m), raw == 0)
        np.testing.assert_allclose(depth_m[raw > 0], raw[raw > 0] / 256.0, rtol=1e-6)
        assert np.nanmin(depth_m) > 0 and np.nanmax(depth_m) <= 256.0


def test_max_frames_and_cli(drive: Path, tmp_path: Path, capsys):
    bag = tmp_path / "cli_bag"
    assert kitti_to_bag.main(["--drive", str(drive), "--output", str(bag), "--max-frames", "2", "--gt", "none",
                              "--no-velodyne", "--quiet"]) == 0
    types, messages = read_bag(bag)
    assert sorted(types) == [f"{LEFT}/camera_info", f"{LEFT}/image_raw", kitti_to_bag.TF_STATIC_TOPIC]
    assert {topic: len(m) for topic, m in messages.items()} == {
        f"{LEFT}/camera_info": 2, f"{LEFT}/image_raw": 2, kitti_to_bag.TF_STATIC_TOPIC: 1}
    assert "image_raw" in capsys.readouterr().out


def test_velodyne_ground_truth_from_real_scan(shared_data: Path, tmp_path: Path):
    """A real KITTI scan in the raw layout: the cloud round-trips and its projection is the GT image."""
    source = shared_data / "kitti_object_lidar"
    object_calib = kitti_calib.load_object_calibration(source / "calib" / "000000.txt")
    drive = drive_path(tmp_path)
    (drive / "image_02" / "data").mkdir(parents=True)
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    shutil.copyfile(source / "image_2" / "000000.png", drive / "image_02" / "data" / "0000000000.png")
    shutil.copyfile(source / "velodyne" / "000000.bin", drive / "velodyne_points" / "data" / "0000000000.bin")
    for sensor in ("image_02", "velodyne_points"):
        (drive / sensor / "timestamps.txt").write_text("2011-09-26 13:02:25.964389445\n")
    entries = kitti_calib.read_calib_file(source / "calib" / "000000.txt")
    rect = " ".join(str(v) for v in entries["R0_rect"])
    (drive.parent / "calib_cam_to_cam.txt").write_text(
        f"P_rect_02: {' '.join(str(v) for v in entries['P2'])}\nR_rect_00: {rect}\nR_rect_02: {rect}\n")
    tr = entries["Tr_velo_to_cam"].reshape(3, 4)
    (drive.parent / "calib_velo_to_cam.txt").write_text(
        f"R: {' '.join(str(v) for v in tr[:, :3].ravel())}\nT: {' '.join(str(v) for v in tr[:, 3])}\n")

    bag = tmp_path / "velo_bag"
    summary = convert_drive(drive, bag, gt="auto", progress=False)
    assert summary.gt_source == "velodyne"
    types, messages = read_bag(bag)
    assert types[kitti_to_bag.VELO_TOPIC] == "sensor_msgs/msg/PointCloud2"
    with AnyReader([bag]) as reader:
        qos = reader.topics[kitti_to_bag.TF_STATIC_TOPIC].connections[0].ext.offered_qos_profiles
    assert qos and qos[0].durability.name == "TRANSIENT_LOCAL"  # `ros2 bag play` latches it
    (_, cloud), = messages[kitti_to_bag.VELO_TOPIC]
    scan = np.fromfile(source / "velodyne" / "000000.bin", dtype=np.float32).reshape(-1, 4)
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "intensity"] and cloud.point_step == 16
    np.testing.assert_array_equal(cloud.data.view(np.float32).reshape(-1, 4), scan)

    (_, gt), = messages[f"{LEFT}/depth_gt"]
    depth_m = gt.data.view(np.float32).reshape(gt.height, gt.width)
    expected = kitti_calib.project_velodyne_to_depth(scan, object_calib, (gt.height, gt.width))
    np.testing.assert_array_equal(np.nan_to_num(depth_m), expected)
    valid = depth_m[np.isfinite(depth_m)]
    assert 0.02 < valid.size / depth_m.size < 0.2  # a 64-beam scan covers a few percent of the pixels
    assert 3.0 < np.percentile(valid, 1) and np.percentile(valid, 99) < 81.0

    # /tf_static: velo_link -> camera. Points moved into the camera frame by the inverse of that pose
    # and projected with K alone must land where P_rect (with its baseline column) puts them.
    (_, tf_msg), = messages[kitti_to_bag.TF_STATIC_TOPIC]
    (stamped,) = tf_msg.transforms
    assert (stamped.header.frame_id, stamped.child_frame_id) == ("velo_link", "camera_color_left_optical_frame")
    q, t = stamped.transform.rotation, stamped.transform.translation
    velo_from_camera = np.eye(4)
    velo_from_camera[:3, :3] = Rotation.from_quat([q.x, q.y, q.z, q.w]).as_matrix()
    velo_from_camera[:3, 3] = [t.x, t.y, t.z]
    forward = scan[scan[:, 0] > 5.0][::50]
    in_camera = (np.linalg.inv(velo_from_camera) @ np.c_[forward[:, :3], np.ones(len(forward))].T)[:3]
    pixels_tf = (object_calib.intrinsics @ in_camera)[:2] / in_camera[2]
    projected = object_calib.velo_to_image() @ np.c_[forward[:, :3], np.ones(len(forward))].T
    np.testing.assert_allclose(pixels_tf, projected[:2] / projected[2], atol=0.05)  # px


def test_missing_files_give_clear_errors(drive: Path, tmp_path: Path):
    broken = tmp_path / DATE / drive.name
    shutil.copytree(drive, broken)
    with pytest.raises(DriveError, match="calib_cam_to_cam.txt"):
        convert_drive(broken, tmp_path / "no_calib", progress=False)
    shutil.copyfile(drive.parent / "calib_cam_to_cam.txt", broken.parent / "calib_cam_to_cam.txt")
    (broken / "image_02" / "timestamps.txt").unlink()
    with pytest.raises(DriveError, match=r"image_02/timestamps.txt: missing"):
        convert_drive(broken, tmp_path / "no_stamps", progress=False)
    assert not (tmp_path / "no_stamps").exists()  # checked before anything is written
    with pytest.raises(DriveError, match="velodyne_points"):
        convert_drive(drive, tmp_path / "no_velo", gt="velodyne", progress=False)
    with pytest.raises(DriveError, match="already exists"):
        convert_drive(drive, tmp_path, progress=False)
    with pytest.raises(DriveError, match="no such drive folder"):
        convert_drive(tmp_path / "nowhere", tmp_path / "x", progress=False)


# metadata.yaml as Humble's `ros2 bag record` (rosbag2 0.15) writes it: the head is quoted from
# ros2/rosbag2#1237 (a clean Humble install), the rest follows the field order of Humble's encoder
# (compression_format, compression_mode, relative_file_paths, files). Humble parses exactly these.
HUMBLE_RECORDED_METADATA = r"""
rosbag2_bagfile_information:
  version: 5
  storage_identifier: sqlite3
  duration:
    nanoseconds: 6666808227
  starting_time:
    nanoseconds_since_epoch: 1675282923350705648
  message_count: 22
  topics_with_message_count:
    - topic_metadata:
        name: /tf_static
        type: tf2_msgs/msg/TFMessage
        serialization_format: cdr
        offered_qos_profiles: "- history: 3\n  depth: 0\n  reliability: 1\n  durability: 1\n  deadline:\n    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n  avoid_ros_namespace_conventions: false"
      message_count: 1
  compression_format: ""
  compression_mode: ""
  relative_file_paths:
    - testbag_0.db3
  files:
    - path: testbag_0.db3
      starting_time:
        nanoseconds_since_epoch: 1675282923350705648
      duration:
        nanoseconds: 6666808227
      message_count: 22
"""
# What Humble's sqlite3 plugin (rosbag2_storage_default_plugins 0.15, sqlite_storage.cpp) queries.
HUMBLE_SQLITE_QUERIES = {
    "topics": "SELECT name, type, serialization_format FROM topics ORDER BY id;",
    "messages": "SELECT data, timestamp, topics.name, messages.id FROM messages JOIN topics ON "
                "messages.topic_id = topics.id WHERE (((timestamp = 0) AND (messages.id >= 0)) OR (timestamp > 0)) "
                "ORDER BY messages.timestamp, messages.id;",
    "reindex": "SELECT name, type, serialization_format, COUNT(messages.id), MIN(messages.timestamp), "
               "MAX(messages.timestamp), offered_qos_profiles FROM messages JOIN topics on "
               "topics.id = messages.topic_id GROUP BY topics.name;",
}


def bag_metadata(bag: Path) -> dict:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def raw_messages(bag: Path) -> list[tuple[str, int, bytes]]:
    with AnyReader([bag]) as reader:
        return [(connection.topic, log_time, bytes(raw)) for connection, log_time, raw in reader.messages()]


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_bag_for_humble_has_humbles_metadata_and_the_same_payload(drive: Path, tmp_path: Path, storage: str):
    humble_bag, jazzy_bag = tmp_path / "humble", tmp_path / "jazzy"
    summary = convert_drive(drive, humble_bag, storage=storage, gt="annotated", velodyne=False, progress=False)
    assert (summary.ros_distro, summary.metadata_version) == ("humble", 5)  # the default
    convert_drive(drive, jazzy_bag, storage=storage, gt="annotated", velodyne=False, progress=False,
                  ros_distro="jazzy")

    humble = yaml.safe_load(HUMBLE_RECORDED_METADATA)["rosbag2_bagfile_information"]
    meta = bag_metadata(humble_bag)
    assert list(meta) == list(humble) and meta["version"] == 5
    assert meta["storage_identifier"] == storage and (humble_bag / meta["relative_file_paths"][0]).is_file()
    assert [list(f) for f in meta["files"]] == [list(humble["files"][0])]
    assert meta["files"][0]["message_count"] == meta["message_count"] == sum(
        t["message_count"] for t in meta["topics_with_message_count"])
    humble_qos = yaml.safe_load(humble["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"])
    for topic in meta["topics_with_message_count"]:
        assert list(topic) == ["topic_metadata", "message_count"]
        assert list(topic["topic_metadata"]) == list(humble["topics_with_message_count"][0]["topic_metadata"])
        qos_text = topic["topic_metadata"]["offered_qos_profiles"]
        assert isinstance(qos_text, str)  # Humble's parser wants a string here (a list is "bad conversion")
        profiles = yaml.safe_load(qos_text)
        assert profiles, "an empty offer list is not something Humble's recorder writes"
        for profile in profiles:
            assert list(profile) == list(humble_qos[0])
            assert all(isinstance(profile[k], int) for k in ("history", "depth", "reliability", "durability",
                                                             "liveliness"))
            assert set(profile["deadline"]) == {"sec", "nsec"}
    offers = {t["topic_metadata"]["name"]: yaml.safe_load(t["topic_metadata"]["offered_qos_profiles"])[0]
              for t in meta["topics_with_message_count"]}
    assert offers.pop("/tf_static")["durability"] == 1  # transient local: played back latched
    assert {(o["reliability"], o["durability"]) for o in offers.values()} == {(1, 2)}  # reliable, volatile

    # Jazzy/Kilted's own format for --ros-distro jazzy, and byte-identical messages either way.
    jazzy = bag_metadata(jazzy_bag)
    assert jazzy["version"] == 9 and all("type_description_hash" in t["topic_metadata"]
                                         for t in jazzy["topics_with_message_count"])
    assert raw_messages(humble_bag) == raw_messages(jazzy_bag)

    if storage == "sqlite3":
        db = sqlite3.connect(humble_bag / meta["relative_file_paths"][0])
        try:
            rows = {name: db.execute(query).fetchall() for name, query in HUMBLE_SQLITE_QUERIES.items()}
            stored_version, = db.execute("SELECT metadata_version FROM metadata").fetchone()
        finally:
            db.close()
        assert [row[0] for row in rows["topics"]] == [t["topic_metadata"]["name"]
                                                      for t in meta["topics_with_message_count"]]
        assert len(rows["messages"]) == meta["message_count"]
        assert sum(row[3] for row in rows["reindex"]) == meta["message_count"]
        assert stored_version == 5


def test_existing_jazzy_bag_rewritten_for_humble(drive: Path, tmp_path: Path, capsys):
    humble_bag, jazzy_bag = tmp_path / "humble", tmp_path / "jazzy"
    convert_drive(drive, humble_bag, gt="none", velodyne=False, progress=False, max_frames=1)
    convert_drive(drive, jazzy_bag, gt="none", velodyne=False, progress=False, max_frames=1, ros_distro="kilted")
    assert bag_metadata(jazzy_bag)["version"] == 9
    assert metadata_cli(["--ros-distro", "humble", str(jazzy_bag)]) == 0
    converted, reference = bag_metadata(jazzy_bag), bag_metadata(humble_bag)
    assert converted["version"] == 5
    # the version-9 QoS list becomes the string with integer enums that Humble's rosbag2 writes
    assert [t["topic_metadata"] for t in converted["topics_with_message_count"]] == \
        [t["topic_metadata"] for t in reference["topics_with_message_count"]]
    assert raw_messages(jazzy_bag) == raw_messages(humble_bag)
    assert "metadata version 5" in capsys.readouterr().out
    assert metadata_cli(["--ros-distro", "humble", str(tmp_path / "nowhere")]) == 1
