"""Replay a bag into the depth node over real DDS and report speed, drops and accuracy.

    python -m urcdc_ros.bag_bench --bag drive_0001 --output runs/drive_0001 --launch-node
    python -m urcdc_ros.bag_bench --bag my.mcap_dir --output out --node-namespace /front \\
        --image-topic /cam/image_raw --info-topic /cam/camera_info --gt-topic ''
    python -m urcdc_ros.bag_bench --bag drive_0001 --output out --launch-node --max-rate --model-baseline \\
        --subscribe depth/camera_info --subscribe points          # the node's overhead over its model

The bag is preloaded (decoding stays out of the measurement), then each frame's camera_info and
image are published to ``<ns>/camera_info`` and ``<ns>/image`` with the bag's header stamps.
Outputs on ``<ns>/depth`` and ``<ns>/depth/uncertainty`` (and ``--subscribe`` ones) are matched to
inputs by header stamp; latency is publish → receive in this process, for depth and for the
frame's last output. Outputs are received serialized and only their header (and, for scoring, the
image) is read, so this consumer's deserialisation does not count as node time. ``--rate R``
publishes at R times the recorded rate (open loop: a node slower than the camera drops frames,
and the report counts them);
``--max-rate`` publishes each frame as soon as the previous one's outputs arrived (closed loop:
the node's best-case latency and sustained throughput). A few warm-up frames, stamped outside the
bag's range, go first and are not counted.

The tool uses the caller's ROS environment (domain, discovery range, RMW); it only sets
FASTDDS_DEFAULT_PROFILES_FILE to the shipped large-data profile when it is unset, because with
Fast DDS's default transports multi-MB images are lost between processes.
"""
from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from urcdc_model import cli
from urcdc_ros.allocator import keep_large_buffers
from urcdc_ros.bag_frames import (DEFAULT_GT_TOPIC, DEFAULT_IMAGE_TOPIC, DEFAULT_INFO_TOPIC, BagContents,
                                  BagFrame, BagTopicError, load_bag)
from urcdc_ros.bag_node import (ModelBaseline, NodeProcess, apply_fastdds_profile, model_only_latency,
                                node_parameters)
from urcdc_ros.bag_report import FrameScorer, ReplayTiming, build_report, print_summary, write_report
from urcdc_ros.cdr_image import parse_header, parse_image

LAUNCHED_NODE_NAMESPACE = "/urcdc_bench"
WARMUP_STAMP_OFFSET_NS = 1_000_000_000  # warm-up frames are stamped this far before the bag's first frame


def join_topic(namespace: str, name: str) -> str:
    namespace = "/" + namespace.strip("/")
    return f"{namespace.rstrip('/')}/{name}"


# ---------------------------------------------------------------------------------------------
# Replay


@dataclass
class ReplayOptions:
    """How frames are sent: ``rate`` × recorded speed (open loop) or, with rate None, closed loop."""

    rate: float | None = 1.0
    node_namespace: str = "/"
    reliable: bool = True  # reliable publishers also reach best-effort subscribers
    warmup_frames: int = 2
    startup_timeout_s: float = 180.0  # model loading on a busy CPU can take a while
    discovery_timeout_s: float = 30.0  # a node already running must subscribe to our image topic by then
    frame_timeout_s: float = 30.0  # closed loop: give up on a frame after this long
    drain_timeout_s: float = 10.0  # open loop: wait at most this long after the last publish for late outputs
    wait_for_uncertainty: bool = True
    # More node outputs to subscribe (EXTRA_OUTPUTS keys); a frame is complete when all of them arrived.
    extra_outputs: tuple[str, ...] = ()


# Outputs of the depth node the replay can subscribe besides depth and depth/uncertainty.
EXTRA_OUTPUTS = {"depth/camera_info": "CameraInfo", "points": "PointCloud2", "depth/colored": "Image"}


@dataclass
class _Arrivals:
    depth_s: dict[int, float] = field(default_factory=dict)
    uncertainty_s: dict[int, float] = field(default_factory=dict)
    extra_s: dict[str, dict[int, float]] = field(default_factory=dict)  # output name -> stamp -> time


