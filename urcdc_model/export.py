"""Export the deployed network to ONNX (verified against PyTorch) or TensorRT.

    python -m urcdc_model.export --checkpoint default --format onnx --height 352 --width 1216 \
        --output urcdc_352x1216.onnx
    python -m urcdc_model.export --checkpoint CKPT --format tensorrt --fp16 --height 352 --width 1216 \
        --output urcdc_fp16.engine

The ONNX graph is ``image`` (1×3×H×W, ImageNet-normalised RGB) → ``depth`` (1×1×H×W metres) and
``uncertainty`` (1×1×H×W, expected absolute depth error in metres, see urcdc_model.uncertainty).
Static H×W by default; ``--dynamic`` makes H and W symbolic. Every ONNX file is checked with
onnxruntime against PyTorch on a random and a real image before it is written; a model that
disagrees beyond the tolerance is not written.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from urcdc_model import cli
from urcdc_model.checkpoints import load_model
from urcdc_model.deploy.errors import BackendUnavailableError, ExportVerificationError
from urcdc_model.deploy.files import default_cache_dir, file_sha256
from urcdc_model.deploy.geometry import canonical_camera_from_meta
from urcdc_model.deploy.graph import DeployModel
from urcdc_model.deploy.onnx_export import ONNX_OPSET, export_verified_onnx, list_images
from urcdc_model.deploy.sources import ModelSource, checkpoint_input_size

LOG = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.export", __doc__.split("\n\n")[0])
    cli.add_checkpoint(parser)
    parser.add_argument("--format", choices=("onnx", "tensorrt", "torch-tensorrt"), default="onnx",
                        help="onnx: verified ONNX; tensorrt: serialised engine built from the ONNX with the "
                             "TensorRT builder; torch-tensorrt: a torch_tensorrt-compiled ExportedProgram (.ep)")
    cli.add_input_size(parser)
    cli.hidden_alias(parser, "--height", dest="height", type=int)  # old spelling of --input-size, in two parts
    cli.hidden_alias(parser, "--width", dest="width", type=int)
    cli.add_model_max_depth(parser, old_name="--max-depth")
    parser.add_argument("--fp16", action="store_true", help="TensorRT: allow FP16 kernels")
    parser.add_argument("--int8", action="store_true", help="TensorRT: INT8 with entropy calibration")
    parser.add_argument("--calib-images", type=Path, help="folder of images for INT8 calibration")
    parser.add_argument("--calib-limit", type=int, default=64, help="at most this many calibration images")
    parser.add_argument("--dynamic", action="store_true", help="symbolic H and W (ONNX) / a shape range (TensorRT)")
    parser.add_argument("--verify-images", type=Path,
                        help="folder of real images for the parity check (default: a rendered street frame)")
    parser.add_argument("--opset", type=int, default=ONNX_OPSET,
                        help="ONNX opset (17 keeps LayerNormalization as one op, needs TensorRT >= 8.6; "
                             "16 for TensorRT 8.5 / JetPack 5)")
    parser.add_argument("--workspace-gb", type=float, default=4.0, help="TensorRT builder workspace limit")
    parser.add_argument("--output", type=Path, required=True, help="file to write (.onnx / .engine / .ep)")
    cli.add_no_progress(parser)
    return parser


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.int8 and args.calib_images is None:
        parser.error("--int8 needs --calib-images DIR (images from the deployment camera)")
    if (args.fp16 or args.int8 or args.calib_images) and args.format == "onnx":
        parser.error("--fp16/--int8/--calib-images apply to --format tensorrt / torch-tensorrt; "
                     "the ONNX file stays FP32 (TensorRT picks the precision at build time)")
    if not 13 <= args.opset <= 20:
        parser.error("--opset must be between 13 and 20 (17 recommended)")
    height, width = getattr(args, "height", None), getattr(args, "width", None)
    if (height is None) != (width is None):
        parser.error("give both --height and --width, or neither (or --input-size HxW)")
    args.height, args.width = args.input_size or (height, width)
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI entry: errors a user can fix (paths, missing packages, bad checkpoints) print one line, exit 2."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.no_progress else logging.INFO, format="%(message)s")
    try:
        return run_export(args)
    except (FileNotFoundError, BackendUnavailableError, ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def run_export(args: argparse.Namespace) -> int:
    """Export as the parsed CLI arguments say; raises on failure."""
    if args.format == "tensorrt":  # fail before the (slow) ONNX export when the build cannot happen
        from urcdc_model.deploy.tensorrt import import_tensorrt, require_cuda

        import_tensorrt()
        require_cuda()
    source = ModelSource.resolve(args.checkpoint)  # an .onnx/.engine here: load_model says what to pass instead
    LOG.info("loading %s", source.path)
    model, cfg, meta = load_model(source.path, with_cnn=False, map_location="cpu", max_depth=args.model_max_depth)
    official = "input_height" not in meta  # official .ckpt files carry no metadata
    train_size = (0, 0) if official else checkpoint_input_size(meta, source.path)
    canonical = canonical_camera_from_meta(meta, train_size, cfg.max_depth, official=official)
    height, width = (args.height, args.width) if args.height else canonical.train_size
    deploy = DeployModel(model, max_depth=cfg.max_depth).eval()
    sha = file_sha256(source.path)
    metadata = {"urcdc.checkpoint_sha256": sha, "urcdc.train_height": canonical.train_size[0],
                "urcdc.train_width": canonical.train_size[1], "urcdc.canonical_focal_px": canonical.focal_px,
                "urcdc.config": json.dumps(cfg.to_dict())}
    verify = list_images(args.verify_images, limit=4) if args.verify_images else None

    if args.format == "torch-tensorrt":
        from urcdc_model.deploy.torch_tensorrt import compile_torch_tensorrt

        compile_torch_tensorrt(deploy, args.output, height, width, fp16=args.fp16, dynamic=args.dynamic)
        LOG.info("wrote %s", args.output)
        return 0

    onnx_path = args.output if args.format == "onnx" else args.output.with_suffix(".onnx")
    try:
        _, results = export_verified_onnx(deploy, onnx_path, height, width, dynamic=args.dynamic,
                                          real_images=verify, metadata=metadata, opset=args.opset)
    except ExportVerificationError as error:
        LOG.error("%s", error)
        return 1
    for r in results:
        LOG.info("parity %-28s %s", r.input_name, "  ".join(f"{k} {v:.1e}" for k, v in r.errors.items()))
    LOG.info("wrote %s (opset %d, %s)", onnx_path, args.opset, "dynamic H×W" if args.dynamic else f"{height}x{width}")
    if args.format == "tensorrt":
        from urcdc_model.deploy.tensorrt import build_engine, calibration_batches, current_identity, timing_cache_path

        calib = None
        if args.int8:
            calib = calibration_batches(list_images(args.calib_images, limit=args.calib_limit), height, width)
        precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
        build_engine(onnx_path, args.output, height=height, width=width, precision=precision,
                     max_depth=cfg.max_depth, dynamic=args.dynamic, calibration=calib,
                     workspace_bytes=int(args.workspace_gb * (1 << 30)),
                     timing_cache=timing_cache_path(default_cache_dir(), current_identity()))
        LOG.info("wrote %s (%s)", args.output, precision)
    return 0


if __name__ == "__main__":
    sys.exit(main())
