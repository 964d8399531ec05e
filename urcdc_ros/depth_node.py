"""depth_node: camera images in; metric depth, uncertainty and point clouds out.

    ros2 run urcdc_ros depth_node --ros-args -r image:=/camera/image_raw -r camera_info:=/camera/camera_info
    python -m urcdc_ros.depth_node --ros-args --params-file config/depth.yaml

Subscribes ``image`` (or ``image/compressed``) and ``camera_info``; publishes ``depth`` (32FC1 m,
REP 118), ``depth/camera_info``, ``depth/uncertainty`` (32FC1 m), ``points`` (organized
PointCloud2, depth_image_proc layout) and ``depth/colored`` (bgr8), each with the input's stamp and
frame, plus a status on ``/diagnostics``. The model gets the latest camera_info's K, so depth is
metric for that camera (without a usable camera_info: the model's fallback field of view, no cloud).
Callbacks only hand the newest frame to one worker thread, so a model slower than the camera drops
stale frames (counted) instead of queueing them. Runs on Humble, Jazzy and Kilted: what differs is
decided by capability checks in ``ros_compat`` (message constructors, the EventsExecutor).
"""
from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import Header

from urcdc_ros.allocator import keep_large_buffers
from urcdc_ros.camera import CameraSelector, FrameCamera
from urcdc_ros.cdr_image import parse_compressed_image, parse_image
from urcdc_ros.diagnostics import PipelineStats, status_level, status_values
from urcdc_ros.image_codec import (
    ImageDecodeError,
    colorize_depth,
    compressed_to_rgb,
    fill_image_msg,
    image_to_rgb,
    make_image_buffer,
)
from urcdc_ros.params import DepthNodeParams, ParameterError, declare_parameters
from urcdc_ros.pointcloud import CloudBuilder, fill_cloud_msg
from urcdc_ros.ros_compat import make_executor, message_factory, spin

WARN_EVERY_S = 5.0  # throttle for per-frame warnings
RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)


class StartupError(RuntimeError):
    """The node cannot start (bad parameters, model missing or unreadable); the text says why and what to do."""


def load_runtime(params: DepthNodeParams) -> Any:
    """The DepthRuntime for ``params``; any failure becomes a one-line StartupError naming the model and the fix."""
    from urcdc_model.deploy.errors import BackendUnavailableError, ModelFileError, one_line
    from urcdc_model.deploy.runtime import DepthRuntime

    try:
        return DepthRuntime.from_path(params.model, backend=params.backend, device=params.device,
                                      precision=params.precision, input_size=params.input_size,
                                      num_threads=params.num_threads or None)
    except (ModelFileError, BackendUnavailableError) as error:  # the message names the file and the fix
        raise StartupError(f"cannot load model '{params.model}': {error}") from error
    except Exception as error:  # noqa: BLE001 - every loader failure must reach the user as one clear line
        raise StartupError(f"cannot load model '{params.model}' (backend={params.backend}, device={params.device}): "
                           f"{type(error).__name__}: {one_line(error)}") from error


class ProgressForwarding:
    """The library's progress lines (a first-use ONNX export or engine build: seconds to minutes) in the
    node's ROS log, at start-up and when a new camera size needs a new export mid-stream."""

    def __init__(self, ros_logger: Any) -> None:
        from urcdc_model.cli import PROGRESS_LOGGERS

        self._handler = _ForwardToRosLogger(ros_logger)
        self._loggers = [logging.getLogger(name) for name in PROGRESS_LOGGERS]
        self._levels: list[int] = []

    def attach(self) -> None:
        self._levels = [logger.level for logger in self._loggers]
        for logger in self._loggers:
            logger.addHandler(self._handler)
            logger.setLevel(logging.INFO)

    def detach(self) -> None:
        for logger, level in zip(self._loggers, self._levels):
            logger.removeHandler(self._handler)
            logger.setLevel(level)
        self._levels = []


class _ForwardToRosLogger(logging.Handler):
    """Python logging records → the node's ROS logger (INFO and up), so library progress lines reach the user."""

    def __init__(self, ros_logger: Any) -> None:
        super().__init__(logging.INFO)
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        log = self._ros_logger.warning if record.levelno >= logging.WARNING else self._ros_logger.info
        log(record.getMessage())


