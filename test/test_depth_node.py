"""The depth node as users run it: a subprocess (`python -m urcdc_ros.depth_node --ros-args ...`) and real topics.

A test node publishes the real KITTI frames (1242x375) with camera_info from their intrinsics and
checks what comes back. The model is a randomly initialised ``nano`` network saved to a tmp dir, so
the numbers are not meaningful depth, but shapes, stamps, frames, encodings and geometry are.
Two node processes: A (raw input, SensorData QoS, x,y,z cloud, the default executor: the
EventsExecutor where rclpy has it) and B (compressed input, reliable QoS, x,y,z,rgb cloud with
stride 2, uncertainty filter, the SingleThreadedExecutor that Humble uses).
"""
from __future__ import annotations

import array
import json
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2

from conftest import REPO_ROOT
from urcdc_ros.image_codec import image_to_array
from urcdc_ros.pointcloud import read_cloud_rgb, read_cloud_xyz

FRAME_ID = "camera_color_left_optical_frame"
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE)
OUTPUTS = {"depth": Image, "depth/camera_info": CameraInfo, "depth/uncertainty": Image, "points": PointCloud2,
           "depth/colored": Image}
STARTUP_TIMEOUT_S = 60.0
FRAME_TIMEOUT_S = 20.0


@pytest.fixture(scope="module")
def kitti(shared_data):
    root = shared_data / "kitti_depth_annotated"
    meta = json.loads((root / "intrinsics.json").read_text())
    frames = [np.ascontiguousarray(cv2.imread(str(next((root / "rgb").glob(f"*{name}*.png"))))[..., ::-1])
              for name in meta["frames"]]
    return frames, meta


def _node_command(namespace: str, model: Path, *params: str) -> list[str]:
    args = [sys.executable, "-m", "urcdc_ros.depth_node", "--ros-args", "-r", f"__ns:={namespace}",
            "--params-file", str(REPO_ROOT / "config" / "depth.yaml"),
            "-p", f"model:={model}", "-p", "backend:=torch", "-p", "num_threads:=1"]
    for param in params:
        args += ["-p", param]
    return args


@pytest.fixture(scope="module")
def node_processes(nano_checkpoint, tmp_path_factory):
    """Start nodes A and B together (their start-up overlaps), stop them with SIGINT at the end."""
    logs = tmp_path_factory.mktemp("logs")
    commands = {
        "A": _node_command("/a", nano_checkpoint),
        "B": _node_command("/b", nano_checkpoint, "input_transport:=compressed", "input_qos:=reliable",
                           "cloud_rgb:=true", "cloud_stride:=2", "max_relative_uncertainty:=0.2",
                           "executor:=single_threaded"),
    }
    processes = {}
    for name, command in commands.items():
        log = open(logs / f"{name}.log", "w")
        processes[name] = (subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT), logs / f"{name}.log")
    yield processes
    for process, log in processes.values():
        process.send_signal(2)  # Ctrl-C: the node must exit cleanly
        try:
            assert process.wait(timeout=15) == 0, f"unclean exit:\n{log.read_text()[-3000:]}"
        finally:
            if process.poll() is None:
                process.kill()
    for _, log in processes.values():
        assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


