"""FP32 vs FP16 vs INT8 ONNX on onnxruntime's CPU provider: accuracy on held-out frames and speed, one run.

    python -m urcdc_model.deploy.precision_bench --checkpoint default --input-size 352x1216 --write docs/BENCHMARKS.md

Exports the verified, constant-folded FP32 ONNX, converts it to FP16 and to INT8 Q/DQ (calibrated on
rendered street frames from training seeds; the onnxruntime flavour, INT32 biases), then

- accuracy: abs_rel and δ<1.25 against the exact depth of held-out procedural street frames
  (``render_frame(seed ≥ HELD_OUT_SEED)`` at the network size, metric depth as in evaluate). The
  frames are rendered with the model's canonical focal length, so the network sees pixels at the
  scale it was trained on (what DepthRuntime's canonical resize gives it); at a network size larger
  than the training size that is a wider view, not a zoomed one. ``--kitti-fov`` renders KITTI's
  field of view instead, which at 352×1216 shows the default model objects 3.8× larger than it
  learned them: metric depth then comes out far too near, for every precision alike;
- speed: ``session.run`` of each model on one frame, iterations interleaved round-robin so machine
  load hits every model alike; median and p90.

With ``--write FILE`` the table replaces its subsection of FILE's "Deploy" section, with the machine's
load average beside it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from urcdc_model import cli
from urcdc_model.deploy.bench import machine_description, write_benchmarks_md

SECTION = "## Deploy: precision, TensorRT, GPU check (issue 13)"
SUBSECTION = "Precision on onnxruntime CPU, {height}×{width}, {view}"


def canonical_focal_px(checkpoint: str) -> float:
    """The focal length (px) the model's metric scale was learned at, from its metadata."""
    from urcdc_model.checkpoints import read_checkpoint
    from urcdc_model.deploy.geometry import canonical_camera_from_meta
    from urcdc_model.deploy.sources import ModelSource, checkpoint_input_size

    source = ModelSource.resolve(checkpoint)
    _, cfg, meta = read_checkpoint(source.path)
    official = "input_height" not in meta
    train_size = (0, 0) if official else checkpoint_input_size(meta, source.path)
    max_depth = cfg.get("max_depth") if cfg is not None else None
    return canonical_camera_from_meta(meta, train_size, max_depth, official).focal_px


def held_out_intrinsics(size: tuple[int, int], focal_px: float | None) -> np.ndarray | None:
    """K of the rendered frames: ``focal_px`` with a centred principal point, or None (KITTI's view)."""
    if focal_px is None:
        return None
    return np.array([[focal_px, 0, (size[1] - 1) / 2], [0, focal_px, (size[0] - 1) / 2], [0, 0, 1]], np.float64)


def export_models(checkpoint: str, size: tuple[int, int], directory: Path, calib_frames: int,
                  intrinsics: np.ndarray | None) -> dict[str, Path]:
    """FP32 (verified against PyTorch, folded), FP16 and INT8 (each verified against FP32; INT8
    calibrated on frames of the same camera as the held-out ones, as a deployment would)."""
    from urcdc_model.checkpoints import load_model
    from urcdc_model.deploy.graph import DeployModel
    from urcdc_model.deploy.onnx_export import export_onnx, export_verified_onnx
    from urcdc_model.deploy.precision import convert_verified, rendered_calibration_batches

    model, cfg, _ = load_model(checkpoint, with_cnn=False)
    deploy = DeployModel(model, cfg.max_depth).eval()
    paths = {"fp32 (unfolded)": directory / "raw.onnx", "fp32": directory / "fp32.onnx",
             "fp16": directory / "fp16.onnx", "int8": directory / "int8.onnx"}
    export_onnx(deploy, paths["fp32 (unfolded)"], *size)
    export_verified_onnx(deploy, paths["fp32"], *size)
    convert_verified(paths["fp32"], paths["fp16"], "fp16")
    # Training seeds: calibration must not see the held-out frames the accuracy is measured on.
    calibration = rendered_calibration_batches(*size, count=calib_frames, intrinsics=intrinsics)
    convert_verified(paths["fp32"], paths["int8"], "int8", calibration=calibration, int8_target="onnxruntime")
    return paths


def _held_out_seed() -> int:
    from urcdc_model.data.synthetic import HELD_OUT_SEED

    return HELD_OUT_SEED


