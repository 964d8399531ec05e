"""One code base for Humble, Jazzy and Kilted: capability checks, Python 3.10, and the node on a real
frame with Humble-style message constructors and Humble's executor.

Humble cannot be installed here (no PyPI wheels), so its behaviour is reproduced where it differs:
Humble's rosidl_generator_py constructors assert that every keyword is a field (there is no
``check_fields``), and its rclpy has no ``rclpy.experimental.EventsExecutor``.
"""
from __future__ import annotations

import array
import importlib
import json
import logging
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.parameter import Parameter
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from conftest import REPO_ROOT
from urcdc_ros import ros_compat
from urcdc_ros.image_codec import image_to_array
from urcdc_ros.pointcloud import read_cloud_xyz

# Every message package the node, rclpy's parameter services and our probe construct messages from.
MESSAGE_MODULES = ("sensor_msgs.msg", "std_msgs.msg", "diagnostic_msgs.msg", "builtin_interfaces.msg",
                   "rcl_interfaces.msg", "geometry_msgs.msg")
RELIABLE = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
OUTPUTS = {"depth": Image, "depth/camera_info": CameraInfo, "depth/uncertainty": Image, "points": PointCloud2,
           "depth/colored": Image}


def humble_constructor(original_init):
    """Humble's generated __init__ check: every keyword names a field; ``check_fields`` is not one."""

    def __init__(self, **kwargs):
        fields = {slot[1:] for slot in self.__slots__} - {"check_fields"}
        assert all(key in fields for key in kwargs), \
            "Invalid arguments passed to constructor: %s" % ", ".join(sorted(k for k in kwargs if k not in fields))
        original_init(self, **kwargs)

    return __init__


@pytest.fixture
def humble_messages(monkeypatch):
    """Every generated message class of MESSAGE_MODULES constructs as on Humble, for this test."""
    for module_name in MESSAGE_MODULES:
        module = importlib.import_module(module_name)
        for name in dir(module):
            cls = getattr(module, name)
            if isinstance(cls, type) and hasattr(cls, "get_fields_and_field_types"):
                monkeypatch.setattr(cls, "__init__", humble_constructor(cls.__init__))
    ros_compat.message_factory.cache_clear()  # decisions made for Kilted's classes must not leak in or out
    yield
    ros_compat.message_factory.cache_clear()


@pytest.fixture
def humble_executors(monkeypatch):
    monkeypatch.setattr(ros_compat, "events_executor_class", lambda: None)


def test_humble_style_constructors_reject_check_fields(humble_messages):
    with pytest.raises(AssertionError, match="check_fields"):
        Image(check_fields=True)
    with pytest.raises(AssertionError, match="nonsense"):
        Image(nonsense=1)
    assert Image(height=2).height == 2
    assert ros_compat.message_factory(Image) is Image  # the capability check falls back
    Image()  # and what it returns constructs


def test_message_factory_keeps_payloads_uncopied_where_it_can():
    ros_compat.message_factory.cache_clear()
    payload = array.array("B", bytes(64))
    msg = ros_compat.message_factory(Image)()
    msg.data = payload
    assert msg.data is payload  # Jazzy/Kilted with check_fields=True: no copy of multi-MB images


@pytest.fixture
def ros_context():
    """A private rclpy context for one test, shut down after it."""
    context = Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


def test_executor_choice_and_fallback(humble_executors, ros_context):
    from rclpy.executors import SingleThreadedExecutor

    assert isinstance(ros_compat.make_executor("auto", context=ros_context), SingleThreadedExecutor)
    with pytest.raises(ValueError, match="no rclpy.experimental.EventsExecutor"):
        ros_compat.make_executor("events", context=ros_context)
    with pytest.raises(ValueError, match="choose one of"):
        ros_compat.make_executor("multi", context=ros_context)


def test_auto_falls_back_when_the_events_executor_cannot_be_made(monkeypatch, ros_context):
    """rclpy's EventsExecutor() calls faulthandler.enable(), which fails where stderr has no file descriptor."""
    import io

    from rclpy.executors import SingleThreadedExecutor

    def events_executor(context=None):
        raise io.UnsupportedOperation("fileno")

    monkeypatch.setattr(ros_compat, "events_executor_class", lambda: events_executor)
    assert isinstance(ros_compat.make_executor("auto", context=ros_context), SingleThreadedExecutor)
    with pytest.raises(ValueError, match="could not be created: fileno"):
        ros_compat.make_executor("events", context=ros_context)


def test_events_executor_where_rclpy_has_it():
    events = ros_compat.events_executor_class()
    if events is None:
        pytest.skip("this rclpy has no rclpy.experimental.EventsExecutor (Humble, early Jazzy)")
    context = Context()
    rclpy.init(context=context)
    try:
        executor = ros_compat.make_executor("auto", context=context)
        assert "EventsExecutor" in type(executor).__name__
    finally:
        context.try_shutdown()


@pytest.mark.parametrize("kind", ["auto", "single_threaded"])
def test_spin_serves_callbacks_while_another_thread_publishes_and_ends_on_shutdown(kind):
    """The node's pattern: the executor spins, a worker thread publishes; shutdown ends spin()."""
    from std_msgs.msg import String

    context = Context()
    rclpy.init(context=context)
    node = rclpy.create_node("spin_probe", context=context)
    received = []
    node.create_subscription(String, "chatter", lambda msg: received.append(msg.data), 10)
    publisher = node.create_publisher(String, "chatter", 10)
    executor = ros_compat.make_executor(kind, context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=ros_compat.spin, args=(executor, context), daemon=True)
    spinner.start()
    deadline = time.monotonic() + 20.0
    while len(received) < 3 and time.monotonic() < deadline:
        publisher.publish(String(data="x"))  # from this thread, while spin() runs in the other
        time.sleep(0.05)
    context.try_shutdown()
    spinner.join(timeout=5.0)
    assert len(received) >= 3 and not spinner.is_alive()
    executor.shutdown()
    node.destroy_node()