class Probe:
    """A test node: publishes inputs into one namespace and collects every output there."""

    def __init__(self, namespace: str, image_type=Image, image_qos=qos_profile_sensor_data):
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = Node("probe", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        topic = "image/compressed" if image_type is CompressedImage else "image"
        self.image_pub = self.node.create_publisher(image_type, topic, image_qos)
        self.reliable_image_pub = self.node.create_publisher(image_type, topic, RELIABLE)
        self.info_pub = self.node.create_publisher(CameraInfo, "camera_info", image_qos)
        self.received: dict[str, list] = defaultdict(list)
        self.subscriptions = [
            self.node.create_subscription(msg_type, topic_name, lambda m, t=topic_name: self.received[t].append(m),
                                          RELIABLE)
            for topic_name, msg_type in OUTPUTS.items()]
        self.diagnostics: list[DiagnosticArray] = []
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics.append, 10)
        self._stamp_s = 1000

    def spin_until(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def wait_connected(self, process, log: Path) -> None:
        def connected():
            assert process.poll() is None, f"node exited:\n{log.read_text()[-3000:]}"
            # camera_info too: a copy sent before its subscription matched is lost, leaving the node
            # on the fallback field of view (depth but no cloud)
            return (self.image_pub.get_subscription_count() > 0 and self.info_pub.get_subscription_count() > 0
                    and all(s.get_publisher_count() > 0 for s in self.subscriptions))
        assert self.spin_until(connected, STARTUP_TIMEOUT_S), f"node not connected:\n{log.read_text()[-3000:]}"

    def next_stamp(self):
        self._stamp_s += 1
        msg = Image()
        msg.header.stamp.sec, msg.header.stamp.nanosec = self._stamp_s, 123
        return msg.header.stamp

    def outputs_for(self, stamp, topic: str) -> list:
        return [m for m in self.received[topic] if (m.header.stamp.sec, m.header.stamp.nanosec) ==
                (stamp.sec, stamp.nanosec)]

    def wait_output(self, stamp, topic: str, timeout_s: float = FRAME_TIMEOUT_S):
        assert self.spin_until(lambda: self.outputs_for(stamp, topic), timeout_s), f"no {topic} for {stamp}"
        return self.outputs_for(stamp, topic)[0]

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def rgb8_msg(rgb: np.ndarray, stamp, step_padding: int = 0) -> Image:
    height, width, _ = rgb.shape
    rows = rgb.reshape(height, -1)
    if step_padding:
        rows = np.concatenate([rows, np.zeros((height, step_padding), np.uint8)], axis=1)
    msg = Image(height=height, width=width, encoding="rgb8", step=rows.shape[1])
    msg.header.stamp, msg.header.frame_id = stamp, FRAME_ID
    msg.data = array.array("B", rows.tobytes())
    return msg


def camera_info_msg(meta: dict, width: int = 1242, height: int = 375, fx: float | None = None) -> CameraInfo:
    fx = meta["fx"] if fx is None else fx
    msg = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
    msg.header.frame_id = FRAME_ID
    msg.k = [fx, 0.0, meta["cx"], 0.0, meta["fy"], meta["cy"], 0.0, 0.0, 1.0]
    msg.p = [fx, 0.0, meta["cx"], 0.0, 0.0, meta["fy"], meta["cy"], 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def scaled_meta(meta: dict, scale: float) -> dict:
    """Intrinsics of the same camera after resizing its images by ``scale`` (pixel centres kept)."""
    return {**meta, "fx": meta["fx"] * scale, "fy": meta["fy"] * scale,
            "cx": (meta["cx"] + 0.5) * scale - 0.5, "cy": (meta["cy"] + 0.5) * scale - 0.5}


def check_depth_image(msg: Image, stamp, width: int = 1242, height: int = 375) -> np.ndarray:
    assert (msg.encoding, msg.width, msg.height) == ("32FC1", width, height)
    assert msg.header.frame_id == FRAME_ID
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (stamp.sec, stamp.nanosec)
    depth = image_to_array(msg)
    assert depth.dtype == np.float32
    valid = np.isfinite(depth)
    assert valid.mean() > 0.5 and (depth[valid] > 0).all() and (depth[valid] <= 80.0 + 1e-3).all()
    return depth


def check_cloud_against_depth(cloud: PointCloud2, depth: np.ndarray, meta: dict, stride: int = 1,
                              min_valid: float = 0.3) -> np.ndarray:
    """Reproject every valid point onto the pixel grid; its z must be the depth image's value there."""
    assert cloud.header.frame_id == FRAME_ID and not cloud.is_dense
    xyz = read_cloud_xyz(cloud)
    expected = depth[::stride, ::stride]
    assert xyz.shape[:2] == expected.shape
    valid = np.isfinite(xyz[..., 2])
    assert valid.mean() > min_valid
    z = xyz[..., 2][valid]
    np.testing.assert_allclose(z, expected[valid], rtol=1e-6)
    rows, cols = np.nonzero(valid)
    np.testing.assert_allclose(xyz[..., 0][valid] / z * meta["fx"] + meta["cx"], cols * stride, atol=0.02)
    np.testing.assert_allclose(xyz[..., 1][valid] / z * meta["fy"] + meta["cy"], rows * stride, atol=0.02)
    return valid


@pytest.fixture(scope="module")
def probe_a(node_processes):
    probe = Probe("/a")
    probe.wait_connected(*node_processes["A"])
    yield probe
    probe.close()


def test_missing_camera_info_publishes_depth_but_no_cloud(probe_a, kitti):
    frames, _ = kitti
    stamp = probe_a.next_stamp()
    probe_a.image_pub.publish(rgb8_msg(frames[0], stamp))
    check_depth_image(probe_a.wait_output(stamp, "depth"), stamp)
    probe_a.wait_output(stamp, "depth/uncertainty")
    probe_a.spin_until(lambda: False, 1.0)
    assert not probe_a.outputs_for(stamp, "points") and not probe_a.outputs_for(stamp, "depth/camera_info")

    def says_fallback():  # depth without the camera's K is not metric for it: /diagnostics says so
        statuses = [s for d in probe_a.diagnostics for s in d.status if "/a/depth_node" in s.name]
        return statuses and {kv.key: kv.value for kv in statuses[-1].values}.get("intrinsics") == "fallback" \
            and "fallback field of view" in statuses[-1].message
    assert probe_a.spin_until(says_fallback, 5.0)


@pytest.mark.parametrize("reliable", [False, True], ids=["best_effort", "reliable"])
def test_kitti_frames_give_depth_uncertainty_info_and_a_matching_cloud(probe_a, kitti, reliable):
    frames, meta = kitti
    publisher = probe_a.reliable_image_pub if reliable else probe_a.image_pub
    info = camera_info_msg(meta)
    for frame in frames[:2] if reliable else frames:
        stamp = probe_a.next_stamp()
        info.header.stamp = stamp
        probe_a.info_pub.publish(info)
        probe_a.spin_until(lambda: False, 0.2)  # let camera_info arrive first
        publisher.publish(rgb8_msg(frame, stamp, step_padding=6))
        depth = check_depth_image(probe_a.wait_output(stamp, "depth"), stamp)
        uncertainty_msg = probe_a.wait_output(stamp, "depth/uncertainty")
        assert (uncertainty_msg.encoding, uncertainty_msg.header.frame_id) == ("32FC1", FRAME_ID)
        uncertainty = image_to_array(uncertainty_msg)
        assert uncertainty.shape == depth.shape
        assert (uncertainty[np.isfinite(depth)] >= 0).all()
        out_info = probe_a.wait_output(stamp, "depth/camera_info")
        assert (out_info.width, out_info.height, out_info.header.frame_id) == (1242, 375, FRAME_ID)
        np.testing.assert_allclose(out_info.p, info.p)
        check_cloud_against_depth(probe_a.wait_output(stamp, "points"), depth, meta)
        colored = probe_a.wait_output(stamp, "depth/colored")
        assert (colored.encoding, colored.width, colored.height) == ("bgr8", 1242, 375)


def _bad_images(frame: np.ndarray, stamp) -> dict[str, Image]:
    good = rgb8_msg(frame, stamp)
    cases = {}
    for name, change in {
        "unknown encoding": {"encoding": "yuv422"},
        "step too small": {"step": 100},
        "truncated data": {"data": array.array("B", bytes(good.data)[:5000])},
        "0x0": {"height": 0, "width": 0, "step": 0, "data": array.array("B")},
        "absurd size": {"height": 100000, "width": 100000, "step": 300000},
        "depth image as input": {"encoding": "32FC1", "step": 1242 * 4, "height": 93},
    }.items():
        msg = rgb8_msg(frame, stamp)
        for field, value in change.items():
            setattr(msg, field, value)
        cases[name] = msg
    return cases


def test_bad_inputs_are_dropped_and_the_node_answers_the_next_frame(probe_a, kitti, node_processes):
    frames, meta = kitti
    for name, bad in _bad_images(frames[0], probe_a.next_stamp()).items():
        probe_a.image_pub.publish(bad)
        stamp = probe_a.next_stamp()
        time.sleep(0.3)  # after the bad one has been taken up, so the good one does not replace it
        probe_a.image_pub.publish(rgb8_msg(frames[1], stamp))
        check_depth_image(probe_a.wait_output(stamp, "depth"), stamp)
        probe_a.wait_output(stamp, "depth/colored")  # the last output: the worker is idle for the next bad one
        assert not probe_a.outputs_for(bad.header.stamp, "depth"), f"{name}: output for a bad frame"
    # Unusable intrinsics: depth still comes, no cloud or depth/camera_info (which would be wrong).
    for name, info in {"NaN fx": camera_info_msg(meta, fx=float("nan")), "zero fx": camera_info_msg(meta, fx=0.0),
                       "another size": camera_info_msg(meta, width=640, height=480)}.items():
        probe_a.info_pub.publish(info)
        probe_a.spin_until(lambda: False, 0.3)
        stamp = probe_a.next_stamp()
        probe_a.image_pub.publish(rgb8_msg(frames[2], stamp))
        check_depth_image(probe_a.wait_output(stamp, "depth"), stamp)
        probe_a.spin_until(lambda: False, 0.5)
        assert not probe_a.outputs_for(stamp, "points"), f"{name}: cloud from unusable intrinsics"
        assert not probe_a.outputs_for(stamp, "depth/camera_info"), name
    # And a good camera_info brings the cloud back.
    probe_a.info_pub.publish(camera_info_msg(meta))
    probe_a.spin_until(lambda: False, 0.3)
    stamp = probe_a.next_stamp()
    probe_a.image_pub.publish(rgb8_msg(frames[0], stamp))
    probe_a.wait_output(stamp, "points")
    process, log = node_processes["A"]
    assert process.poll() is None
    assert "frame dropped" in log.read_text() and "camera_info" in log.read_text()
    assert "fallback field of view" in log.read_text()  # depth went on without the camera's K, and said so


def _set_parameter(probe: Probe, node_name: str, name: str, value) -> tuple[bool, str]:
    client = probe.node.create_client(SetParameters, f"{node_name}/set_parameters")
    assert probe.spin_until(client.service_is_ready, 10.0)
    if isinstance(value, bool):
        param_value = ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=value)
    elif isinstance(value, int):
        param_value = ParameterValue(type=ParameterType.PARAMETER_INTEGER, integer_value=value)
    else:
        param_value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value)
    future = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=param_value)]))
    assert probe.spin_until(future.done, 10.0)
    result = future.result().results[0]
    probe.node.destroy_client(client)
    return result.successful, result.reason