def infer_depth(runtime: Any, rgb: np.ndarray, intrinsics: np.ndarray | None, flip_tta: bool
                ) -> tuple[np.ndarray, np.ndarray]:
    """The node's inference call: depth_m, uncertainty_m at the image's size (bag tools time it alone).

    intrinsics: the frame's 3×3 K, or None for the model's fallback field of view. flip_tta: the
    runtime also runs the mirrored input and blends both.
    """
    return runtime.infer(rgb, intrinsics=intrinsics, flip_tta=flip_tta)


def mark_invalid_depth(depth_m: np.ndarray, max_depth_m: float, scratch: np.ndarray | None = None
                       ) -> np.ndarray | None:
    """In place, REP 117: NaN where the model gave no usable value, +Inf beyond ``max_depth_m`` (0 = none).

    Returns the mask of unusable pixels, or None when there are none (the usual case, found with one
    vectorised test, so no masking pass is paid). ``scratch``: a reusable bool array of depth's shape.
    """
    with np.errstate(invalid="ignore"):
        usable = np.greater(depth_m, 0, out=scratch)  # False for NaN too
        unusable = None if usable.all() else ~usable
        if unusable is not None:
            depth_m[unusable] = np.nan
        if max_depth_m > 0:
            too_far = np.greater(depth_m, max_depth_m, out=usable)
            if too_far.any():
                depth_m[too_far] = np.inf
    return unusable


