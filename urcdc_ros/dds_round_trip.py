"""The ROS transport floor under the depth node's overhead: its message pattern with no model and no work.

    python -m urcdc_ros.dds_round_trip              # image in; depth, uncertainty, camera_info out
    python -m urcdc_ros.dds_round_trip --points     # ... and a 7.5 MB x,y,z cloud

An echo process subscribes a 1242×375 rgb8 image (raw, as the node does) and answers each with two
1242×375 32FC1 images and a camera_info (and, with --points, an organized 16-byte-point cloud),
from a worker thread with reused payloads, as the node publishes. This process publishes the image
and times publish → the last answer, closed loop. What it measures is what DDS and rclpy cost for
these bytes between two processes on this machine: the floor of bag_bench's "node − model alone".
Both processes use the node's setup (allocator, executor, Fast DDS large-data profile).
"""
from __future__ import annotations

import argparse
import array
import os
import statistics
import subprocess
import sys
import threading
import time

from urcdc_model import cli
from urcdc_ros.allocator import keep_large_buffers
from urcdc_ros.bag_node import apply_fastdds_profile

HEIGHT, WIDTH = 375, 1242
OUTPUT_TOPICS = ("depth", "depth/uncertainty", "depth/camera_info", "points")


def _qos():
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)


def run_echo() -> None:
    """The node's I/O without its model: answer every image from a worker thread."""
    import rclpy
    from builtin_interfaces.msg import Time
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    from std_msgs.msg import Header

    from urcdc_ros.cdr_image import parse_header
    from urcdc_ros.ros_compat import make_executor, message_factory, spin

    rclpy.init()
    node = rclpy.create_node("dds_round_trip_echo")
    image_pubs = [node.create_publisher(Image, name, _qos()) for name in OUTPUT_TOPICS[:2]]
    info_pub = node.create_publisher(CameraInfo, OUTPUT_TOPICS[2], _qos())
    cloud_pub = node.create_publisher(PointCloud2, OUTPUT_TOPICS[3], _qos())
    depth_bytes = array.array("B", bytes(HEIGHT * WIDTH * 4))
    cloud_bytes = array.array("B", bytes(HEIGHT * WIDTH * 16))
    pending: list[bytes] = []
    ready = threading.Event()

    def answer() -> None:
        while True:
            ready.wait()
            ready.clear()
            while pending:
                stamp = parse_header(pending.pop()).stamp
                header = Header(stamp=Time(sec=stamp.sec, nanosec=stamp.nanosec), frame_id="camera")
                for publisher in image_pubs:
                    msg = message_factory(Image)()
                    msg.header, msg.height, msg.width, msg.encoding, msg.step = header, HEIGHT, WIDTH, "32FC1", WIDTH * 4
                    msg.data = depth_bytes
                    publisher.publish(msg)
                info = message_factory(CameraInfo)()
                info.header = header
                info_pub.publish(info)
                if cloud_pub.get_subscription_count():
                    cloud = message_factory(PointCloud2)()
                    cloud.header, cloud.height, cloud.width = header, HEIGHT, WIDTH
                    cloud.point_step, cloud.row_step, cloud.data = 16, WIDTH * 16, cloud_bytes
                    cloud_pub.publish(cloud)

    def on_image(serialized: bytes) -> None:
        pending.append(serialized)
        ready.set()

    threading.Thread(target=answer, daemon=True).start()
    node.create_subscription(Image, "image", on_image, qos_profile_sensor_data, raw=True)
    executor = make_executor("auto")
    executor.add_node(node)
    print("ready", flush=True)
    spin(executor)
    executor.shutdown()


def run_ping(points: bool, frames: int) -> dict:
    """Publish images closed loop; median ms to the depth answer and to the last answer."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from urcdc_ros.cdr_image import parse_header
    from urcdc_ros.ros_compat import make_executor, message_factory, spin

    rclpy.init()
    node = rclpy.create_node("dds_round_trip_ping")
    publisher = node.create_publisher(Image, "image", _qos())
    topics = OUTPUT_TOPICS if points else OUTPUT_TOPICS[:3]
    types = dict(zip(OUTPUT_TOPICS, (Image, Image, CameraInfo, PointCloud2)))
    arrivals: dict[int, dict[str, float]] = {}
    changed = threading.Condition()

    def record(topic: str):
        def callback(serialized: bytes) -> None:
            now_s = time.perf_counter()
            with changed:
                arrivals.setdefault(parse_header(serialized).stamp.sec, {})[topic] = now_s
                changed.notify_all()
        return callback

    subscriptions = [node.create_subscription(types[t], t, record(t), qos_profile_sensor_data, raw=True)
                     for t in topics]
    executor = make_executor("auto")
    executor.add_node(node)
    stop = threading.Event()
    spinner = threading.Thread(target=spin, args=(executor, None, stop.is_set), daemon=True)
    spinner.start()
    deadline = time.monotonic() + 30.0
    while (publisher.get_subscription_count() == 0 or any(s.get_publisher_count() == 0 for s in subscriptions)) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # the other side of discovery
    image = message_factory(Image)()
    image.height, image.width, image.encoding, image.step = HEIGHT, WIDTH, "rgb8", WIDTH * 3
    image.data = array.array("B", bytes(HEIGHT * WIDTH * 3))
    depth_ms, all_ms = [], []
    for index in range(-2, frames):  # two warm-up frames
        stamp = index + 3
        image.header.stamp.sec = stamp
        sent_s = time.perf_counter()
        publisher.publish(image)
        with changed:
            done = changed.wait_for(lambda: len(arrivals.get(stamp, {})) == len(topics), timeout=10.0)
        if not done:
            raise RuntimeError(f"frame {stamp}: no answer on {sorted(set(topics) - set(arrivals.get(stamp, {})))}")
        if index >= 0:
            depth_ms.append((arrivals[stamp]["depth"] - sent_s) * 1e3)
            all_ms.append((max(arrivals[stamp].values()) - sent_s) * 1e3)
        time.sleep(0.03)
    stop.set()
    spinner.join(timeout=5.0)
    executor.shutdown()
    node.destroy_node()
    rclpy.try_shutdown()
    return {"points": points, "frames": frames, "depth_ms_median": statistics.median(depth_ms),
            "all_outputs_ms_median": statistics.median(all_ms),
            "all_outputs_ms_p90": sorted(all_ms)[int(0.9 * (len(all_ms) - 1))], "load_average": os.getloadavg()[0]}


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_ros.dds_round_trip", __doc__)
    parser.add_argument("--role", choices=("ping", "echo"), default="ping", help=argparse.SUPPRESS)
    parser.add_argument("--points", action="store_true", help="the echo also answers with a 7.5 MB cloud")
    parser.add_argument("--frames", type=int, default=60, metavar="N", help="timed round trips")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    keep_large_buffers()
    apply_fastdds_profile()
    if args.role == "echo":
        run_echo()
        return 0
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")  # both processes: this host only
    echo = subprocess.Popen([sys.executable, "-m", "urcdc_ros.dds_round_trip", "--role", "echo"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert echo.stdout is not None
        echo.stdout.readline()  # "ready"
        result = run_ping(args.points, args.frames)
    finally:
        echo.terminate()
        echo.wait(timeout=10)
    outputs = "depth, uncertainty, camera_info" + (", points" if args.points else "")
    print(f"round trip, {args.frames} frames, {outputs}: depth {result['depth_ms_median']:.2f} ms, all outputs "
          f"{result['all_outputs_ms_median']:.2f} ms median (p90 {result['all_outputs_ms_p90']:.2f}); "
          f"load average {result['load_average']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