def test_dynamic_parameters_validated_and_applied(probe_a, kitti):
    frames, meta = kitti
    assert _set_parameter(probe_a, "/a/depth_node", "cloud_stride", 0)[0] is False
    ok, reason = _set_parameter(probe_a, "/a/depth_node", "model", "/tmp/other.onnx")
    assert not ok and "read-only" in reason.lower()
    ok, reason = _set_parameter(probe_a, "/a/depth_node", "frame_id", "/bad")
    assert not ok and "slash" in reason
    assert _set_parameter(probe_a, "/a/depth_node", "cloud_stride", 4) == (True, "")
    stamp = probe_a.next_stamp()
    probe_a.image_pub.publish(rgb8_msg(frames[0], stamp))
    cloud = probe_a.wait_output(stamp, "points")
    assert (cloud.height, cloud.width) == (94, 311)  # ceil(375 / 4), ceil(1242 / 4)
    assert _set_parameter(probe_a, "/a/depth_node", "cloud_stride", 1) == (True, "")


def test_camera_info_resolution_change_mid_stream(probe_a, kitti, node_processes):
    """The camera switches to half resolution and back: depth, cloud and camera_info follow at once."""
    frames, meta = kitti
    for scale in (0.5, 1.0):
        width, height = round(1242 * scale), round(375 * scale)
        camera = scaled_meta(meta, scale) if scale != 1.0 else meta
        rgb = np.ascontiguousarray(cv2.resize(frames[1], (width, height), interpolation=cv2.INTER_AREA))
        probe_a.info_pub.publish(camera_info_msg(camera, width=width, height=height))
        probe_a.spin_until(lambda: False, 0.3)  # camera_info first, as a driver sends it
        stamp = probe_a.next_stamp()
        probe_a.image_pub.publish(rgb8_msg(rgb, stamp))
        depth = check_depth_image(probe_a.wait_output(stamp, "depth"), stamp, width=width, height=height)
        out_info = probe_a.wait_output(stamp, "depth/camera_info")
        assert (out_info.width, out_info.height) == (width, height)
        np.testing.assert_allclose(out_info.p[0], camera["fx"])
        check_cloud_against_depth(probe_a.wait_output(stamp, "points"), depth, camera)
        colored = probe_a.wait_output(stamp, "depth/colored")
        assert (colored.width, colored.height) == (width, height)
    process, _ = node_processes["A"]
    assert process.poll() is None