class _ReplayNode:
    """Publishers for the node's inputs, subscriptions to its outputs; callbacks only record and queue."""

    def __init__(self, context, options: ReplayOptions, scorer: FrameScorer, expected_stamps: set[int]):
        from rclpy.node import Node
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs import msg as sensor_msgs
        from sensor_msgs.msg import CameraInfo, Image

        self.node = Node("urcdc_bag_bench", context=context)
        ns = options.node_namespace
        pub_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                             reliability=ReliabilityPolicy.RELIABLE if options.reliable
                             else ReliabilityPolicy.BEST_EFFORT)
        self.image_topic, self.info_topic = join_topic(ns, "image"), join_topic(ns, "camera_info")
        self.depth_topic, self.uncertainty_topic = join_topic(ns, "depth"), join_topic(ns, "depth/uncertainty")
        self.image_pub = self.node.create_publisher(Image, self.image_topic, pub_qos)
        self.info_pub = self.node.create_publisher(CameraInfo, self.info_topic, pub_qos)
        # Best effort matches both best-effort and reliable publishers of the node under test. Outputs
        # arrive serialized (raw) and only what is needed is read from them (cdr_image), so this
        # consumer's own deserialisation (three copies per output in rclpy) is not counted as node time.
        self.node.create_subscription(Image, self.depth_topic, self._on_depth, qos_profile_sensor_data, raw=True)
        self.node.create_subscription(Image, self.uncertainty_topic, self._on_uncertainty, qos_profile_sensor_data,
                                      raw=True)
        for name in options.extra_outputs:
            self.node.create_subscription(getattr(sensor_msgs, EXTRA_OUTPUTS[name]), join_topic(ns, name),
                                          lambda msg, name=name: self._record_extra(msg, name),
                                          qos_profile_sensor_data, raw=True)
        self.scorer = scorer
        self.score_queue: queue.Queue = queue.Queue()
        self.expected = expected_stamps
        self.arrivals = _Arrivals()
        self.warmup_arrivals = _Arrivals()
        self.changed = threading.Condition()
        self.extra_outputs = tuple(options.extra_outputs)
        self.defer_scoring = options.rate is None
        self.deferred: list = []

    @staticmethod
    def _stamp(serialized: bytes) -> int:
        stamp = parse_header(serialized).stamp
        return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)

    def _record(self, msg, kind: str) -> None:
        now_s = time.perf_counter()
        stamp = self._stamp(msg)
        with self.changed:
            if stamp in self.expected:
                book = self.arrivals.depth_s if kind == "depth" else self.arrivals.uncertainty_s
                if stamp in book:
                    return  # a duplicate cannot be newer news
                book[stamp] = now_s
            else:
                book = self.warmup_arrivals.depth_s if kind == "depth" else self.warmup_arrivals.uncertainty_s
                book.setdefault(stamp, now_s)
                self.changed.notify_all()
                return
            self.changed.notify_all()
        # Scored on another thread, so the metrics never delay the receive time of the next output;
        # closed loop, only once the frame is complete (scoring must not compete with its other outputs).
        if self.defer_scoring:
            with self.changed:
                self.deferred.append((stamp, kind, msg))
        else:
            self.score_queue.put((stamp, kind, msg))

    def flush_scoring(self) -> None:
        """Hand the deferred outputs to the scoring thread."""
        with self.changed:
            deferred, self.deferred = self.deferred, []
        for item in deferred:
            self.score_queue.put(item)

    def _record_extra(self, msg, name: str) -> None:
        now_s = time.perf_counter()
        stamp = self._stamp(msg)
        with self.changed:
            arrivals = self.arrivals if stamp in self.expected else self.warmup_arrivals
            arrivals.extra_s.setdefault(name, {}).setdefault(stamp, now_s)
            self.changed.notify_all()

    def score_outputs(self) -> None:
        """Worker: feed queued outputs to the scorer until the None sentinel."""
        while (item := self.score_queue.get()) is not None:
            try:
                stamp, kind, serialized = item
                self.scorer.add_output(stamp, kind, parse_image(serialized))
            finally:
                self.score_queue.task_done()

    def _on_depth(self, msg) -> None:
        self._record(msg, "depth")

    def _on_uncertainty(self, msg) -> None:
        self._record(msg, "uncertainty")


def _to_ros_messages(frame: BagFrame, stamp_ns: int):
    """The rclpy Image and CameraInfo of a preloaded frame, stamped ``stamp_ns``."""
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Header

    header = Header(stamp=Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                    frame_id=frame.frame_id)
    image = Image(header=header, height=frame.height, width=frame.width, encoding=frame.encoding,
                  is_bigendian=int(frame.pixels.dtype.byteorder == ">"), step=frame.pixels.strides[0])
    image.data = frame.pixels.tobytes()
    info = None
    if frame.camera_info is not None:
        ci = frame.camera_info
        info = CameraInfo(header=header, width=ci.width, height=ci.height, distortion_model=ci.distortion_model,
                          binning_x=ci.binning_x, binning_y=ci.binning_y)
        info.header.frame_id = ci.frame_id or frame.frame_id
        info.d = ci.d.tolist()
        info.k, info.r, info.p = ci.k, ci.r, ci.p
    return image, info


