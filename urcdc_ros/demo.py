"""The one-command demo (``make demo``): drive → rosbag2 → depth node → replay report.

1. writes a short procedural street drive in the KITTI raw layout (exact depth as ground truth);
2. when ``../shared/data`` is beside the checkout, also a drive made of the real KITTI sample frames
   with their annotated ground truth;
3. converts each drive to an mcap bag (``urcdc_ros.kitti_to_bag``);
4. starts ``python -m urcdc_ros.depth_node`` with the embedded default model;
5. replays each bag into it (``urcdc_ros.bag_bench``) and prints the report table and the plot paths.

Everything goes under ``demo_output/`` (gitignored). The processes use the shipped Fast DDS
large-data profile unless FASTDDS_DEFAULT_PROFILES_FILE is already set, and, unless the caller
chose otherwise, discover each other on this host only.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from urcdc_model import cli
from urcdc_model.data.calib import write_raw_calibration
from urcdc_ros import bag_bench, bag_node, kitti_to_bag
from urcdc_ros.bag_frames import load_bag
from urcdc_ros.bag_report import summary_rows

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_SAMPLES = REPO_ROOT.parent / "shared" / "data" / "kitti_depth_annotated"
DEMO_NAMESPACE = "/urcdc_demo"
PROCEDURAL_DATE, PROCEDURAL_DRIVE = "2011_09_26", 1
SAMPLE_DATE, SAMPLE_DRIVE = "2011_09_28", 1
KITTI_ATTRIBUTION = ("KITTI sample frames: Geiger et al., 'Vision meets Robotics: The KITTI Dataset', "
                     "CC BY-NC-SA 3.0 (annotated depth: Uhrig et al., 'Sparsity Invariant CNNs')")


def drive_dir(root: Path, date: str, drive: int) -> Path:
    return root / date / f"{date}_drive_{drive:04d}_sync"


def write_procedural_drive(root: Path, num_frames: int, seed: int) -> Path:
    """A procedural street drive in the KITTI raw layout (data issue's synthetic writer)."""
    from urcdc_model.data.synthetic import write_kitti_drive

    write_kitti_drive(root, date=PROCEDURAL_DATE, drive=PROCEDURAL_DRIVE, num_frames=num_frames, seed=seed)
    return drive_dir(root, PROCEDURAL_DATE, PROCEDURAL_DRIVE)


def write_sample_drive(samples: Path, root: Path) -> Path:
    """The real KITTI sample frames as a raw-layout drive with annotated GT.

    The sample folder has frames 5, 50 and 100 of one 2011-09-28 drive, their annotated depth and
    rectified intrinsics; the calibration files are written from those (``write_raw_calibration``:
    R_rect = I, D = 0, KITTI's nominal baselines) and timestamps.txt at KITTI's 10 Hz, so frame n is at n/10 s.
    The drive number in the folder name is a placeholder.
    """
    intrinsics = json.loads((samples / "intrinsics.json").read_text())
    frames = [str(f) for f in intrinsics["frames"]]
    drive = drive_dir(root, SAMPLE_DATE, SAMPLE_DRIVE)
    image_dir = drive / "image_02" / "data"
    gt_dir = drive / "proj_depth" / "groundtruth" / "image_02"
    image_dir.mkdir(parents=True)
    gt_dir.mkdir(parents=True)
    for name in frames:
        _link_or_copy(samples / "rgb" / f"{name}.png", image_dir / f"{name}.png")
        _link_or_copy(samples / "depth" / f"{name}.png", gt_dir / f"{name}.png")
    start = datetime.strptime(SAMPLE_DATE, "%Y_%m_%d")
    lines = [(start + timedelta(milliseconds=100 * n)).strftime("%Y-%m-%d %H:%M:%S.%f") + "000"
             for n in range(max(int(name) for name in frames) + 1)]
    (drive / "image_02" / "timestamps.txt").write_text("\n".join(lines) + "\n")
    height, width = cv2.imread(str(image_dir / f"{frames[0]}.png")).shape[:2]
    fx, fy, cx, cy = (float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy"))
    write_raw_calibration(drive.parent, np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]), (height, width))
    (drive.parent / "calib_velo_to_cam.txt").unlink()  # the samples have no LiDAR; don't invent its pose
    return drive


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        target.symlink_to(source.resolve())
    except OSError:  # filesystems without symlinks
        shutil.copyfile(source, target)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_ros.demo", __doc__.splitlines()[0], script="urcdc-demo")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "demo_output",
                        help="where drives, bags and reports go (replaced on each run)")
    parser.add_argument("--frames", type=int, default=20, metavar="N", help="frames of the procedural drive (10 Hz)")
    parser.add_argument("--seed", type=int, default=7, help="procedural drive seed")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="replay speed of the procedural drive (1.0 = its recorded 10 Hz)")
    parser.add_argument("--samples", type=Path, default=SHARED_SAMPLES,
                        help="KITTI sample frames (kitti_depth_annotated); skipped when missing")
    parser.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                        help="extra parameter for the depth node, repeatable (e.g. model:=my.safetensors)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.show_progress_logs()  # the first-use ONNX export (in the model-alone timing) says so before the pause
    try:
        return run_demo(args)
    except (FileNotFoundError, ValueError, RuntimeError, TimeoutError, *cli.USER_ERRORS) as error:
        return cli.print_error(error)  # a bad model file or parameter: one line naming it and the fix