def test_diagnostics_report_rates_latency_and_drops(probe_a):
    assert probe_a.spin_until(lambda: any("/a/depth_node" in s.name for d in probe_a.diagnostics
                                          for s in d.status), 5.0)
    status = [s for d in probe_a.diagnostics for s in d.status if "/a/depth_node" in s.name][-1]
    values = {kv.key: kv.value for kv in status.values}
    assert {"input_rate_hz", "output_rate_hz", "latency_ms_mean", "dropped_stale_frames",
            "rejected_frames", "intrinsics"} <= set(values)
    assert values["intrinsics"] in ("camera_info", "fallback")
    assert int(values["frames_out"]) >= 5 and int(values["rejected_frames"]) >= 6


def test_no_subscribers_means_no_inference(probe_a, kitti):
    frames, _ = kitti

    def latest_values():
        statuses = [s for d in probe_a.diagnostics for s in d.status if "/a/depth_node" in s.name]
        return {kv.key: int(kv.value) for kv in statuses[-1].values if kv.key in ("frames_out",
                                                                                "skipped_no_subscribers")}

    for subscription in probe_a.subscriptions:
        probe_a.node.destroy_subscription(subscription)
    probe_a.subscriptions = []
    assert probe_a.spin_until(lambda: all(probe_a.node.count_subscribers(f"/a/{topic}") == 0 for topic in OUTPUTS),
                              10.0)
    probe_a.spin_until(lambda: False, 1.5)  # a fresh diagnostics status
    before = latest_values()
    for _ in range(2):
        probe_a.image_pub.publish(rgb8_msg(frames[0], probe_a.next_stamp()))
        probe_a.spin_until(lambda: False, 0.5)
    assert probe_a.spin_until(lambda: latest_values()["skipped_no_subscribers"] >= before["skipped_no_subscribers"] + 2,
                              5.0)
    assert latest_values()["frames_out"] == before["frames_out"]


