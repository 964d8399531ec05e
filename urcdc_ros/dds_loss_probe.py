"""How many large images survive between two processes, with and without the Fast DDS profile.

    python -m urcdc_ros.dds_loss_probe                # all cases, a table on stdout
    python -m urcdc_ros.dds_loss_probe --count 49 --json probe.json

Each case starts a subscriber process and a publisher process on a private ROS_DOMAIN_ID with
localhost-only discovery; the publisher sends ``--count`` KITTI-sized images (1242x375 rgb8 =
1.4 MB, 32FC1 = 1.8 MB) at ``--rate-hz`` once it sees the subscriber, and the subscriber counts
what arrives. The profile is applied by setting FASTDDS_DEFAULT_PROFILES_FILE, as users would.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from urcdc_model import cli

PROFILE = Path(__file__).resolve().parents[1] / "config" / "fastdds_large_data.xml"
PAYLOADS = {"rgb8": 3, "32FC1": 4}  # encoding -> bytes per pixel
WIDTH, HEIGHT = 1242, 375
TOPIC = "probe/image"


def _qos(reliability: str):
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5,
                      reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                      else ReliabilityPolicy.BEST_EFFORT)


def run_subscriber(reliability: str, count: int, timeout_s: float) -> None:
    """Count images on TOPIC until ``count`` arrived or the publisher has been gone ``timeout_s``; print JSON."""
    import rclpy
    from sensor_msgs.msg import Image

    from urcdc_ros.ros_compat import message_factory

    rclpy.init()
    node = rclpy.create_node("loss_probe_sub")
    received, first_bytes = [], []

    def on_image(msg: Image) -> None:
        received.append(int(msg.header.frame_id or -1))
        if not first_bytes:
            first_bytes.append(len(msg.data))

    node.create_subscription(Image, TOPIC, on_image, _qos(reliability))
    print("ready", flush=True)
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(json.dumps({"received": len(set(received)), "bytes": first_bytes[0] if first_bytes else 0}), flush=True)
    node.destroy_node()
    rclpy.shutdown()


def run_publisher(encoding: str, reliability: str, count: int, rate_hz: float) -> None:
    """Wait for one subscriber, then publish ``count`` images at ``rate_hz``."""
    import array

    import rclpy
    from sensor_msgs.msg import Image

    from urcdc_ros.ros_compat import message_factory

    rclpy.init()
    node = rclpy.create_node("loss_probe_pub")
    publisher = node.create_publisher(Image, TOPIC, _qos(reliability))
    bytes_per_pixel = PAYLOADS[encoding]
    payload = array.array("B", os.urandom(WIDTH * HEIGHT * bytes_per_pixel))
    deadline = time.monotonic() + 20.0
    while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.5)  # let the reader's side of discovery finish too
    for index in range(count):
        msg = message_factory(Image)()
        msg.height, msg.width, msg.encoding, msg.step = HEIGHT, WIDTH, encoding, WIDTH * bytes_per_pixel
        msg.header.frame_id = str(index)
        msg.data = payload
        publisher.publish(msg)
        time.sleep(1.0 / rate_hz)
    time.sleep(1.0)  # reliable: give retransmissions a moment before the writer disappears
    node.destroy_node()
    rclpy.shutdown()


def run_case(encoding: str, reliability: str, with_profile: bool, count: int, rate_hz: float,
             domain_id: int) -> dict:
    """One publisher/subscriber pair in fresh processes; returns the counts."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id), ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if with_profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
    base = [sys.executable, "-m", "urcdc_ros.dds_loss_probe", "--reliability", reliability, "--count", str(count)]
    timeout_s = 20.0 + count / rate_hz + 5.0
    sub = subprocess.Popen(base + ["--role", "sub", "--timeout-s", str(timeout_s)], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert sub.stdout is not None
    sub.stdout.readline()  # "ready"
    pub = subprocess.Popen(base + ["--role", "pub", "--encoding", encoding, "--rate-hz", str(rate_hz)],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pub.wait(timeout=timeout_s + 10)
    out, _ = sub.communicate(timeout=timeout_s + 10)
    result = json.loads(out.strip().splitlines()[-1])
    return {"encoding": encoding, "reliability": reliability, "profile": with_profile, "sent": count,
            "received": result["received"], "message_mb": WIDTH * HEIGHT * PAYLOADS[encoding] / 1e6}


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_ros.dds_loss_probe", __doc__)
    # --role/--encoding/--reliability/--timeout-s: how the probe runs its own publisher and subscriber processes
    parser.add_argument("--role", choices=("all", "pub", "sub"), default="all", help=argparse.SUPPRESS)
    parser.add_argument("--encoding", choices=tuple(PAYLOADS), default="rgb8", help=argparse.SUPPRESS)
    parser.add_argument("--reliability", choices=("best_effort", "reliable"), default="best_effort",
                        help=argparse.SUPPRESS)
    parser.add_argument("--timeout-s", type=float, default=30.0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=49, metavar="N", help="images per case")
    parser.add_argument("--rate-hz", type=float, default=10.0, help="publish rate")
    cli.add_json(parser)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.role == "sub":
        return run_subscriber(args.reliability, args.count, args.timeout_s)
    if args.role == "pub":
        return run_publisher(args.encoding, args.reliability, args.count, args.rate_hz)

    domain_id = 100 + os.getpid() % 100
    results = []
    print(f"{'payload':>16} {'QoS':>12} {'profile':>8} {'received':>9}")
    for with_profile in (False, True):
        for encoding in PAYLOADS:
            for reliability in ("best_effort", "reliable"):
                row = run_case(encoding, reliability, with_profile, args.count, args.rate_hz, domain_id)
                results.append(row)
                payload = f"{encoding} {row['message_mb']:.1f} MB"
                print(f"{payload:>16} {reliability:>12} "
                      f"{'yes' if with_profile else 'no':>8} {row['received']:>4}/{row['sent']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