def replay(contents: BagContents, options: ReplayOptions, scorer: FrameScorer,
           node_process: NodeProcess | None = None, baseline: ModelBaseline | None = None) -> ReplayTiming:
    """Publish every frame of ``contents`` to the node and wait for its outputs.

    baseline (closed loop only): after each frame's outputs arrived (and were scored), time the
    model alone on the same frame, so both see the same machine load.
    """
    import rclpy

    from urcdc_ros.ros_compat import make_executor, spin

    frames = contents.frames
    stamps = [f.stamp_ns for f in frames]
    if len(set(stamps)) != len(stamps):
        raise ValueError(f"{contents.path}: {contents.image_topic} has repeated header stamps; outputs are "
                         "matched to inputs by stamp, so each frame needs its own")
    apply_fastdds_profile()
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = make_executor("auto", context=context)
    replay_node = _ReplayNode(context, options, scorer, set(stamps))
    executor.add_node(replay_node.node)
    stop_spinning = threading.Event()
    spinner = threading.Thread(target=spin, args=(executor, context, stop_spinning.is_set), daemon=True)
    spinner.start()
    scoring = threading.Thread(target=replay_node.score_outputs, daemon=True)
    scoring.start()
    timing = ReplayTiming(stamps_ns=stamps)
    try:
        messages = [_to_ros_messages(f, f.stamp_ns) for f in frames]
        expect_uncertainty = _warm_up(replay_node, frames[0], options, node_process)
        timing.uncertainty_expected = expect_uncertainty
        scorer.expect_uncertainty = expect_uncertainty
        if options.rate is None:
            node_cpu_start_s = node_process.cpu_seconds() if node_process is not None else None
            _closed_loop(replay_node, messages, stamps, options, expect_uncertainty, timing, baseline)
            node_cpu_end_s = node_process.cpu_seconds() if node_process is not None else None
            if node_cpu_start_s is not None and node_cpu_end_s is not None:
                timing.node_cpu_s = node_cpu_end_s - node_cpu_start_s
        else:
            _open_loop(replay_node, messages, stamps, options, expect_uncertainty, timing)
        replay_node.flush_scoring()  # late outputs of the last frames
        with replay_node.changed:
            timing.depth_received_s = dict(replay_node.arrivals.depth_s)
            timing.uncertainty_received_s = dict(replay_node.arrivals.uncertainty_s)
            timing.extra_received_s = {name: dict(replay_node.arrivals.extra_s.get(name, {}))
                                       for name in options.extra_outputs}
    finally:
        stop_spinning.set()
        spinner.join(timeout=5.0)
        executor.shutdown(timeout_sec=2.0)
        replay_node.node.destroy_node()
        context.try_shutdown()
        replay_node.score_queue.put(None)
        scoring.join()
    return timing


def _publish(replay_node: _ReplayNode, image, info) -> None:
    if info is not None:
        replay_node.info_pub.publish(info)
    replay_node.image_pub.publish(image)


def _warm_up(replay_node: _ReplayNode, frame: BagFrame, options: ReplayOptions,
             node_process: NodeProcess | None) -> bool:
    """Send warm-up frames until the node answers; returns whether it publishes uncertainty."""
    node = replay_node.node
    deadline = time.monotonic() + options.startup_timeout_s
    # A node that is already running is discovered within seconds; one we start must load its model first.
    discovery_deadline = deadline if node_process is not None else min(
        deadline, time.monotonic() + options.discovery_timeout_s)
    base_stamp = frame.stamp_ns - WARMUP_STAMP_OFFSET_NS
    hint = _WaitingHint(node_process, options.node_namespace)
    answered = 0
    attempt = 0
    while answered < max(options.warmup_frames, 1):
        stamp = base_stamp - attempt * 1_000_000
        attempt += 1
        image, info = _to_ros_messages(frame, stamp)
        # Publishing before the node's subscription exists would be lost: wait for it to match.
        while replay_node.image_pub.get_subscription_count() == 0:
            _check_deadline(discovery_deadline, node_process, options,
                            f"no subscriber on {replay_node.image_topic} within "
                            f"{discovery_deadline - deadline + options.startup_timeout_s:.0f} s")
            hint.maybe_say(replay_node.image_topic, discovery_deadline)
            time.sleep(0.1)
        _publish(replay_node, image, info)
        wait_until = time.monotonic() + 5.0
        with replay_node.changed:
            while stamp not in replay_node.warmup_arrivals.depth_s and time.monotonic() < wait_until:
                replay_node.changed.wait(timeout=0.2)
            got = stamp in replay_node.warmup_arrivals.depth_s
        if got:
            answered += 1
        else:
            hint.maybe_say(replay_node.image_topic, deadline)
            _check_deadline(deadline, node_process, options,
                            f"no answer on {replay_node.depth_topic} to frames on {replay_node.image_topic} "
                            f"within {options.startup_timeout_s:.0f} s")
    expect_uncertainty = options.wait_for_uncertainty and node.count_publishers(replay_node.uncertainty_topic) > 0
    if expect_uncertainty:  # let the last warm-up uncertainty arrive so it cannot be mistaken for a late one
        time.sleep(0.2)
    return expect_uncertainty