def test_compressed_input_and_rgb_cloud_with_uncertainty_filter(node_processes, kitti):
    frames, meta = kitti
    probe = Probe("/b", image_type=CompressedImage, image_qos=RELIABLE)
    try:
        probe.wait_connected(*node_processes["B"])
        info = camera_info_msg(meta)
        probe.info_pub.publish(info)
        probe.spin_until(lambda: False, 0.3)
        stamp = probe.next_stamp()
        ok, encoded = cv2.imencode(".png", frames[0][..., ::-1])
        msg = CompressedImage(format="rgb8; png compressed bgr8")
        msg.header.stamp, msg.header.frame_id = stamp, FRAME_ID
        msg.data = array.array("B", encoded.tobytes())
        probe.image_pub.publish(msg)
        depth = check_depth_image(probe.wait_output(stamp, "depth"), stamp)
        uncertainty = image_to_array(probe.wait_output(stamp, "depth/uncertainty"))
        cloud = probe.wait_output(stamp, "points")
        assert cloud.point_step == 32 and [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
        # max_relative_uncertainty 0.2: exactly the points with uncertainty <= 20% of depth survive.
        certain = uncertainty <= 0.2 * depth
        kept = check_cloud_against_depth(cloud, np.where(certain, depth, np.nan), meta, stride=2, min_valid=0.0)
        np.testing.assert_array_equal(kept, certain[::2, ::2])
        assert 0 < kept.mean() < 1, "the filter should keep some points and drop others"
        np.testing.assert_array_equal(read_cloud_rgb(cloud), frames[0][::2, ::2])
        # A corrupt JPEG is dropped, the next frame answered.
        bad = CompressedImage(format="jpeg")
        bad.header.stamp = probe.next_stamp()
        bad.data = array.array("B", b"\xff\xd8 not really a jpeg")
        probe.image_pub.publish(bad)
        time.sleep(0.3)
        stamp = probe.next_stamp()
        msg.header.stamp = stamp
        probe.image_pub.publish(msg)
        check_depth_image(probe.wait_output(stamp, "depth"), stamp)
        assert not probe.outputs_for(bad.header.stamp, "depth")
    finally:
        probe.close()


def test_startup_errors_are_one_clear_line(tmp_path, nano_checkpoint):
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x00" * 64)
    cases = {
        "missing": (_node_command("/c1", tmp_path / "nope.safetensors"), "model file not found"),
        "corrupt": (_node_command("/c2", corrupt), "cannot load model"),
        "bad parameter": (_node_command("/c3", nano_checkpoint, "cloud_stride:=0"), "cloud_stride"),
    }
    running = {name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for name, (cmd, _) in cases.items()}
    for name, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 1, f"{name}: exit {process.returncode}\n{output}"
        assert cases[name][1] in output, f"{name}:\n{output}"
        assert "Traceback" not in output, f"{name}:\n{output}"


def test_default_model_is_the_embedded_one(kitti, tmp_path):
    """Without a `model` parameter the node runs the embedded model (skipped until it is committed)."""
    from urcdc_model.checkpoints import DEFAULT_CHECKPOINT

    if not Path(DEFAULT_CHECKPOINT).is_file():
        pytest.skip(f"embedded model {DEFAULT_CHECKPOINT} not there yet")
    frames, meta = kitti
    log = tmp_path / "D.log"
    command = [sys.executable, "-m", "urcdc_ros.depth_node", "--ros-args", "-r", "__ns:=/d",
               "-p", "backend:=torch", "-p", "num_threads:=1"]
    with open(log, "w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    probe = Probe("/d")
    try:
        probe.wait_connected(process, log)
        # camera_info is best effort here, as from a camera driver, which sends it with every frame: one
        # lost copy would leave the node on the fallback field of view (no cloud), so send a few
        for _ in range(3):
            probe.info_pub.publish(camera_info_msg(meta))
            probe.spin_until(lambda: False, 0.15)
        stamp = probe.next_stamp()
        probe.image_pub.publish(rgb8_msg(frames[0], stamp))
        depth = image_to_array(probe.wait_output(stamp, "depth", timeout_s=60.0))
        assert depth.shape == (375, 1242) and np.isfinite(depth).mean() > 0.5
        check_cloud_against_depth(probe.wait_output(stamp, "points"), depth, meta)
        assert "default" in log.read_text()
    finally:
        probe.close()
        process.send_signal(2)
        assert process.wait(timeout=15) == 0, log.read_text()[-3000:]


def test_mark_invalid_depth_follows_rep_117():
    from urcdc_ros.depth_node import mark_invalid_depth

    depth = np.array([[1.0, np.nan, 0.0, -2.0, 90.0]], np.float32)
    unusable = mark_invalid_depth(depth, max_depth_m=80.0, scratch=np.empty(depth.shape, bool))
    np.testing.assert_array_equal(depth, [[1.0, np.nan, np.nan, np.nan, np.inf]])
    np.testing.assert_array_equal(unusable, [[False, True, True, True, False]])
    clean = np.array([[1.0, 2.0]], np.float32)
    assert mark_invalid_depth(clean, max_depth_m=0.0) is None
    np.testing.assert_array_equal(clean, [[1.0, 2.0]])


def test_the_node_passes_its_camera_and_flip_tta_to_the_runtime():
    """infer_depth is the node's one inference call (the bag baseline times it): K and flip_tta go through."""
    from urcdc_ros.depth_node import infer_depth

    class RecordingRuntime:
        def __init__(self):
            self.calls = []

        def infer(self, rgb, intrinsics=None, flip_tta=False):
            self.calls.append((rgb.shape, None if intrinsics is None else intrinsics.tolist(), flip_tta))
            return np.ones(rgb.shape[:2], np.float32), np.zeros(rgb.shape[:2], np.float32)

    runtime, rgb, k = RecordingRuntime(), np.zeros((2, 4, 3), np.uint8), np.eye(3) * 5.0
    infer_depth(runtime, rgb, k, flip_tta=True)
    infer_depth(runtime, rgb, None, flip_tta=False)
    assert runtime.calls == [((2, 4, 3), k.tolist(), True), ((2, 4, 3), None, False)]