def run_demo(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = bag_node.apply_fastdds_profile()
    out: Path = args.output
    for sub in ("kitti_raw", "bags", "reports"):
        shutil.rmtree(out / sub, ignore_errors=True)
    raw_root, bag_root, report_root = out / "kitti_raw", out / "bags", out / "reports"

    print(f"[demo] writing a {args.frames}-frame procedural drive (KITTI raw layout) under {_shown(raw_root)}",
          flush=True)
    drives = [("procedural", write_procedural_drive(raw_root, args.frames, args.seed), args.rate)]
    if (args.samples / "intrinsics.json").is_file():
        print(f"[demo] adding the real KITTI sample frames from {args.samples}\n       {KITTI_ATTRIBUTION}", flush=True)
        # Frames 5, 50, 100 are seconds apart in the drive: replay them back to back (closed loop).
        drives.append(("kitti_samples", write_sample_drive(args.samples, raw_root), None))
    else:
        print(f"[demo] {args.samples} not found: real KITTI frames skipped", flush=True)

    bags = []
    for name, drive, rate in drives:
        bag = bag_root / name
        summary = kitti_to_bag.convert_drive(drive, bag, storage="mcap", gt="annotated", progress=False)
        counts = ", ".join(f"{topic.rsplit('/', 1)[-1]} {n}" for topic, n in sorted(summary.counts.items()))
        print(f"[demo] {drive.name} -> {_shown(bag)} ({counts})", flush=True)
        bags.append((name, bag, rate))

    # The model alone on the same frames, before the node starts, so the two never share the CPU.
    params = bag_node.node_parameters(None, args.node_param)
    print(f"[demo] timing the model alone ({params.model}) on each bag's frames, the baseline for node latency",
          flush=True)
    baselines = {name: bag_node.model_only_latency(load_bag(bag).frames, params) for name, bag, _ in bags}

    print(f"[demo] starting the depth node (model {params.model}) in {DEMO_NAMESPACE}; "
          f"Fast DDS profile {profile}", flush=True)
    reports = []
    node = bag_node.NodeProcess(DEMO_NAMESPACE, report_root / "node.log", node_params=args.node_param)
    try:
        for name, bag, rate in bags:
            options = bag_bench.ReplayOptions(rate=rate, node_namespace=DEMO_NAMESPACE)
            mode = "closed loop" if rate is None else f"{rate:g}x recorded rate"
            print(f"[demo] replaying {_shown(bag)} ({mode})", flush=True)
            report = bag_bench.run_bench(bag, report_root / name, options=options, verbose=False,
                                         node_process=node, model_only=baselines[name])
            reports.append((name, report))
    finally:
        node.stop()

    print_table(reports)
    print(f"\n[demo] done in {time.perf_counter() - started:.0f} s; reports in {_shown(report_root)}", flush=True)
    return 0


def _shown(path: str | Path) -> str:
    """Paths under the current folder print relative (as in the README), others in full."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def print_table(reports: list[tuple[str, dict]]) -> None:
    """One column per bag; rows are the headline numbers of the replay report."""
    by_label = [dict(summary_rows(report)) for _, report in reports]
    labels = list(dict.fromkeys(label for rows in by_label for label in rows))
    width = max(len(label) for label in labels)
    col = max([len(name) for name, _ in reports] + [len(v) for rows in by_label for v in rows.values()])
    print("\n" + " " * width + "  " + "  ".join(f"{name:>{col}}" for name, _ in reports))
    for label in labels:
        print(f"{label:<{width}}  " + "  ".join(f"{rows.get(label, '-'):>{col}}" for rows in by_label))
    for name, report in reports:
        print(f"\n{name}: {_shown(report['bag'])}")
        for plot, path in report["plots"].items():
            print(f"  {plot:<12} {_shown(path)}")


if __name__ == "__main__":
    sys.exit(main())