def test_node_on_a_real_frame_with_humble_messages_and_executor(humble_messages, humble_executors, shared_data,
                                                               nano_checkpoint):
    """The depth node in this process, built and spinning as on Humble: every output for a KITTI frame."""
    from urcdc_ros.depth_node import DepthNode

    root = shared_data / "kitti_depth_annotated"
    meta = json.loads((root / "intrinsics.json").read_text())
    rgb = np.ascontiguousarray(cv2.imread(str(next((root / "rgb").glob(f"*{meta['frames'][0]}*.png"))))[..., ::-1])
    height, width = rgb.shape[:2]

    context = Context()
    rclpy.init(context=context)
    node = DepthNode(context=context, namespace="/humble", parameter_overrides=[
        Parameter("model", value=str(nano_checkpoint)), Parameter("backend", value="torch"),
        Parameter("num_threads", value=1)])
    # a new camera size mid-stream exports a model (seconds): that line must reach the node's ROS log
    assert forwards_progress_to_ros()
    probe = rclpy.create_node("probe", namespace="/humble", context=context)
    received: dict[str, list] = {topic: [] for topic in OUTPUTS}
    for topic, msg_type in OUTPUTS.items():
        probe.create_subscription(msg_type, topic, received[topic].append, RELIABLE)
    diagnostics = []
    probe.create_subscription(DiagnosticArray, "/diagnostics", diagnostics.append, 10)
    image_pub = probe.create_publisher(Image, "image", RELIABLE)
    info_pub = probe.create_publisher(CameraInfo, "camera_info", RELIABLE)
    executor = ros_compat.make_executor(node.params.executor, context=context)
    assert type(executor).__name__ == "SingleThreadedExecutor"
    executor.add_node(node)
    executor.add_node(probe)
    spinner = threading.Thread(target=ros_compat.spin, args=(executor, context), daemon=True)
    spinner.start()
    try:
        deadline = time.monotonic() + 30.0
        while image_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        info = CameraInfo(width=width, height=height, distortion_model="plumb_bob")
        info.header.frame_id = "camera_color_left_optical_frame"
        info.p = [meta["fx"], 0.0, meta["cx"], 0.0, 0.0, meta["fy"], meta["cy"], 0.0, 0.0, 0.0, 1.0, 0.0]
        image = Image(height=height, width=width, encoding="rgb8", step=width * 3)
        image.header.frame_id, image.header.stamp.sec = info.header.frame_id, 42
        image.data = array.array("B", rgb.tobytes())
        info_pub.publish(info)
        time.sleep(0.3)
        image_pub.publish(image)
        deadline = time.monotonic() + 60.0
        while not all(received.values()) and time.monotonic() < deadline:
            time.sleep(0.05)
        missing = [topic for topic, msgs in received.items() if not msgs]
        assert not missing, f"no {missing} under Humble-style constructors; node stats {node.stats.snapshot()}"
        depth = image_to_array(received["depth"][0])
        assert depth.shape == (height, width) and np.isfinite(depth).mean() > 0.5
        assert image_to_array(received["depth/uncertainty"][0]).shape == (height, width)
        assert read_cloud_xyz(received["points"][0]).shape == (height, width, 3)
        assert received["depth/camera_info"][0].width == width
        assert (received["depth/colored"][0].width, received["depth/colored"][0].encoding) == (width, "bgr8")
        assert all(m.header.stamp.sec == 42 for msgs in received.values() for m in msgs)
        deadline = time.monotonic() + 5.0
        while not any("/humble/depth_node" in s.name for d in diagnostics for s in d.status) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        status = [s for d in diagnostics for s in d.status if "/humble/depth_node" in s.name][-1]
        assert {kv.key: kv.value for kv in status.values}["intrinsics"] == "camera_info"
        assert node.stats.snapshot().rejected == 0
    finally:
        context.try_shutdown()
        spinner.join(timeout=5.0)
        executor.shutdown()
        node.destroy_node()
        probe.destroy_node()
    assert not forwards_progress_to_ros()


def forwards_progress_to_ros() -> bool:
    from urcdc_ros.depth_node import _ForwardToRosLogger

    handlers = logging.getLogger("urcdc_model.deploy.onnx_export").handlers
    return any(isinstance(handler, _ForwardToRosLogger) for handler in handlers)


VERMIN_ARGS = ["-t=3.10-", "--no-tips", "--violations", "--eval-annotations",
               # torch's Tensor.long() reads as Python 2's long builtin to vermin
               "--exclude", "long"]


def _vermin() -> str:
    found = shutil.which("vermin") or str(Path(sys.executable).with_name("vermin"))
    if not Path(found).is_file():
        pytest.skip("vermin is not installed (it is in the dev extra: pip install -e '.[dev]')")
    return found


def test_sources_are_python_3_10_compatible():
    """Humble's Python is 3.10: no newer syntax or standard library in anything we ship or test."""
    result = subprocess.run([_vermin(), *VERMIN_ARGS, "urcdc_ros", "urcdc_model", "launch", "test", "setup.py"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_python_3_10_check_catches_newer_code(tmp_path):
    (tmp_path / "new.py").write_text("import tomllib\nfrom typing import Self\n")
    result = subprocess.run([_vermin(), *VERMIN_ARGS, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "tomllib" in result.stdout
