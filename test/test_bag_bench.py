"""Bag replay benchmark: bag loading and topic errors, scoring, and end to end against the real depth node."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

from urcdc_model.data.synthetic import kitti_like_intrinsics, render_frame
from urcdc_ros import bag_bench, bag_node, kitti_to_bag
from urcdc_ros.bag_frames import BagContents, BagFrame, BagTopicError, decode_gt_depth_m, load_bag
from urcdc_ros.bag_report import FrameScorer, uncertainty_calibration

LEFT = "/kitti/camera_color_left"
HEIGHT, WIDTH = 96, 320
FRAME_PERIOD_NS = 100_000_000


def write_bag(path: Path, num_frames: int, with_info: bool = True, with_gt: bool = True) -> list[np.ndarray]:
    """A small kitti2bag-style bag of procedural street frames; returns the exact GT depth of each frame."""
    types = kitti_to_bag.TYPESTORE
    gts = []
    with Writer(path, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP) as writer:
        image = writer.add_connection(f"{LEFT}/image_raw", "sensor_msgs/msg/Image", typestore=types)
        info = writer.add_connection(f"{LEFT}/camera_info", "sensor_msgs/msg/CameraInfo", typestore=types)
        gt = writer.add_connection(f"{LEFT}/depth_gt", "sensor_msgs/msg/Image", typestore=types)
        k = kitti_like_intrinsics(HEIGHT, WIDTH)
        projection = np.c_[k, np.zeros(3)]
        for i in range(num_frames):
            frame = render_frame(seed=100 + i, height=HEIGHT, width=WIDTH)
            stamp = 1_317_000_000_000_000_000 + i * FRAME_PERIOD_NS
            frame_id = "camera_color_left_optical_frame"
            writer.write(image, stamp, types.serialize_cdr(
                kitti_to_bag.image_message(frame.rgb, "rgb8", stamp, frame_id), image.msgtype))
            if with_info:
                writer.write(info, stamp, types.serialize_cdr(kitti_to_bag.camera_info_message(
                    projection, np.eye(3), WIDTH, HEIGHT, stamp, frame_id), info.msgtype))
            if with_gt:
                writer.write(gt, stamp, types.serialize_cdr(
                    kitti_to_bag.image_message(frame.depth_m, "32FC1", stamp, frame_id), gt.msgtype))
            gts.append(frame.depth_m)
    return gts


def test_load_bag_matches_camera_info_and_gt(tmp_path: Path):
    gts = write_bag(tmp_path / "bag", num_frames=3)
    contents = load_bag(tmp_path / "bag")
    assert contents.gt_topic == f"{LEFT}/depth_gt" and contents.frames_with_gt == 3
    assert [f.stamp_ns for f in contents.frames] == sorted(f.stamp_ns for f in contents.frames)
    for frame, gt in zip(contents.frames, gts):
        assert frame.encoding == "rgb8" and frame.pixels.shape == (HEIGHT, WIDTH, 3)
        assert frame.camera_info.width == WIDTH and frame.camera_info.p.shape == (12,)
        np.testing.assert_array_equal(frame.gt_depth_m, gt)
    assert load_bag(tmp_path / "bag", gt_topic="").gt_topic is None
    bare_mcap, = (tmp_path / "bag").glob("*.mcap")  # a lone .mcap, as kitti2mcap writes, reads the same
    assert [f.stamp_ns for f in load_bag(bare_mcap).frames] == [f.stamp_ns for f in contents.frames]
    assert len(load_bag(tmp_path / "bag", max_frames=2).frames) == 2


HUMBLE_QOS = ("- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n  deadline:\n    sec: 9223372036\n"
              "    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n    nsec: 854775807\n  liveliness: 1\n"
              "  liveliness_lease_duration:\n    sec: 9223372036\n    nsec: 854775807\n"
              "  avoid_ros_namespace_conventions: false")


def write_humble_recorded_bag(path: Path, num_frames: int) -> list[np.ndarray]:
    """A bag as Humble's `ros2 bag record -s sqlite3` leaves it: its sqlite3 schema (topics with
    offered_qos_profiles, messages; no message definitions, which Iron added) and version-5 metadata."""
    types = kitti_to_bag.TYPESTORE  # Humble's message definitions
    path.mkdir()
    db = sqlite3.connect(path / "recording_0.db3")
    db.executescript("""
        CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                            serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
        CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL, timestamp INTEGER NOT NULL,
                              data BLOB NOT NULL);
        CREATE INDEX timestamp_idx ON messages (timestamp ASC);""")
    topics = [(1, f"{LEFT}/image_raw", "sensor_msgs/msg/Image"), (2, f"{LEFT}/camera_info", "sensor_msgs/msg/CameraInfo")]
    db.executemany("INSERT INTO topics VALUES (?, ?, ?, 'cdr', ?)", [(*t, HUMBLE_QOS) for t in topics])
    k = kitti_like_intrinsics(HEIGHT, WIDTH)
    images = []
    for i in range(num_frames):
        stamp = 1_675_282_923_000_000_000 + i * FRAME_PERIOD_NS
        rgb = render_frame(seed=200 + i, height=HEIGHT, width=WIDTH).rgb
        images.append(rgb)
        image = kitti_to_bag.image_message(rgb, "rgb8", stamp, "camera")
        info = kitti_to_bag.camera_info_message(np.c_[k, np.zeros(3)], np.eye(3), WIDTH, HEIGHT, stamp, "camera")
        db.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (1, ?, ?)",
                   (stamp, types.serialize_cdr(image, "sensor_msgs/msg/Image")))
        db.execute("INSERT INTO messages (topic_id, timestamp, data) VALUES (2, ?, ?)",
                   (stamp, types.serialize_cdr(info, "sensor_msgs/msg/CameraInfo")))
    db.commit()
    db.close()
    start, duration = 1_675_282_923_000_000_000, (num_frames - 1) * FRAME_PERIOD_NS
    metadata = {"rosbag2_bagfile_information": {
        "version": 5, "storage_identifier": "sqlite3", "duration": {"nanoseconds": duration},
        "starting_time": {"nanoseconds_since_epoch": start}, "message_count": 2 * num_frames,
        "topics_with_message_count": [
            {"topic_metadata": {"name": name, "type": msgtype, "serialization_format": "cdr",
                                "offered_qos_profiles": HUMBLE_QOS}, "message_count": num_frames}
            for _, name, msgtype in topics],
        "compression_format": "", "compression_mode": "", "relative_file_paths": ["recording_0.db3"],
        "files": [{"path": "recording_0.db3", "starting_time": {"nanoseconds_since_epoch": start},
                   "duration": {"nanoseconds": duration}, "message_count": 2 * num_frames}]}}
    (path / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return images


def test_humble_recorded_bag_loads(tmp_path: Path):
    images = write_humble_recorded_bag(tmp_path / "humble_bag", num_frames=2)
    contents = load_bag(tmp_path / "humble_bag")
    assert len(contents.frames) == 2 and contents.gt_topic is None
    for frame, rgb in zip(contents.frames, images):
        np.testing.assert_array_equal(frame.pixels, rgb)
        assert (frame.camera_info.width, frame.camera_info.height) == (WIDTH, HEIGHT)


def test_ros1_kitti2bag_bag_loads(tmp_path: Path):
    """kitti2bag (ROS 1) writes bgr8 images and CameraInfo with upper-case D/K/R/P."""
    from rosbags.rosbag1 import Writer as Ros1Writer
    from rosbags.typesys import Stores, get_typestore

    types = get_typestore(Stores.ROS1_NOETIC)
    t = types.types
    bgr = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    p = np.arange(12, dtype=np.float64)
    stamp = t["builtin_interfaces/msg/Time"](sec=1_317_000_000, nanosec=500)
    header = t["std_msgs/msg/Header"](seq=0, stamp=stamp, frame_id="camera_color_left")
    image = t["sensor_msgs/msg/Image"](header=header, height=4, width=6, encoding="bgr8", is_bigendian=0, step=18,
                                       data=bgr.reshape(-1))
    info = t["sensor_msgs/msg/CameraInfo"](
        header=header, height=4, width=6, distortion_model="plumb_bob", D=np.zeros(5), K=p[:9], R=np.eye(3).ravel(),
        P=p, binning_x=0, binning_y=0, roi=t["sensor_msgs/msg/RegionOfInterest"](
            x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))
    with Ros1Writer(tmp_path / "kitti.bag") as writer:
        for topic, msg in ((f"{LEFT}/image_raw", image), (f"{LEFT}/camera_info", info)):
            connection = writer.add_connection(topic, msg.__msgtype__, typestore=types)
            writer.write(connection, 1_317_000_000_000_000_500, types.serialize_ros1(msg, msg.__msgtype__))
    frame, = load_bag(tmp_path / "kitti.bag").frames
    assert frame.stamp_ns == 1_317_000_000_000_000_500 and frame.encoding == "bgr8"
    np.testing.assert_array_equal(frame.pixels, bgr)
    np.testing.assert_array_equal(frame.rgb(), bgr[..., ::-1])
    np.testing.assert_array_equal(frame.camera_info.p, p)


def test_compressed_images_are_decoded(tmp_path: Path):
    """A bag recorded from image_transport's compressed topic replays as rgb8."""
    import cv2

    types = kitti_to_bag.TYPESTORE
    rgb = render_frame(seed=5, height=HEIGHT, width=WIDTH).rgb
    ok, png = cv2.imencode(".png", rgb[..., ::-1])
    assert ok
    msg = types.types["sensor_msgs/msg/CompressedImage"](
        header=kitti_to_bag.header(42, "cam"), format="rgb8; png compressed bgr8", data=png.reshape(-1))
    with Writer(tmp_path / "bag", version=Writer.VERSION_LATEST) as writer:
        connection = writer.add_connection("/cam/image_raw/compressed", msg.__msgtype__, typestore=types)
        writer.write(connection, 42, types.serialize_cdr(msg, msg.__msgtype__))
    frame, = load_bag(tmp_path / "bag", image_topic="/cam/image_raw/compressed", info_topic="").frames
    assert frame.encoding == "rgb8" and frame.camera_info is None
    np.testing.assert_array_equal(frame.pixels, rgb)