class _WaitingHint:
    """One line on stderr when the node has been silent for a few seconds: what we wait for and what to do."""

    AFTER_S = 5.0

    def __init__(self, node_process: NodeProcess | None, namespace: str):
        self._start = time.monotonic()
        self._node_process = node_process
        self._namespace = namespace
        self._said = False

    def maybe_say(self, image_topic: str, deadline: float) -> None:
        if self._said or time.monotonic() - self._start < self.AFTER_S:
            return
        self._said = True
        left_s = max(0.0, deadline - time.monotonic())
        if self._node_process is None:
            message = (f"no depth node is listening on {image_topic} yet; waiting up to {left_s:.0f} s more. "
                       "None running? Add --launch-node to start one, or --node-namespace to point at yours")
        else:
            message = (f"waiting for the depth node to load its model (up to {left_s:.0f} s more; a model's first "
                       f"use may export it to ONNX first, up to a minute); node log: {self._node_process.log_path}")
        print(message, file=sys.stderr, flush=True)


def _check_deadline(deadline: float, node_process: NodeProcess | None, options: ReplayOptions, what: str) -> None:
    if node_process is not None:
        node_process.check_alive()
    if time.monotonic() > deadline:
        hint = (f"; node log {node_process.log_path}:\n{node_process.log_tail()}" if node_process is not None
                else f"; is the depth node running in namespace '{options.node_namespace}' "
                     "(--node-namespace), on this ROS_DOMAIN_ID, with the same Fast DDS profile?")
        raise TimeoutError(f"{what}{hint}")


def _frame_done(replay_node: _ReplayNode, stamp: int, expect_uncertainty: bool) -> bool:
    arrivals = replay_node.arrivals
    return (stamp in arrivals.depth_s and (not expect_uncertainty or stamp in arrivals.uncertainty_s)
            and all(stamp in arrivals.extra_s.get(name, ()) for name in replay_node.extra_outputs))


def _closed_loop(replay_node, messages, stamps, options, expect_uncertainty, timing: ReplayTiming,
                 baseline: ModelBaseline | None = None) -> None:
    for index, ((image, info), stamp) in enumerate(zip(messages, stamps)):
        timing.sent_s[stamp] = time.perf_counter()
        _publish(replay_node, image, info)
        deadline = time.monotonic() + options.frame_timeout_s
        with replay_node.changed:
            while not _frame_done(replay_node, stamp, expect_uncertainty) and time.monotonic() < deadline:
                replay_node.changed.wait(timeout=0.1)
        replay_node.flush_scoring()
        if baseline is not None:
            replay_node.score_queue.join()  # nothing else of ours runs while the model is timed
            timing.model_ms[stamp], timing.model_cpu_ms[stamp] = baseline.time_frame(index)


def _open_loop(replay_node, messages, stamps, options, expect_uncertainty, timing: ReplayTiming) -> None:
    start_s = time.perf_counter()
    for (image, info), stamp in zip(messages, stamps):
        target_s = start_s + (stamp - stamps[0]) / 1e9 / options.rate
        while (delay := target_s - time.perf_counter()) > 0:
            time.sleep(min(delay, 0.05))
        timing.sent_s[stamp] = time.perf_counter()
        _publish(replay_node, image, info)
    # A latest-frame-only node answers at most the frame in work and the newest waiting one after the
    # last publish; once nothing has come for a few of its latencies, the rest were dropped.
    deadline = time.monotonic() + options.drain_timeout_s
    with replay_node.changed:
        while time.monotonic() < deadline and not all(
                _frame_done(replay_node, s, expect_uncertainty) for s in stamps):
            arrivals = replay_node.arrivals.depth_s
            latencies = [arrivals[s] - timing.sent_s[s] for s in arrivals if s in timing.sent_s]
            last_event = max([timing.sent_s[stamps[-1]], *arrivals.values()])
            if latencies and time.perf_counter() - last_event > max(1.0, 3.0 * max(latencies)):
                break
            replay_node.changed.wait(timeout=0.1)


