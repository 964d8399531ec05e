"""Export the deployed network to ONNX (verified against PyTorch), TensorRT or torch-tensorrt, in FP32/FP16/INT8.

    python -m urcdc_model.export --checkpoint default --format onnx --input-size 352x1216 \
        --output urcdc_352x1216.onnx
    python -m urcdc_model.export --checkpoint default --format onnx --precision int8 --calib-images frames/ \
        --input-size 352x1216 --output urcdc_int8.onnx
    python -m urcdc_model.export --checkpoint CKPT --format tensorrt --precision fp16 --input-size 352x1216 \
        --output urcdc_fp16.engine

The ONNX graph is ``image`` (1×3×H×W, ImageNet-normalised RGB) → ``depth`` (1×1×H×W metres) and
``uncertainty`` (1×1×H×W, expected absolute depth error in metres, see urcdc_model.deploy.uncertainty).
Static H×W by default; ``--dynamic`` makes H and W symbolic. Every file is verified before it is
written: the FP32 ONNX against PyTorch, FP16/INT8 ONNX and every TensorRT engine against the FP32
ONNX on onnxruntime, each within its precision's error budget (urcdc_model.deploy.precision).
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from urcdc_model import cli
from urcdc_model.checkpoints import load_model
from urcdc_model.deploy.errors import BackendUnavailableError, ExportVerificationError
from urcdc_model.deploy.files import default_cache_dir, file_sha256
from urcdc_model.deploy.geometry import canonical_camera_from_meta
from urcdc_model.deploy.graph import DeployModel
from urcdc_model.deploy.onnx_export import ONNX_OPSET, export_verified_onnx, list_images
from urcdc_model.deploy.precision import INT8_TARGETS, PRECISIONS
from urcdc_model.deploy.sources import ModelSource, checkpoint_input_size

LOG = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.export", __doc__.split("\n\n")[0])
    cli.add_checkpoint(parser)
    parser.add_argument("--format", choices=("onnx", "tensorrt", "torch-tensorrt"), default="onnx",
                        help="onnx: verified ONNX; tensorrt: verified engine built from the ONNX with the "
                             "TensorRT builder; torch-tensorrt: a torch_tensorrt-compiled ExportedProgram (.ep)")
    parser.add_argument("--precision", choices=PRECISIONS, default=None,
                        help="fp32 (default); fp16: half weights/compute, float32 I/O and normalisations; "
                             "int8: explicit Q/DQ calibrated on --calib-images")
    parser.add_argument("--fp16", action="store_true", help=argparse.SUPPRESS)  # old spelling of --precision fp16
    parser.add_argument("--int8", action="store_true", help=argparse.SUPPRESS)  # old spelling of --precision int8
    cli.add_input_size(parser)
    cli.hidden_alias(parser, "--height", dest="height", type=int)  # old spelling of --input-size, in two parts
    cli.hidden_alias(parser, "--width", dest="width", type=int)
    cli.add_model_max_depth(parser, old_name="--max-depth")
    parser.add_argument("--calib-images", type=Path, help="folder of images from the deployment camera (INT8)")
    parser.add_argument("--calib-limit", type=int, default=64, help="at most this many calibration images")
    parser.add_argument("--int8-target", choices=INT8_TARGETS, default=None,
                        help="INT8 ONNX for onnxruntime (INT32 biases: integer CPU kernels; the --format onnx "
                             "default) or for tensorrt (float biases, what TensorRT's parser takes; e.g. for "
                             "trtexec). --format tensorrt always uses tensorrt")
    parser.add_argument("--dynamic", action="store_true", help="symbolic H and W (ONNX) / a shape range (TensorRT)")
    parser.add_argument("--verify-images", type=Path,
                        help="folder of real images to verify on, besides rendered street frames")
    parser.add_argument("--opset", type=int, default=None,
                        help=f"ONNX opset (default {ONNX_OPSET}; with --format tensorrt what the installed "
                             "TensorRT parses: 16 below 8.6, which has no LayerNormalization)")
    parser.add_argument("--workspace-gb", type=float, default=4.0, help="TensorRT builder workspace limit")
    parser.add_argument("--output", type=Path, required=True, help="file to write (.onnx / .engine / .ep)")
    cli.add_no_progress(parser)
    return parser


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    aliases = [p for p, flag in (("fp16", args.fp16), ("int8", args.int8)) if flag]
    if len(aliases) > 1 or (aliases and args.precision not in (None, aliases[0])):
        parser.error("give one precision: --precision fp32|fp16|int8")
    args.precision = args.precision or (aliases[0] if aliases else "fp32")
    if args.precision == "int8" and args.calib_images is None:
        parser.error("--precision int8 needs --calib-images DIR (images from the deployment camera)")
    if args.calib_images is not None and args.precision != "int8":
        parser.error("--calib-images is for --precision int8")
    if args.format == "torch-tensorrt" and args.precision == "int8":
        parser.error("--format torch-tensorrt compiles fp32/fp16; for int8 use --format tensorrt --precision int8 "
                     "(a Q/DQ ONNX calibrated on --calib-images)")
    if args.int8_target is not None and (args.precision != "int8" or args.format != "onnx"):
        parser.error("--int8-target is for --format onnx --precision int8 (--format tensorrt uses tensorrt)")
    if args.opset is not None and not 13 <= args.opset <= 20:
        parser.error("--opset must be between 13 and 20 (17 recommended)")
    height, width = getattr(args, "height", None), getattr(args, "width", None)
    if (height is None) != (width is None):
        parser.error("give both --height and --width, or neither (or --input-size HxW)")
    args.height, args.width = args.input_size or (height, width)
    return args


def main(argv: list[str] | None = None) -> int:
    """CLI entry: errors a user can fix (paths, missing packages, bad checkpoints) print one line, exit 2;
    a model outside its verification budget prints one line and exits 1 (nothing written)."""
    args = _parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.no_progress else logging.INFO, format="%(message)s",
                        handlers=[cli.StderrHandler()])
    cli.show_progress_logs(not args.no_progress)  # the export's own stages, even if an earlier tool set them
    try:
        return run_export(args)
    except (ExportVerificationError, FileNotFoundError, BackendUnavailableError, ValueError, RuntimeError) as error:
        return cli.print_error(error)


def run_export(args: argparse.Namespace) -> int:
    """Export as the parsed CLI arguments say; raises on failure."""
    caps = None
    if args.format == "tensorrt":  # fail before the (slow) ONNX export when the build cannot happen
        from urcdc_model.deploy.tensorrt import current_identity, installed_capabilities

        current_identity()
        caps = installed_capabilities()
    calib_paths = list_images(args.calib_images, limit=args.calib_limit) if args.calib_images else None
    verify_paths = list_images(args.verify_images, limit=4) if args.verify_images else None
    source = ModelSource.resolve(args.checkpoint)  # an .onnx/.engine here: load_model says what to pass instead
    LOG.info("loading %s", source.path)
    model, cfg, meta = load_model(source.path, with_cnn=False, map_location="cpu", max_depth=args.model_max_depth)
    official = "input_height" not in meta  # official .ckpt files carry no metadata
    train_size = (0, 0) if official else checkpoint_input_size(meta, source.path)
    canonical = canonical_camera_from_meta(meta, train_size, cfg.max_depth, official=official)
    height, width = (args.height, args.width) if args.height else canonical.train_size
    deploy = DeployModel(model, max_depth=cfg.max_depth).eval()

    if args.format == "torch-tensorrt":
        from urcdc_model.deploy.torch_tensorrt import compile_torch_tensorrt

        compile_torch_tensorrt(deploy, args.output, height, width, precision=args.precision, dynamic=args.dynamic)
        LOG.info("wrote %s (%s)", args.output, args.precision)
        return 0

    opset = args.opset or (caps.onnx_opset if caps else ONNX_OPSET)
    metadata = {"urcdc.checkpoint_sha256": file_sha256(source.path), "urcdc.train_height": canonical.train_size[0],
                "urcdc.train_width": canonical.train_size[1], "urcdc.canonical_focal_px": canonical.focal_px,
                "urcdc.config": json.dumps(cfg.to_dict())}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.output.parent, prefix=".urcdc-export.") as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        _, results = export_verified_onnx(deploy, fp32_path, height, width, dynamic=args.dynamic,
                                          real_images=verify_paths, metadata=metadata, opset=opset)
        for r in results:
            LOG.info("parity vs PyTorch %-28s %s", r.input_name, "  ".join(f"{k} {v:.1e}" for k, v in r.errors.items()))
        if args.format == "onnx":
            _write_onnx(fp32_path, args.output, args.precision, height, width, calib_paths, verify_paths,
                        int8_target=args.int8_target or "onnxruntime")
            LOG.info("wrote %s (%s, opset %d, %s)", args.output, args.precision, opset,
                     "dynamic H×W" if args.dynamic else f"{height}x{width}")
            return 0
        _write_engine(args, caps, fp32_path, height, width, cfg.max_depth, calib_paths, verify_paths)
    return 0


def _write_onnx(fp32_path: Path, output: Path, precision: str, height: int, width: int,
                calib_paths: list[Path] | None, verify_paths: list[Path] | None, int8_target: str) -> None:
    """The FP32 export as it is, or converted to FP16/INT8 and verified against it."""
    from urcdc_model.deploy.precision import convert_verified, image_batches, verification_batches

    if precision == "fp32":
        shutil.move(fp32_path, output)
        return
    calibration = image_batches(calib_paths, height, width) if calib_paths else None
    verify = verification_batches(height, width, verify_paths)
    _, errors = convert_verified(fp32_path, output, precision, calibration=calibration, verify=verify,
                                 int8_target=int8_target)
    for error in errors:
        LOG.info("%s vs FP32 %s", precision, error.describe())


def _write_engine(args: argparse.Namespace, caps, fp32_path: Path, height: int, width: int, max_depth: float,
                  calib_paths: list[Path] | None, verify_paths: list[Path] | None) -> None:
    """Write the ONNX TensorRT builds from (FP32, or FP16/INT8 as tensorrt_compat decides) beside the
    engine, build, and verify the engine against the FP32 ONNX on onnxruntime."""
    from urcdc_model.deploy.precision import verification_batches
    from urcdc_model.deploy.tensorrt import build_verified_engine, current_identity, timing_cache_path
    from urcdc_model.deploy.tensorrt_compat import build_plan

    plan = build_plan(caps, args.precision)
    build_onnx = args.output.with_suffix(".onnx")
    if plan.onnx_precision == "fp32":
        shutil.copyfile(fp32_path, build_onnx)
    else:
        _write_onnx(fp32_path, build_onnx, plan.onnx_precision, height, width, calib_paths, verify_paths,
                    int8_target="tensorrt")
    LOG.info("wrote %s (%s, what TensorRT %s builds %s from)", build_onnx, plan.onnx_precision, caps.version,
             args.precision)
    _, errors = build_verified_engine(
        build_onnx, args.output, height, width, args.precision, max_depth, reference_onnx=fp32_path,
        verify=verification_batches(height, width, verify_paths), dynamic=args.dynamic,
        workspace_bytes=int(args.workspace_gb * (1 << 30)),
        timing_cache=timing_cache_path(default_cache_dir(), current_identity()))
    LOG.info("wrote %s (%s, verified on %d images)", args.output, args.precision, len(errors))


if __name__ == "__main__":
    sys.exit(main())