def test_missing_topic_lists_what_the_bag_has(tmp_path: Path, capsys):
    write_bag(tmp_path / "bag", num_frames=1, with_info=False, with_gt=False)
    with pytest.raises(BagTopicError) as error:
        load_bag(tmp_path / "bag", image_topic="/camera/image_raw")
    message = str(error.value)
    assert "no topic '/camera/image_raw' (--image-topic)" in message
    assert f"{LEFT}/image_raw  [sensor_msgs/msg/Image, 1 messages]" in message
    with pytest.raises(BagTopicError, match="--gt-topic"):
        load_bag(tmp_path / "bag", gt_topic="/depth_gt")
    # the CLI fails before any ROS work and prints the listing
    assert bag_bench.main(["--bag", str(tmp_path / "bag"), "--report", str(tmp_path / "r"),
                           "--info-topic", "/cam/info"]) == 1
    assert f"{LEFT}/image_raw" in capsys.readouterr().err


def test_no_node_is_a_clear_error(tmp_path: Path):
    write_bag(tmp_path / "bag", num_frames=1)
    options = bag_bench.ReplayOptions(node_namespace="/nobody_here", discovery_timeout_s=2.0)
    with pytest.raises(TimeoutError, match=r"no subscriber on /nobody_here/image within 2 s; is the depth node"):
        bag_bench.run_bench(tmp_path / "bag", tmp_path / "report", options=options, verbose=False)