# ---------------------------------------------------------------------------------------------
# One call for the CLI, the demo and the tests


def run_bench(bag: str | Path, report_dir: str | Path, image_topic: str = DEFAULT_IMAGE_TOPIC,
              info_topic: str | None = DEFAULT_INFO_TOPIC, gt_topic: str | None = None,
              options: ReplayOptions | None = None, launch_node: bool = False, params_file: Path | None = None,
              node_params: Sequence[str] = (), max_frames: int | None = None, crop: str = "garg",
              min_depth_m: float = 1e-3, max_depth_m: float = 80.0, verbose: bool = True,
              node_process: NodeProcess | None = None, model_baseline: bool = False,
              model_only: dict | None = None) -> dict:
    """Load ``bag``, replay it into the node (started here when ``launch_node``), write the report.

    node_process: a node the caller started (watched for crashes, left running).
    model_baseline: time the node's model alone on the bag's frames (settings from
    ``params_file``/``node_params``) and report node latency against it: closed loop, after each
    node frame on the same frame (interleaved, so both see the same load; per-frame differences);
    open loop, ten calls before the node starts. model_only: a baseline measured by the caller
    (``model_only_latency``).

    Returns the report dictionary (also written to ``report_dir/report.json``).
    """
    options = options or ReplayOptions()
    keep_large_buffers()  # receiving multi-MB outputs, as the node sends them (see urcdc_ros.allocator)
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    contents = load_bag(bag, image_topic=image_topic, info_topic=info_topic, gt_topic=gt_topic,
                        max_frames=max_frames)
    if verbose:
        print(f"{contents.path}: {len(contents.frames)} frames of {contents.image_topic} "
              f"({contents.frames[0].width}x{contents.frames[0].height}, {contents.frames[0].encoding}), "
              f"{contents.frames_with_gt} with ground truth", flush=True)
    scorer = FrameScorer(contents, crop=crop, min_depth_m=min_depth_m, max_depth_m=max_depth_m)
    baseline = None
    if model_baseline and model_only is None:
        params = node_parameters(params_file, node_params)
        if options.rate is None:  # closed loop: the model alone after each node frame, under the same load
            if verbose:
                print("loading the model for the interleaved model-alone baseline", flush=True)
            baseline = ModelBaseline(contents.frames, params)
        else:
            if verbose:
                print("timing the model alone on the bag's frames (baseline)", flush=True)
            model_only = model_only_latency(contents.frames, params)
    own_process = None
    if launch_node:
        if options.node_namespace in ("", "/"):
            options.node_namespace = LAUNCHED_NODE_NAMESPACE
        own_process = node_process = NodeProcess(options.node_namespace, report_dir / "node.log", params_file,
                                                 node_params)
    try:
        timing = replay(contents, options, scorer, node_process, baseline)
    finally:
        if own_process is not None:
            own_process.stop()
    if baseline is not None and timing.model_ms:
        model_only = baseline.summary(list(timing.model_ms.values()), list(timing.model_cpu_ms.values()))
        model_only["interleaved"] = True
    report = build_report(contents, timing, scorer, options_summary={
        "mode": "max-rate (closed loop)" if options.rate is None else f"rate {options.rate:g}x (open loop)",
        "node_namespace": options.node_namespace, "launched_node": launch_node,
        "qos": "reliable" if options.reliable else "best_effort", "model_only_latency_ms": model_only,
        "outputs_subscribed": ["depth", "depth/uncertainty", *options.extra_outputs]})
    write_report(report, contents, scorer, report_dir)
    if verbose:
        print_summary(report)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_ros.bag_bench", "Replay a bag into the depth node; report latency, FPS, drops, "
                            "KITTI metrics and uncertainty calibration.", script="urcdc-bag-bench")
    parser.add_argument("--bag", required=True, type=Path,
                        help="rosbag2 folder (mcap/sqlite3), a lone .mcap file or a ROS 1 .bag")
    output = parser.add_mutually_exclusive_group(required=True)  # required, under either spelling
    output.add_argument("--output", type=Path, help="folder for report.json, report.md, PNGs")
    cli.hidden_alias(output, "--report", dest="output", type=Path)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, default=1.0,
                      help="publish at this multiple of the recorded rate (open loop)")
    pace.add_argument("--max-rate", action="store_true",
                      help="publish each frame as soon as the previous frame's outputs arrived (closed loop)")
    parser.add_argument("--image-topic", default=DEFAULT_IMAGE_TOPIC, help="Image or CompressedImage topic in the bag")
    parser.add_argument("--info-topic", default=DEFAULT_INFO_TOPIC,
                        help="CameraInfo topic in the bag ('' = publish images only)")
    parser.add_argument("--gt-topic", default=None,
                        help=f"ground-truth depth topic (32FC1 m or 16UC1 mm); default {DEFAULT_GT_TOPIC} "
                             "when the bag has it; '' = no accuracy metrics")
    parser.add_argument("--launch-node", action="store_true",
                        help=f"start python -m urcdc_ros.depth_node (namespace {LAUNCHED_NODE_NAMESPACE} "
                             "unless --node-namespace) and stop it afterwards")
    parser.add_argument("--node-namespace", default="/",
                        help="namespace of the node: frames go to <ns>/image, <ns>/camera_info; outputs "
                             "are read from <ns>/depth, <ns>/depth/uncertainty")
    parser.add_argument("--params-file", type=Path, default=None,
                        help="parameters for the launched node (default: config/depth.yaml)")
    parser.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra parameter for the launched node, repeatable (e.g. model:=my.onnx)")
    parser.add_argument("--model-baseline", action="store_true",
                        help="time the node's model alone in this process (settings from --params-file/"
                             "--node-param): with --max-rate on each frame right after the node answered it "
                             "(same load; per-frame node - model), else 10 runs before the node starts")
    parser.add_argument("--subscribe", action="append", default=[], choices=sorted(EXTRA_OUTPUTS), metavar="OUTPUT",
                        help="also subscribe this node output (repeatable: " + ", ".join(sorted(EXTRA_OUTPUTS)) +
                             "); the node builds only what has subscribers, and a frame counts as complete when "
                             "all subscribed outputs arrived")
    parser.add_argument("--qos", choices=("reliable", "best_effort"), default="reliable",
                        help="reliability of the image publisher")
    cli.add_max_frames(parser)
    parser.add_argument("--crop", choices=("garg", "eigen", "none"), default="garg", help=cli.EVAL_CROP_HELP)
    parser.add_argument("--min-depth", type=float, default=1e-3, metavar="M",
                        help="evaluation floor in metres: ground truth below it is ignored")
    parser.add_argument("--max-depth", type=float, default=80.0, metavar="M", help=cli.EVAL_MAX_DEPTH_HELP)
    parser.add_argument("--startup-timeout", type=float, default=180.0, metavar="S",
                        help="seconds to wait for the node's first answer")
    parser.add_argument("--discovery-timeout", type=float, default=30.0, metavar="S",
                        help="seconds for an already running node to subscribe to <ns>/image")
    parser.add_argument("--drain-timeout", type=float, default=10.0, metavar="S",
                        help="open loop: seconds to wait for outputs after the last frame")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.max_rate and args.rate <= 0:
        print("error: --rate must be > 0 (or use --max-rate)", file=sys.stderr)
        return 2
    options = ReplayOptions(rate=None if args.max_rate else args.rate, node_namespace=args.node_namespace,
                            reliable=args.qos == "reliable", startup_timeout_s=args.startup_timeout,
                            discovery_timeout_s=args.discovery_timeout,
                            drain_timeout_s=args.drain_timeout, extra_outputs=tuple(dict.fromkeys(args.subscribe)))
    try:
        run_bench(args.bag, args.output, image_topic=args.image_topic, info_topic=args.info_topic,
                  gt_topic=args.gt_topic, options=options, launch_node=args.launch_node,
                  params_file=args.params_file, node_params=args.node_param, max_frames=args.max_frames,
                  crop=args.crop, min_depth_m=args.min_depth, max_depth_m=args.max_depth,
                  model_baseline=args.model_baseline)
    except (BagTopicError, FileNotFoundError, ValueError, TimeoutError, RuntimeError, *cli.USER_ERRORS) as err:
        return cli.print_error(err)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
