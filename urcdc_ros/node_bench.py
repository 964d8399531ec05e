"""Node overhead benchmark: end-to-end node latency vs the model alone, cloud build vs a plain copy.

    python -m urcdc_ros.node_bench                          # the embedded model, KITTI 1242x375
    python -m urcdc_ros.node_bench --checkpoint path.safetensors --frames 30 --json node_bench.json

1. Cloud: ``CloudBuilder.build`` on a 1242x375 depth map vs ``np.copyto`` of its output buffer into
   a preallocated one (the least any cloud producer pays), interleaved so machine load hits both.
2. Node: a DepthNode and a probe node in this process (DDS between them, as between processes).
   The probe publishes a KITTI frame + camera_info and times publish -> ``depth`` received and
   publish -> ``points`` received. Between node frames the same runtime runs ``infer`` alone on the
   same frame: the model-only baseline. One frame at a time, so no queueing is measured.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from urcdc_model import cli
from urcdc_ros.pointcloud import CloudBuilder, PinholeIntrinsics

SHARED_KITTI = Path(__file__).resolve().parents[2] / "shared" / "data" / "kitti_depth_annotated"


def load_kitti_frame(root: Path = SHARED_KITTI) -> tuple[np.ndarray, PinholeIntrinsics]:
    """The first sample frame as RGB and its intrinsics; raises FileNotFoundError naming the folder."""
    meta_path = root / "intrinsics.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{meta_path} not found: the benchmark needs ../shared/data (see its README)")
    meta = json.loads(meta_path.read_text())
    image_path = next((root / "rgb").glob(f"*{meta['frames'][0]}*.png"))
    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    height, width = bgr.shape[:2]
    return (np.ascontiguousarray(bgr[..., ::-1]),
            PinholeIntrinsics(fx=meta["fx"], fy=meta["fy"], cx=meta["cx"], cy=meta["cy"], width=width, height=height))


def _median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def bench_cloud(intrinsics: PinholeIntrinsics, repeats: int = 200) -> dict:
    """Median build time vs median copy of the same output buffer, for x,y,z and x,y,z,rgb clouds."""
    rng = np.random.default_rng(0)
    shape = (intrinsics.height, intrinsics.width)
    depth_m = rng.uniform(2.0, 80.0, shape).astype(np.float32)
    depth_m[rng.random(shape) < 0.05] = np.nan
    uncertainty_m = rng.uniform(0.0, 4.0, shape).astype(np.float32)
    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    results = {}
    for name, kwargs in {
        "xyz": {},
        "xyz_uncertainty_filter": {"uncertainty_m": uncertainty_m, "max_uncertainty_m": 2.0,
                                   "max_relative_uncertainty": 0.05},
        "xyzrgb": {"rgb": rgb},
    }.items():
        builder = CloudBuilder()
        payload = builder.build(depth_m, intrinsics, **kwargs)
        copy_target = np.empty_like(payload.floats)
        build_s, copy_s, build_cpu_s, copy_cpu_s = [], [], [], []
        for _ in range(repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            builder.build(depth_m, intrinsics, **kwargs)
            build_s.append(time.perf_counter() - start)
            build_cpu_s.append(time.process_time() - start_cpu)
            start, start_cpu = time.perf_counter(), time.process_time()
            np.copyto(copy_target, payload.floats)
            copy_s.append(time.perf_counter() - start)
            copy_cpu_s.append(time.process_time() - start_cpu)
        results[name] = {"build_ms": _median_ms(build_s), "copy_ms": _median_ms(copy_s),
                         "ratio": statistics.median(build_s) / statistics.median(copy_s),
                         # CPU time: what the process itself spent, less sensitive to other load
                         "build_cpu_ms": _median_ms(build_cpu_s), "copy_cpu_ms": _median_ms(copy_cpu_s),
                         "cpu_ratio": statistics.median(build_cpu_s) / max(statistics.median(copy_cpu_s), 1e-9),
                         "mbytes": len(payload.data) / 1e6}
    return results


def bench_node(model: str, backend: str, rgb: np.ndarray, intrinsics: PinholeIntrinsics, frames: int,
               num_threads: int) -> dict:
    """End-to-end latency through a real DepthNode vs runtime.infer alone, interleaved, same process."""
    import rclpy
    from rclpy.parameter import Parameter
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from urcdc_ros.allocator import keep_large_buffers
    from urcdc_ros.depth_node import DepthNode
    from urcdc_ros.image_codec import array_to_image_msg
    from urcdc_ros.ros_compat import make_executor, spin

    keep_large_buffers()

    rclpy.init()
    node = DepthNode(parameter_overrides=[
        Parameter("model", value=model), Parameter("backend", value=backend),
        Parameter("num_threads", value=num_threads), Parameter("publish_colored", value=False)])
    probe = rclpy.create_node("node_bench_probe")
    reliable = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = probe.create_publisher(Image, "image", qos_profile_sensor_data)
    info_pub = probe.create_publisher(CameraInfo, "camera_info", qos_profile_sensor_data)
    arrivals: dict[tuple[str, int], float] = {}
    got = threading.Condition()

    def on_output(topic):
        def record(msg):
            with got:
                arrivals[(topic, msg.header.stamp.sec)] = time.perf_counter()
                got.notify_all()
        return record

    subs = [probe.create_subscription(Image, "depth", on_output("depth"), reliable),
            probe.create_subscription(PointCloud2, "points", on_output("points"), reliable)]
    executor = make_executor(node.params.executor)
    executor.add_node(node)
    executor.add_node(probe)
    stop_spinning = threading.Event()
    spinner = threading.Thread(target=spin, kwargs={"executor": executor, "stop": stop_spinning.is_set}, daemon=True)
    spinner.start()

    info = CameraInfo(width=intrinsics.width, height=intrinsics.height, distortion_model="plumb_bob")
    info.p = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, 0.0, intrinsics.fy, intrinsics.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    deadline = time.monotonic() + 30
    while (image_pub.get_subscription_count() == 0 or any(s.get_publisher_count() == 0 for s in subs)) \
            and time.monotonic() < deadline:
        time.sleep(0.05)

    runtime = node.runtime
    k = np.array([[intrinsics.fx, 0.0, intrinsics.cx], [0.0, intrinsics.fy, intrinsics.cy], [0.0, 0.0, 1.0]])
    depth_s, points_s, model_s = [], [], []
    for index in range(-2, frames):  # two warm-up frames
        stamp_sec = 1000 + index + 2
        info.header.stamp.sec = stamp_sec
        msg = array_to_image_msg(rgb, "rgb8", info.header)
        info_pub.publish(info)
        time.sleep(0.05)
        start = time.perf_counter()
        image_pub.publish(msg)
        with got:
            done = got.wait_for(lambda: ("points", stamp_sec) in arrivals and ("depth", stamp_sec) in arrivals,
                                timeout=60)
        if not done:
            raise RuntimeError(f"frame {index}: no depth/points from the node within 60 s")
        time.sleep(0.05)
        model_start = time.perf_counter()
        runtime.infer(rgb, intrinsics=k)  # the K the node takes from the camera_info
        model_end = time.perf_counter()
        if index >= 0:
            depth_s.append(arrivals[("depth", stamp_sec)] - start)
            points_s.append(arrivals[("points", stamp_sec)] - start)
            model_s.append(model_end - model_start)
    snapshot = node.stats.snapshot()
    result = {
        "backend": runtime.backend, "input_size": list(runtime.input_size), "frames": frames,
        "model_ms": _median_ms(model_s), "depth_e2e_ms": _median_ms(depth_s), "points_e2e_ms": _median_ms(points_s),
        "depth_ratio": statistics.median(depth_s) / statistics.median(model_s),
        "points_ratio": statistics.median(points_s) / statistics.median(model_s),
        "node_internal_latency_ms_mean": snapshot.latency_ms_mean,
        "node_inference_ms_mean": snapshot.inference_ms_mean,
        "dropped_stale_frames": snapshot.dropped_stale,
    }
    stop_spinning.set()
    spinner.join(timeout=5.0)
    executor.shutdown()
    node.destroy_node()
    probe.destroy_node()
    rclpy.try_shutdown()
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_ros.node_bench", __doc__)
    cli.add_checkpoint(parser, runtime=True)
    cli.hidden_alias(parser, "--model", dest="checkpoint")
    cli.add_backend(parser)
    parser.add_argument("--frames", type=int, default=20, metavar="N", help="timed node frames")
    cli.add_num_threads(parser)
    parser.add_argument("--cloud-repeats", type=int, default=200, metavar="N", help="timed cloud builds")
    cli.add_json(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.show_progress_logs()
    try:
        run_node_bench(args)
    except (FileNotFoundError, ValueError, RuntimeError, *cli.USER_ERRORS) as error:  # StartupError included
        return cli.print_error(error)
    return 0


def run_node_bench(args: argparse.Namespace) -> None:

    rgb, intrinsics = load_kitti_frame()
    load_before = os.getloadavg()[0]
    print(f"frame {intrinsics.width}x{intrinsics.height}, {os.cpu_count()} CPUs, load average {load_before:.1f}")
    cloud = bench_cloud(intrinsics, args.cloud_repeats)
    print(f"{'cloud':>24} {'build ms':>9} {'copy ms':>8} {'ratio':>6} {'CPU ratio':>9} {'MB':>6}")
    for name, row in cloud.items():
        print(f"{name:>24} {row['build_ms']:9.2f} {row['copy_ms']:8.2f} {row['ratio']:6.2f} {row['cpu_ratio']:9.2f} "
              f"{row['mbytes']:6.1f}")
    node = bench_node(args.checkpoint, args.backend, rgb, intrinsics, args.frames, args.num_threads)
    print(f"node ({node['backend']}, input {node['input_size'][0]}x{node['input_size'][1]}, {node['frames']} frames): "
          f"model {node['model_ms']:.1f} ms, depth end-to-end {node['depth_e2e_ms']:.1f} ms "
          f"({node['depth_ratio']:.3f}x), points end-to-end {node['points_e2e_ms']:.1f} ms "
          f"({node['points_ratio']:.3f}x); inside the node: receipt->last publish "
          f"{node['node_internal_latency_ms_mean']:.1f} ms, of which inference {node['node_inference_ms_mean']:.1f} ms")
    if args.json:
        Path(args.json).write_text(json.dumps({"cloud": cloud, "node": node, "model": args.checkpoint, "cpus": os.cpu_count(),
                                         "load_average": [load_before, os.getloadavg()[0]]}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