class ArrayImage:
    """An Image-like 32FC1 message over an array."""

    def __init__(self, values: np.ndarray):
        self.values = np.ascontiguousarray(values, dtype=np.float32)
        self.height, self.width = self.values.shape
        self.encoding, self.is_bigendian, self.step = "32FC1", 0, self.values.strides[0]
        self.data = self.values.reshape(-1).view(np.uint8)


def test_scorer_metrics_and_uncertainty_calibration():
    rng = np.random.default_rng(0)
    gt = rng.uniform(2.0, 60.0, size=(60, 200)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.5] = np.nan  # sparse GT
    frames = [BagFrame(stamp_ns=i, frame_id="cam", encoding="rgb8", pixels=np.zeros((60, 200, 3), np.uint8),
                       gt_depth_m=gt) for i in range(2)]
    scorer = FrameScorer(BagContents(path=Path("x"), image_topic="i", info_topic=None, gt_topic="g", frames=frames),
                         crop="none")
    scorer.expect_uncertainty = True
    prediction = np.nan_to_num(gt, nan=30.0) * 1.1
    # uncertainty above the error on the left half, below it on the right half
    uncertainty = np.abs(prediction - np.nan_to_num(gt)) * np.where(np.arange(200) < 100, 2.0, 0.5)
    scorer.add_output(0, "depth", ArrayImage(prediction))
    assert not scorer.scores  # waits for the frame's uncertainty
    scorer.add_output(0, "uncertainty", ArrayImage(uncertainty))
    scorer.add_output(1, "depth", ArrayImage(prediction))  # its uncertainty never comes
    scorer.finish()
    assert sorted(scorer.scores) == [0, 1]
    metrics = scorer.scores[0].metrics
    assert metrics["abs_rel"] == pytest.approx(0.1, rel=1e-5) and metrics["d1"] == 1.0
    calibration = scorer.calibration()
    valid_left = np.isfinite(gt[:, :100]).sum() / np.isfinite(gt).sum()
    assert calibration["fraction_error_below_uncertainty"] == pytest.approx(valid_left)
    assert calibration["pixels"] == np.isfinite(gt).sum()  # frame 1 had no uncertainty