def accuracy(paths: dict[str, Path], size: tuple[int, int], frames: int,
             intrinsics: np.ndarray | None) -> dict[str, dict[str, float]]:
    """Mean abs_rel and d1 of each model on ``frames`` held-out street frames rendered with ``intrinsics``
    (None: the renderer's KITTI field of view)."""
    from urcdc_model.data.synthetic import render_frame
    from urcdc_model.deploy.precision import onnxruntime_session, prepare_image
    from urcdc_model.metrics import compute_depth_metrics

    rendered = [render_frame(_held_out_seed() + i, kind="street", height=size[0], width=size[1], intrinsics=intrinsics)
                for i in range(frames)]
    results = {}
    for name, path in paths.items():
        session = onnxruntime_session(path)
        metrics = [compute_depth_metrics(f.depth_m, session.run(["depth"], {"image": prepare_image(f.rgb, *size)})[0][0, 0],
                                         dataset="synthetic") for f in rendered]
        results[name] = {key: float(np.mean([m[key] for m in metrics])) for key in ("abs_rel", "d1")}
    return results


def speed(paths: dict[str, Path], size: tuple[int, int], runs: int, warmup: int,
          threads: int | None) -> dict[str, tuple[float, float]]:
    """Interleaved median/p90 ms of ``session.run`` per model on one rendered frame."""
    from urcdc_model.data.synthetic import render_frame
    from urcdc_model.deploy.precision import onnxruntime_session, prepare_image

    image = prepare_image(render_frame(1, kind="street", height=size[0], width=size[1]).rgb, *size)
    sessions = {name: onnxruntime_session(path, num_threads=threads or os.cpu_count()) for name, path in paths.items()}
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    for i in range(warmup + runs):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.run(None, {"image": image})
            if i >= warmup:
                samples[name].append((time.perf_counter() - start) * 1e3)
    return {name: (float(np.median(s)), float(np.percentile(s, 90))) for name, s in samples.items()}


def format_table(acc: dict, times: dict, nodes: dict[str, int]) -> str:
    base_abs_rel, base_ms = acc["fp32"]["abs_rel"], times["fp32"][0]
    lines = ["| model | ONNX nodes | abs_rel | Δ abs_rel vs FP32 | δ<1.25 | median ms | p90 ms | × FP32 speed |",
             "|---|---|---|---|---|---|---|---|"]
    for name in acc:
        a, (median, p90) = acc[name], times[name]
        lines.append(f"| {name} | {nodes[name]} | {a['abs_rel']:.4f} | {a['abs_rel'] - base_abs_rel:+.4f} | "
                     f"{a['d1']:.4f} | {median:.0f} | {p90:.0f} | {base_ms / median:.2f} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.deploy.precision_bench", __doc__.split("\n\n")[0])
    cli.add_checkpoint(parser)
    cli.add_input_size(parser, old_name="--size", default=(352, 1216))
    parser.add_argument("--frames", type=int, default=8, help="held-out frames for accuracy")
    parser.add_argument("--calib-frames", type=int, default=16, help="rendered calibration frames (training seeds)")
    parser.add_argument("--kitti-fov", action="store_true",
                        help="render held-out frames with KITTI's field of view instead of the canonical focal")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per model first")
    cli.add_num_threads(parser, old_name="--threads")
    parser.add_argument("--write", type=Path, default=None, metavar="FILE",
                        help="also write the table into FILE's 'Deploy' section (e.g. docs/BENCHMARKS.md)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.size = args.input_size
    args.threads = args.num_threads or None
    from urcdc_model.deploy.onnx_export import count_nodes

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="urcdc-precision-bench.") as tmp:
        focal = None if args.kitti_fov else canonical_focal_px(args.checkpoint)
        intrinsics = held_out_intrinsics(args.size, focal)
        paths = export_models(args.checkpoint, args.size, Path(tmp), args.calib_frames, intrinsics)
        nodes = {name: count_nodes(path)["total"] for name, path in paths.items()}
        acc = accuracy(paths, args.size, args.frames, intrinsics)
        times = speed(paths, args.size, args.runs, args.warmup, args.threads)
    load_end = os.getloadavg()
    table = format_table(acc, times, nodes)
    machine = machine_description("cpu", args.threads)
    load = (f"load average (1/5/15 min) {load_start[0]:.1f}/{load_start[1]:.1f}/{load_start[2]:.1f} at start, "
            f"{load_end[0]:.1f}/{load_end[1]:.1f}/{load_end[2]:.1f} at the end")
    print(f"{machine}\n{load}\n\n{table}")
    if args.write:
        command = "python -m urcdc_model.deploy.precision_bench " + " ".join(
            shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        view = "KITTI field of view" if args.kitti_fov else f"canonical focal {focal:.1f} px"
        body = (f"Command: `{command}` ({args.size[0]}×{args.size[1]}, {args.frames} held-out frames ({view}), "
                f"{args.calib_frames} calibration frames, {args.runs} interleaved timed runs after {args.warmup} "
                f"warm-up; {stamp}).\n\nMachine: {machine}; {load}.\n\n{table}\n")
        title = SUBSECTION.format(height=args.size[0], width=args.size[1],
                                  view="KITTI view" if args.kitti_fov else "canonical focal")
        write_benchmarks_md(args.write, title, body, section=SECTION)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
