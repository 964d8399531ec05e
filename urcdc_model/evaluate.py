"""Evaluate depth predictions with the standard metrics, two ways in.

Run a model on a dataset::

    python -m urcdc_model.evaluate --checkpoint default --dataset synthetic          # 200 held-out scenes
    python -m urcdc_model.evaluate --checkpoint CKPT --dataset kitti --data-root RAW --split eigen_test.txt
    python -m urcdc_model.evaluate --checkpoint CKPT --dataset kitti --data-root DRIVES  # every frame with GT

The model runs through ``DepthRuntime`` (torch backend) with each frame's intrinsics, the path of the
node and of ``predict``. The multi-camera benchmark (issue 12; ``urcdc_model.camera_benchmark``)::

    python -m urcdc_model.evaluate --checkpoint default --dataset synthetic --cameras multi --markdown out.md

Score saved outputs of any model (matched to ground truth by file stem)::

    python -m urcdc_model.evaluate --pred-dir PRED --gt-dir GT --dataset kitti --crop garg --json out.json

Prints the standard table (silog, abs_rel, log10, rms, sq_rel, log_rms, d1, d2, d3: the mean of the
per-image metrics, as the official eval); ``--json`` writes the same numbers keyed by metric name.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

from typing import Iterator

import cv2
import numpy as np

from urcdc_model import cli
from urcdc_model import metrics as depth_metrics
from urcdc_model.data.base import SplitEntry
from urcdc_model.data.synthetic import KITTI_FOCAL_PX
from urcdc_model.preprocessing import KB_CROP_HEIGHT, KB_CROP_WIDTH

SYNTHETIC_TEST_FRAMES = 200
DEPTH_SCALE = {"kitti": 256.0, "nyu": 1000.0, "synthetic": 256.0}
# prefixes that differ between an image/prediction and its GT file in the public layouts (NYU sync)
_STEM_PREFIXES = ("sync_depth_", "depth_", "rgb_", "pred_")


# ------------------------------------------------------------------------------------------
# datasets for the model path


def kitti_split_from_drives(data_root: Path) -> list[SplitEntry]:
    """Split entries for every frame under ``data_root/<date>/<drive>_sync`` that has annotated GT."""
    from urcdc_model.data.calib import load_raw_calibration

    entries = []
    focal_by_date: dict[Path, float] = {}
    for image in sorted(data_root.glob("*/*_sync/image_02/data/*.png")):
        drive = image.parents[2]
        gt = drive / "proj_depth" / "groundtruth" / "image_02" / image.name
        if not gt.is_file():
            continue
        if drive.parent not in focal_by_date:
            try:
                focal_by_date[drive.parent] = float(load_raw_calibration(drive.parent).intrinsics[0, 0])
            except (FileNotFoundError, KeyError, ValueError):
                focal_by_date[drive.parent] = KITTI_FOCAL_PX
        entries.append(SplitEntry(str(image.relative_to(data_root)), str(gt.relative_to(drive.parent)),
                                  focal_by_date[drive.parent], len(entries) + 1))
    if not entries:
        raise ValueError(f"{data_root}: no <date>/<drive>_sync/image_02/data/*.png frames with "
                         "proj_depth/groundtruth/image_02 ground truth; pass --split FILE")
    return entries


def build_eval_dataset(args, frame_hw: tuple[int, int]):
    """The evaluation dataset for ``--dataset`` (eval mode: no augmentation); synthetic frames are ``frame_hw``."""
    if args.dataset == "synthetic":
        if args.data_root:
            from urcdc_model.data.kitti import KittiDepthDataset

            split = args.split or kitti_split_from_drives(Path(args.data_root))
            return KittiDepthDataset(args.data_root, args.data_root, split, mode="eval", kb_crop_eval=False)
        from urcdc_model.data import synthetic

        height, width = frame_hw
        if args.kind == "indoor" and args.camera != "train":
            build_parser().error("--camera shifted-* applies to street scenes only")
        camera = {"train": None, "shifted-down": synthetic.STREET_SHIFTED_CAMERA_DOWN,
                  "shifted-up": synthetic.STREET_SHIFTED_CAMERA_UP}[args.camera]
        return synthetic.SyntheticDepthDataset(args.frames, kind=args.kind, height=height, width=width,
                                               seed=synthetic.HELD_OUT_SEED, train=False, camera_range=camera)
    if not args.data_root:
        build_parser().error(f"--dataset {args.dataset} needs --data-root (and --split unless it holds KITTI drives)")
    data_root = Path(args.data_root)
    gt_root = Path(args.gt_path) if args.gt_path else data_root
    if args.dataset == "kitti":
        from urcdc_model.data.kitti import KittiDepthDataset

        split = args.split or kitti_split_from_drives(data_root)
        return KittiDepthDataset(data_root, gt_root, split, mode="eval", gt_source=args.gt_source,
                                 kb_crop_eval=not args.no_kb_crop)
    from urcdc_model.data.nyu import NyuDepthDataset

    if not args.split:
        build_parser().error("--dataset nyu needs --split (the official nyudepthv2_test_files_with_gt.txt)")
    return NyuDepthDataset(data_root, gt_root, args.split, mode="eval")


def eval_frames(dataset) -> Iterator[tuple[np.ndarray, np.ndarray | None, np.ndarray]]:
    """(uint8 RGB, GT metres or None, 3x3 K) of each frame, as the eval dataset would present it."""
    from urcdc_model.data.synthetic import SyntheticDepthDataset
    from urcdc_model.deploy.intrinsics import centred_intrinsics

    for index in range(len(dataset)):
        if isinstance(dataset, SyntheticDepthDataset):
            frame = dataset.frame(index)             # the rendered K is exact
            yield frame.rgb, frame.depth_m, frame.intrinsics
            continue
        image, depth, entry = dataset.load(index)
        image, depth = dataset.prepare_eval(image, depth)
        rgb = np.round(image * 255.0).astype(np.uint8)   # the loaders read 8-bit files: exact
        # Split files give only the focal length (KITTI: from the date's calibration when the split is
        # built from drives). The input plan depends on the focal alone, so the image centre stands in
        # for the principal point (also after the KB crop, which moves it).
        yield rgb, depth, centred_intrinsics(entry.focal, rgb.shape[:2])


def load_runtime(args):
    """The model as the node runs it: DepthRuntime on the torch backend (no export for an evaluation)."""
    from urcdc_model.deploy.runtime import DepthRuntime

    return DepthRuntime.from_path(args.checkpoint, backend="torch", input_size=args.input_size,
                                  max_depth=args.model_max_depth, warmup_runs=0)


def evaluate_model(args) -> tuple[dict[str, float], int]:
    runtime = load_runtime(args)
    # synthetic frames are rendered at the size the network runs at (the training size unless pinned)
    dataset = build_eval_dataset(args, runtime.network_size or runtime.input_size)
    metric_dataset = "synthetic" if args.dataset == "synthetic" else args.dataset
    max_depth = args.max_depth or (10.0 if args.kind == "indoor" and args.dataset == "synthetic"
                                   else depth_metrics.MAX_DEPTH_M[metric_dataset])
    crop = args.crop or depth_metrics.DEFAULT_CROP[metric_dataset]
    accumulator = depth_metrics.MetricAccumulator()
    skipped = 0
    count = len(dataset) if args.max_frames is None else min(len(dataset), args.max_frames)
    frames = itertools.islice(eval_frames(dataset), count)
    for rgb, gt, intrinsics in cli.progress(frames, total=count, desc="evaluate", enabled=not args.no_progress):
        if gt is None or not depth_metrics.valid_mask(gt, metric_dataset, crop, max_depth_m=max_depth).any():
            skipped += 1
            continue
        pred, _ = runtime.infer(rgb, intrinsics, flip_tta=not args.no_flip_tta)
        accumulator.add(depth_metrics.compute_depth_metrics(gt, pred, dataset=metric_dataset, crop=crop,
                                                            max_depth_m=max_depth))
    if skipped:
        print(f"skipped {skipped} frame(s) without valid ground truth", file=sys.stderr)
    return accumulator.mean(), accumulator.count


def run_camera_benchmark(args, argv: list[str] | None) -> int:
    """``--cameras multi``: the multi-camera benchmark on held-out procedural street scenes."""
    from urcdc_model import camera_benchmark

    if not args.checkpoint or args.dataset != "synthetic" or args.data_root or args.kind != "street":
        build_parser().error("--cameras multi runs a model (--checkpoint) on procedural street scenes: "
                         "--dataset synthetic, no --data-root, --kind street")
    runtime = load_runtime(args)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    result = camera_benchmark.run_benchmark(runtime, num_frames=args.frames or camera_benchmark.DEFAULT_NUM_FRAMES,
                                            flip_tta=not args.no_flip_tta, log=log)
    print(camera_benchmark.format_table(result))
    arguments = sys.argv[1:] if argv is None else argv
    command = "python -m urcdc_model.evaluate " + " ".join(arguments)
    camera_benchmark.write_outputs(result, args.checkpoint, args.json, args.markdown, command)
    return 0


# ------------------------------------------------------------------------------------------
# saved predictions


def _match_key(path: Path) -> str:
    stem = path.stem
    for prefix in _STEM_PREFIXES:
        if stem.startswith(prefix):
            return stem[len(prefix):]
    return stem


def _index_depth_files(directory: Path, what: str) -> dict[str, Path]:
    if not directory.is_dir():
        raise ValueError(f"{directory}: {what} directory not found")
    files: dict[str, Path] = {}
    for path in sorted(p for p in directory.rglob("*") if p.suffix.lower() in (".png", ".npy")):
        key = _match_key(path)
        if key in files:
            raise ValueError(f"{directory}: {files[key]} and {path} share the stem {key!r}; "
                             f"put one drive per {what} directory")
        files[key] = path
    if not files:
        raise ValueError(f"{directory}: no .png or .npy depth files")
    return files


def read_depth_file(path: Path, depth_scale: float) -> np.ndarray:
    """Metres from ``.npy`` (metres) or a 16-bit PNG (value / depth_scale)."""
    if path.suffix.lower() == ".npy":
        depth = np.load(path, allow_pickle=False)
    else:
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None:
            raise ValueError(f"{path}: unreadable PNG")
        if raw.dtype != np.uint16 or raw.ndim != 2:
            raise ValueError(f"{path}: depth PNG must be single-channel uint16 (metres x {depth_scale:g}), "
                             f"got {raw.dtype} {raw.shape}")
        depth = raw.astype(np.float32) / np.float32(depth_scale)
    depth = np.asarray(depth, dtype=np.float32).squeeze()
    if depth.ndim != 2:
        raise ValueError(f"{path}: expected an H x W depth map, got shape {depth.shape}")
    return depth


def align_prediction(pred: np.ndarray, gt_shape: tuple[int, int], path: Path) -> np.ndarray:
    """A KB-cropped prediction is placed back into the full frame (zeros outside, as the official eval)."""
    if pred.shape == gt_shape:
        return pred
    if pred.shape == (KB_CROP_HEIGHT, KB_CROP_WIDTH) and gt_shape[0] >= KB_CROP_HEIGHT and gt_shape[1] >= KB_CROP_WIDTH:
        full = np.zeros(gt_shape, np.float32)
        top, left = gt_shape[0] - KB_CROP_HEIGHT, (gt_shape[1] - KB_CROP_WIDTH) // 2
        full[top:top + KB_CROP_HEIGHT, left:left + KB_CROP_WIDTH] = pred
        return full
    raise ValueError(f"{path}: prediction is {pred.shape[0]}x{pred.shape[1]} but its ground truth is "
                     f"{gt_shape[0]}x{gt_shape[1]}; save predictions at the GT size (or the 352x1216 KB crop)")


def evaluate_directories(args) -> tuple[dict[str, float], int]:
    scale = DEPTH_SCALE[args.dataset]
    preds = _index_depth_files(Path(args.pred_dir), "prediction")
    gts = _index_depth_files(Path(args.gt_dir), "ground-truth")
    missing = sorted(set(gts) - set(preds))
    if missing:
        raise ValueError(f"{args.pred_dir}: no prediction for {len(missing)} ground-truth file(s), e.g. "
                         f"{gts[missing[0]]} (stem {missing[0]!r})")
    crop = args.crop or depth_metrics.DEFAULT_CROP[args.dataset]
    max_depth = args.max_depth or depth_metrics.MAX_DEPTH_M[args.dataset]
    accumulator = depth_metrics.MetricAccumulator()
    for key in sorted(gts):
        gt = read_depth_file(gts[key], scale)
        pred = align_prediction(read_depth_file(preds[key], scale), gt.shape, preds[key])
        if not depth_metrics.valid_mask(gt, args.dataset, crop, max_depth_m=max_depth).any():
            print(f"{gts[key]}: no valid ground truth inside the crop, skipped", file=sys.stderr)
            continue
        accumulator.add(depth_metrics.compute_depth_metrics(gt, pred, dataset=args.dataset, crop=crop,
                                                            max_depth_m=max_depth))
    return accumulator.mean(), accumulator.count


# ------------------------------------------------------------------------------------------
# command line


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.evaluate", __doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group()
    cli.add_checkpoint(source)
    source.add_argument("--pred-dir", help="score saved predictions instead of running a model (.npy metres or "
                                           "16-bit PNG at the dataset scale)")
    parser.add_argument("--gt-dir", help="ground truth for --pred-dir (16-bit PNG or .npy), matched by file stem")
    parser.add_argument("--dataset", required=True, choices=("kitti", "nyu", "synthetic"))
    parser.add_argument("--data-root", help="dataset root (KITTI raw / NYU sync / a folder of written drives)")
    parser.add_argument("--gt-path", help="ground-truth root if not under --data-root")
    parser.add_argument("--split", help="split file: 'rgb_path gt_path focal' per line")
    parser.add_argument("--crop", choices=depth_metrics.CROPS,
                        help=f"{cli.EVAL_CROP_HELP} (default: garg for KITTI, eigen for NYU, none for synthetic)")
    parser.add_argument("--max-depth", type=float, metavar="M",
                        help=f"{cli.EVAL_MAX_DEPTH_HELP} (default: 80 KITTI and street scenes, 10 NYU and indoor)")
    parser.add_argument("--gt-source", default="annotated", choices=("annotated", "velodyne"),
                        help="KITTI ground truth: annotated PNGs or LiDAR projected through the calibration")
    parser.add_argument("--no-kb-crop", action="store_true", help="KITTI: feed full frames instead of the KB crop")
    parser.add_argument("--kind", default="street", choices=("street", "indoor"), help="synthetic scene kind")
    parser.add_argument("--camera", default="train", choices=("train", "shifted-down", "shifted-up"),
                        help="synthetic camera height/pitch range (shifted = outside the training range)")
    parser.add_argument("--frames", type=int, default=None, metavar="N",
                        help=f"synthetic: held-out frames to render (default: {SYNTHETIC_TEST_FRAMES}; 40 per camera "
                             "with --cameras multi)")
    cli.hidden_alias(parser, "--num-frames", dest="frames", type=int)
    parser.add_argument("--cameras", default="single", choices=("single", "multi"),
                        help="multi: the multi-camera benchmark (synthetic street scenes seen by 8 cameras, "
                             "per-camera abs_rel and median pred/GT against issue 12's criteria)")
    cli.add_input_size(parser, pins=True)
    cli.add_model_max_depth(parser)
    cli.add_no_flip_tta(parser)
    cli.add_max_frames(parser)
    parser.add_argument("--json", metavar="FILE",
                        help=f"{cli.JSON_HELP} (the metrics, or the --cameras multi table)")
    parser.add_argument("--markdown", metavar="FILE", help="--cameras multi: also write the table to this markdown file")
    cli.add_no_progress(parser)
    cli.hidden_alias(parser, "--verbose", dest="verbose", action="store_true")  # progress is on by default now
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cameras == "multi":
        try:
            return run_camera_benchmark(args, argv)
        except (FileNotFoundError, ValueError, *cli.USER_ERRORS) as exc:  # the message names the file
            return cli.print_error(exc)
    if args.frames is None:
        args.frames = SYNTHETIC_TEST_FRAMES
    if args.pred_dir:
        if not args.gt_dir:
            build_parser().error("--pred-dir needs --gt-dir")
        if args.dataset == "synthetic":
            build_parser().error("--pred-dir/--gt-dir scores kitti or nyu style files; use --dataset kitti for drives")
    try:
        results, count = evaluate_directories(args) if args.pred_dir else evaluate_model(args)
    except (FileNotFoundError, ValueError, KeyError, *cli.USER_ERRORS) as exc:  # the message names the file
        return cli.print_error(exc)
    print(f"Computing errors for {count} eval samples")
    print(depth_metrics.format_table(results))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