def test_uncertainty_that_tracks_error_ranks_and_sparsifies_well():
    rng = np.random.default_rng(1)
    gt = rng.uniform(5, 50, 20_000)
    expected_error = rng.uniform(0.01, 0.2, gt.size) * gt  # some pixels are harder than others
    error = np.abs(rng.laplace(0, expected_error))
    informative = uncertainty_calibration(error, expected_error, gt)
    uninformative = uncertainty_calibration(error, rng.uniform(0, 1, gt.size), gt)
    # Laplace errors with the right scale: about 63 % fall below the predicted expected error
    assert informative["fraction_error_below_uncertainty"] == pytest.approx(0.632, abs=0.02)
    assert informative["spearman_error_vs_uncertainty"] > 0.3
    assert abs(uninformative["spearman_error_vs_uncertainty"]) < 0.05
    assert informative["ause_abs_rel"] < uninformative["ause_abs_rel"]
    bins = informative["error_vs_uncertainty"]
    assert [b["mean_uncertainty_m"] for b in bins] == sorted(b["mean_uncertainty_m"] for b in bins)


def test_node_parameters_for_the_baseline(tmp_path: Path):
    params_file = tmp_path / "p.yaml"
    params_file.write_text("/**:\n  ros__parameters:\n    model: a.onnx\n    flip_tta: true\n    num_threads: 2\n")
    params = bag_node.node_parameters(params_file, ["num_threads:=1", "input_height:=64", "input_width:=192"])
    assert (params.model, params.flip_tta, params.num_threads, params.input_size) == ("a.onnx", True, 1, (64, 192))
    with pytest.raises(ValueError, match="NAME:=VALUE"):
        bag_node.node_parameters(params_file, ["num_threads=1"])


def test_16uc1_ground_truth_is_millimetres():
    raw = np.array([[0, 1500], [80_00, 65535]], dtype=np.uint16)

    class Msg:
        height, width, encoding, is_bigendian, step = 2, 2, "16UC1", 0, 4
        data = raw.reshape(-1).view(np.uint8)

    depth_m = decode_gt_depth_m(Msg(), "test")
    assert np.isnan(depth_m[0, 0]) and depth_m[0, 1] == pytest.approx(1.5) and depth_m[1, 0] == pytest.approx(8.0)


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_replay_against_the_depth_node(tmp_path: Path, nano_checkpoint: Path):
    """The real node on a 4-frame bag over DDS: every frame answered, metrics and files written."""
    num_frames = 4
    write_bag(tmp_path / "bag", num_frames=num_frames)
    report = bag_bench.run_bench(
        tmp_path / "bag", tmp_path / "report", launch_node=True,
        node_params=[f"model:={nano_checkpoint}", "backend:=torch", "num_threads:=1"], model_baseline=True,
        options=bag_bench.ReplayOptions(rate=None, startup_timeout_s=120.0,
                                        extra_outputs=("depth/camera_info", "points")), verbose=False)
    assert report["frames_published"] == report["frames_received"] == num_frames
    assert report["drop_rate"] == 0.0
    rows = report["frames"]
    assert len(rows) == num_frames and all(r["latency_ms"] > 0 for r in rows)
    assert 0 < report["latency_ms"]["median"] <= report["latency_ms"]["p90"] <= report["latency_ms"]["max"]
    assert report["metrics_frames"] == num_frames and all(r["metrics"] for r in rows)
    # an untrained network: the numbers only have to be real metrics of what the node published
    assert report["metrics"]["abs_rel"] > 0 and 0 <= report["metrics"]["d1"] <= 1
    assert report["uncertainty_frames_received"] == num_frames
    assert report["model_only_latency_ms"]["model"] == str(nano_checkpoint)
    assert report["latency_over_model_only"] > 0
    # camera_info and the cloud were subscribed too: a frame is complete when its last output arrived
    assert report["outputs_subscribed"] == ["depth", "depth/uncertainty", "depth/camera_info", "points"]
    assert all(r["complete_latency_ms"] >= r["latency_ms"] for r in rows)
    # the model alone was timed after every node frame (interleaved), so each frame has its difference
    assert report["model_only_latency_ms"]["interleaved"] and report["model_only_latency_ms"]["frames"] == num_frames
    paired = report["paired_overhead_ms"]
    assert paired["depth"]["median"] <= paired["complete"]["median"]
    assert report["node_cpu_ms_per_frame"] > 0
    assert 0 <= report["uncertainty_calibration"]["fraction_error_below_uncertainty"] <= 1
    on_disk = json.loads((tmp_path / "report" / "report.json").read_text())
    assert on_disk["frames_received"] == num_frames
    assert "latency median" in (tmp_path / "report" / "report.md").read_text()
    for name in ("latency", "frame", "calibration"):
        assert Path(report["plots"][name]).stat().st_size > 10_000