class DepthNode(Node):
    """Thin ROS shell around DepthRuntime and the plain conversion functions."""

    def __init__(self, node_name: str = "depth_node", **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        try:
            self._params = declare_parameters(self)
        except ParameterError as error:
            raise StartupError(f"invalid parameters: {error}") from error
        params = self._params
        self._progress = ProgressForwarding(self.get_logger())
        self._progress.attach()
        try:
            self._runtime = load_runtime(params)
        except StartupError:
            self._progress.detach()
            raise
        self.get_logger().info(f"model '{params.model}': {self._runtime!r}")

        input_qos = qos_profile_sensor_data if params.input_qos == "sensor_data" else RELIABLE_QOS
        output_qos = RELIABLE_QOS if params.output_qos == "reliable" else qos_profile_sensor_data
        self._depth_pub = self.create_publisher(Image, "depth", output_qos)
        self._info_pub = self.create_publisher(CameraInfo, "depth/camera_info", output_qos)
        self._uncertainty_pub = self.create_publisher(Image, "depth/uncertainty", output_qos)
        self._points_pub = self.create_publisher(PointCloud2, "points", output_qos)
        self._colored_pub = self.create_publisher(Image, "depth/colored", output_qos)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # raw=True: the serialized bytes, read in place by cdr_image (rclpy's conversion would copy
        # every frame three more times and build a Python object per field).
        if params.input_transport == "compressed":
            self._image_sub = self.create_subscription(CompressedImage, "image/compressed", self._on_image, input_qos,
                                                       raw=True)
        else:
            self._image_sub = self.create_subscription(Image, "image", self._on_image, input_qos, raw=True)
        self.create_subscription(CameraInfo, "camera_info", self._on_camera_info, input_qos)

        self._stats = PipelineStats()
        self._pending: tuple[Any, float] | None = None
        self._pending_lock = threading.Lock()
        self._frame_ready = threading.Event()
        self._camera_info: CameraInfo | None = None
        self._cameras = CameraSelector(self.resolve_topic_name("camera_info"), check_k=self._check_k)
        self._camera_problem: str | None = None
        self._info_out: tuple[FrameCamera, CameraInfo] | None = None
        self._new_image = message_factory(Image)
        self._new_cloud = message_factory(PointCloud2)
        self._new_point_field = message_factory(PointField)
        self._last_warning_s: dict[str, float] = {}
        self._buffers: dict[str, Any] = {}
        self._masks: dict[tuple[int, int], np.ndarray] = {}
        self._cloud_builder = CloudBuilder()
        self._rejected_at_last_status = 0

        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.create_timer(params.diagnostics_period_s, self._publish_diagnostics)
        self._running = True
        self._worker = threading.Thread(target=self._work, name="depth_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(f"listening on {self._image_sub.topic_name} ({params.input_qos}); "
                               f"publishing {self._depth_pub.topic_name} and siblings ({params.output_qos})")

    # -- callbacks: cheap, hand over to the worker --------------------------------------------

    def _on_image(self, msg: bytes) -> None:
        with self._pending_lock:
            replaced = self._pending is not None
            self._pending = (msg, time.monotonic())
        self._stats.frame_received(replaced_pending=replaced)
        self._frame_ready.set()

    def _on_camera_info(self, msg: CameraInfo) -> None:
        self._camera_info = msg

    def _on_set_parameters(self, changes: list[Any]) -> SetParametersResult:
        try:
            updated = self._params.replace(**{p.name: p.value for p in changes})
        except ParameterError as error:
            return SetParametersResult(successful=False, reason=str(error))
        self._params = updated  # one reference swap: the worker sees old or new values, never a mix
        return SetParametersResult(successful=True)

    # -- worker ---------------------------------------------------------------------------------

    def _work(self) -> None:
        while self._running:
            if not self._frame_ready.wait(timeout=0.1):
                continue
            with self._pending_lock:
                pending, self._pending = self._pending, None
                self._frame_ready.clear()
            if pending is None:
                continue
            try:
                self.process(*pending)
            except Exception as error:  # noqa: BLE001 - one bad frame must never stop the node
                self._stats.frame_rejected()
                self._warn("process", f"frame dropped: {type(error).__name__}: {error}")

    def process(self, msg: bytes | Image | CompressedImage, received_s: float) -> bool:
        """Run one frame (serialized, or a message) through the model and publish what is subscribed.

        Returns False when the frame was dropped (nobody listening, or an input that is no image).
        """
        params = self._params
        want_depth = params.publish_depth and self._depth_pub.get_subscription_count() > 0
        want_info = params.publish_depth and self._info_pub.get_subscription_count() > 0
        want_uncertainty = params.publish_uncertainty and self._uncertainty_pub.get_subscription_count() > 0
        want_points = params.publish_points and self._points_pub.get_subscription_count() > 0
        want_colored = params.publish_colored and self._colored_pub.get_subscription_count() > 0
        if not (want_depth or want_info or want_uncertainty or want_points or want_colored):
            self._stats.frame_skipped()
            return False
        try:
            msg = self._parse(msg)
            rgb = compressed_to_rgb(msg) if hasattr(msg, "format") else image_to_rgb(msg)
        except ImageDecodeError as error:
            self._stats.frame_rejected()
            self._warn("decode", f"frame dropped, bad image on {self._image_sub.topic_name}: {error}")
            return False
        height, width = rgb.shape[:2]
        camera = self._camera_for(width, height)

        inference_start_s = time.monotonic()
        depth_out, uncertainty_out = infer_depth(self._runtime, rgb, camera.k, params.flip_tta)
        inference_ms = (time.monotonic() - inference_start_s) * 1e3
        if depth_out.shape != (height, width) or uncertainty_out.shape != (height, width):
            raise RuntimeError(f"model returned {depth_out.shape}/{uncertainty_out.shape} for a {width}x{height} image")
        # Depth first: it is what most consumers wait for, so nothing else delays its publication.
        depth_m = self._buffer("depth", height, width, "32FC1")
        np.copyto(depth_m.view, depth_out)
        mask = self._masks.get((height, width))
        if mask is None:
            self._masks = {(height, width): (mask := np.empty((height, width), bool))}
        unusable = mark_invalid_depth(depth_m.view, params.max_depth_m, scratch=mask)
        stamp = Time(sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec)
        header = Header(stamp=stamp, frame_id=params.frame_id or msg.header.frame_id)
        if want_depth:
            self._depth_pub.publish(fill_image_msg(self._new_image(), depth_m, "32FC1", header))
        filter_cloud = want_points and (params.max_uncertainty_m > 0 or params.max_relative_uncertainty > 0)
        uncertainty_m = self._buffer("uncertainty", height, width, "32FC1")
        if want_uncertainty or filter_cloud:
            np.copyto(uncertainty_m.view, uncertainty_out)
            if unusable is not None:
                uncertainty_m.view[unusable] = np.nan
        if want_uncertainty:
            self._uncertainty_pub.publish(fill_image_msg(self._new_image(), uncertainty_m, "32FC1", header))
        if camera.intrinsics is not None and want_info:
            self._info_pub.publish(self._output_camera_info(camera, header))
        if camera.intrinsics is not None and want_points:
            payload = self._cloud_builder.build(
                depth_m.view, camera.intrinsics, stride=params.cloud_stride, rgb=rgb if params.cloud_rgb else None,
                uncertainty_m=uncertainty_m.view if filter_cloud else None, max_uncertainty_m=params.max_uncertainty_m,
                max_relative_uncertainty=params.max_relative_uncertainty)
            self._points_pub.publish(fill_cloud_msg(self._new_cloud(), payload, header, self._new_point_field))
        if want_colored:
            colored = self._buffer("colored", height, width, "bgr8")
            colorize_depth(depth_m.view, params.max_depth_m or self._runtime.max_depth, out_bgr=colored.view)
            self._colored_pub.publish(fill_image_msg(self._new_image(), colored, "bgr8", header))
        self._stats.frame_published((time.monotonic() - received_s) * 1e3, inference_ms)
        return True

    # -- helpers ----------------------------------------------------------------------------------

    def _parse(self, msg: bytes | Image | CompressedImage) -> Any:
        """The image fields of a serialized message (views, no copy); a message object passes through."""
        if not isinstance(msg, (bytes, bytearray, memoryview)):
            return msg
        return parse_compressed_image(msg) if self._params.input_transport == "compressed" else parse_image(msg)

    def _buffer(self, key: str, height: int, width: int, encoding: str) -> Any:
        """A reused output buffer; reallocated only when the image size changes."""
        buffer = self._buffers.get(key)
        if buffer is None or buffer.view.shape[:2] != (height, width):
            buffer = self._buffers[key] = make_image_buffer(height, width, encoding)
        return buffer

    def _camera_for(self, width: int, height: int) -> FrameCamera:
        """The latest camera_info's intrinsics for this frame size, or the fallback (warned, in diagnostics)."""
        camera = self._cameras.select(self._camera_info, width, height)
        self._camera_problem = camera.problem
        if camera.problem is not None:
            # Missing camera_info is said once; a broken one every WARN_EVERY_S while it lasts.
            self._warn("no_camera_info" if self._camera_info is None else "bad_camera_info", camera.problem,
                       once=self._camera_info is None)
        return camera

    def _output_camera_info(self, camera: FrameCamera, header: Header) -> CameraInfo:
        """The input camera_info restamped; built once per camera (the fields' setters are slow), reused."""
        cached = self._info_out
        if cached is None or cached[0] is not camera:
            info = camera.camera_info
            out = message_factory(CameraInfo)()
            out.height, out.width, out.distortion_model = info.height, info.width, info.distortion_model
            out.d, out.k, out.r, out.p = info.d, info.k, info.r, info.p
            out.binning_x, out.binning_y, out.roi = info.binning_x, info.binning_y, info.roi
            cached = self._info_out = (camera, out)
        cached[1].header = header
        return cached[1]

    def _check_k(self, k: np.ndarray, frame_hw: tuple[int, int]) -> None:
        """The model's own check of K for a frame size (DepthRuntime.plan raises ValueError; plans are cached)."""
        plan = getattr(self._runtime, "plan", None)
        if plan is not None:
            plan(frame_hw, k)

    def _warn(self, key: str, text: str, once: bool = False) -> None:
        """A warning at most every WARN_EVERY_S per kind (or once per run)."""
        now = time.monotonic()
        last = self._last_warning_s.get(key)
        if last is not None and (once or now - last < WARN_EVERY_S):
            return
        self._last_warning_s[key] = now
        self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        snap = self._stats.snapshot()
        level, message = status_level(snap, self._rejected_at_last_status, self._camera_problem)
        self._rejected_at_last_status = snap.rejected
        status = DiagnosticStatus(
            level=bytes([level]), name=f"{self.get_fully_qualified_name()}: depth pipeline", message=message,
            hardware_id=f"urcdc {self._runtime.backend}/{self._runtime.device}",
            values=[KeyValue(key=k, value=v) for k, v in status_values(snap)]
            + [KeyValue(key="intrinsics", value="fallback" if self._camera_problem else "camera_info")])
        array_msg = DiagnosticArray(status=[status])
        array_msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(array_msg)

    @property
    def params(self) -> DepthNodeParams:
        return self._params

    @property
    def stats(self) -> PipelineStats:
        return self._stats

    @property
    def runtime(self) -> Any:
        return self._runtime

    def destroy_node(self) -> None:
        self._running = False
        self._frame_ready.set()
        if self._worker.is_alive():
            self._worker.join(timeout=5.0)
        self._progress.detach()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """rclpy.init, spin until Ctrl-C or shutdown, clean exit; 1 with a one-line reason when start-up fails."""
    keep_large_buffers()
    rclpy.init(args=args)
    node = executor = None
    try:
        node = DepthNode()
        executor = make_executor(node.params.executor)
        executor.add_node(node)
        node.get_logger().info(f"spinning with {type(executor).__name__}")
        spin(executor)
    except StartupError as error:
        rclpy.logging.get_logger("depth_node").fatal(str(error))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
