"""Single-image metric depth through the same path as the node: ``DepthRuntime`` and its camera geometry.

    python -m urcdc_model.predict --checkpoint CKPT|default --image IMG --output OUT.npy \
        [--intrinsics FX FY CX CY | --camera-info camera.yaml] [--backend torch] [--model-max-depth 80] \
        [--no-flip-tta] [--kb-crop] [--png OUT.png] [--preview OUT_color.png]

RGB in (any size), H x W float32 depth in metres out. The image is resized so the camera looks like
the model's canonical camera (``urcdc_model.deploy.geometry``), run, mapped back onto the image's
pixel grid and scaled for the focal length the network saw, exactly as ``DepthRuntime.infer`` does
for the ROS node. Give the camera with ``--intrinsics`` or a ROS camera_info YAML (``--camera-info``;
P is used when set, as the node does); without either the image is assumed to have the training
images' horizontal field of view (said on stderr). Flip test-time augmentation is the official
border-blended mean, its mirrored pass padded to other multiples (``DepthRuntime.infer``; none on the
KITTI benchmark crop; ``--no-flip-tta`` turns it off). ``--kb-crop`` predicts on the KITTI benchmark crop
(bottom-centre 352 x 1216) and writes it into a full-size map with 0 (= no depth) outside, like the
official KITTI evaluation.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from . import cli
from .deploy.geometry import check_intrinsics
from .deploy.intrinsics import parse_intrinsics_values, read_camera_info_yaml
from .deploy.runtime import DepthRuntime
from .preprocessing import KB_CROP_HEIGHT, KB_CROP_WIDTH, kb_crop_box, read_rgb
from .visualize import save_depth_preview

UINT16_MAX = 65535
BACKENDS = ("torch", "onnxruntime", "tensorrt", "auto")


def predict_image(runtime: DepthRuntime, rgb: np.ndarray, intrinsics: np.ndarray | None = None,
                  flip_tta: bool = True, kb_crop: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(depth_m, uncertainty_m), float32 H x W each, for a uint8 RGB image seen by a camera with K ``intrinsics``.

    With ``kb_crop`` only the KITTI benchmark window is predicted (0 elsewhere); its K is the frame's
    shifted by the crop offset. Without intrinsics the crop gets the fallback itself: the KB crop is
    what official KITTI checkpoints were trained on, so they run it at native size, as the official
    test script does.
    """
    height, width = rgb.shape[:2]
    if not kb_crop:
        return runtime.infer(rgb, intrinsics, flip_tta=flip_tta)
    top, left = kb_crop_box(height, width)
    crop = np.ascontiguousarray(rgb[top:top + KB_CROP_HEIGHT, left:left + KB_CROP_WIDTH])
    k = None
    if intrinsics is not None:
        k = np.array(intrinsics, dtype=np.float64)
        k[0, 2] -= left
        k[1, 2] -= top
    depth_crop, uncertainty_crop = runtime.infer(crop, k, flip_tta=flip_tta)
    depth_m = np.zeros((height, width), np.float32)
    uncertainty_m = np.zeros((height, width), np.float32)
    depth_m[top:top + KB_CROP_HEIGHT, left:left + KB_CROP_WIDTH] = depth_crop
    uncertainty_m[top:top + KB_CROP_HEIGHT, left:left + KB_CROP_WIDTH] = uncertainty_crop
    return depth_m, uncertainty_m


def camera_from_args(args, frame_hw: tuple[int, int]) -> tuple[np.ndarray | None, str]:
    """(K or None, where it came from) from ``--intrinsics`` / ``--camera-info``; ValueError names the field."""
    if args.intrinsics is not None:
        k, source = parse_intrinsics_values(args.intrinsics), "--intrinsics"
    elif args.camera_info is not None:
        info = read_camera_info_yaml(args.camera_info)
        if info.frame_hw != tuple(frame_hw):
            raise ValueError(f"{args.camera_info}: image_width x image_height = {info.frame_hw[1]}x{info.frame_hw[0]} "
                             f"but {args.image} is {frame_hw[1]}x{frame_hw[0]}; use the calibration of this "
                             "resolution")
        k, source = info.intrinsics, f"{args.camera_info} ({info.source})"
    else:
        return None, "fallback"
    return check_intrinsics(k, frame_hw), source


def depth_to_png16(depth_m: np.ndarray, scale: float) -> np.ndarray:
    """uint16 depth PNG payload: round(depth * scale), clipped (KITTI convention: scale 256)."""
    return np.clip(np.round(depth_m * scale), 0, UINT16_MAX).astype(np.uint16)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.predict", __doc__.split("\n\n")[0])
    cli.add_checkpoint(parser, runtime=True)
    parser.add_argument("--image", required=True, type=Path, help="input RGB image (PNG/JPEG)")
    parser.add_argument("--output", required=True, type=Path, help="output .npy: H x W float32 depth in metres")
    cli.add_model_max_depth(parser, old_name="--max-depth")
    cli.add_no_flip_tta(parser, old_name="--no-flip")
    parser.add_argument("--kb-crop", action="store_true", help="predict on the KITTI benchmark crop (352x1216)")
    parser.add_argument("--png", type=Path, default=None, help="also write a 16-bit depth PNG (depth * --png-scale)")
    parser.add_argument("--png-scale", type=float, default=256.0, help="PNG units per metre (KITTI 256, NYU 1000)")
    parser.add_argument("--preview", type=Path, default=None,
                        help="also write a colour PNG of the depth (turbo, near = red) with a colour bar in metres")
    camera = parser.add_mutually_exclusive_group()
    camera.add_argument("--intrinsics", nargs="+", metavar="V", default=None,
                        help="the camera's FX FY CX CY in pixels of this image (4 values)")
    camera.add_argument("--camera-info", type=Path, default=None,
                        help="a ROS camera_info YAML (camera_calibration's format); P is used when set, else K; "
                             "its image size must match the image")
    parser.add_argument("--backend", default="torch", choices=BACKENDS,
                        help=f"{cli.BACKEND_HELP} (torch runs the checkpoint directly; the others export it first)")
    cli.add_device(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.output.suffix != ".npy":
        print(f"error: --output {args.output}: use a .npy file name", file=sys.stderr)
        return 2
    try:
        rgb = read_rgb(args.image)
        intrinsics, source = camera_from_args(args, rgb.shape[:2])   # bad intrinsics fail before the model loads
        runtime = DepthRuntime.from_path(args.checkpoint, backend=args.backend, device=args.device,
                                         max_depth=args.model_max_depth, warmup_runs=0)
        if intrinsics is None:
            net_frame_hw = (KB_CROP_HEIGHT, KB_CROP_WIDTH) if args.kb_crop else rgb.shape[:2]
            fallback = runtime.canonical.fallback_intrinsics(net_frame_hw)
            print(f"predict: no --intrinsics/--camera-info: assuming the training images' field of view "
                  f"(fx = fy = {fallback[0, 0]:.1f} px for this {net_frame_hw[1]}-px-wide "
                  f"{'crop' if args.kb_crop else 'image'}); depth is metric only if the camera matches",
                  file=sys.stderr)
        depth_m, _ = predict_image(runtime, rgb, intrinsics, flip_tta=not args.no_flip_tta, kb_crop=args.kb_crop)
    except (FileNotFoundError, ValueError, *cli.USER_ERRORS) as exc:  # ModelFileError: one line naming file and fix
        return cli.print_error(exc)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, depth_m)
    if args.png is not None:
        cv2.imwrite(str(args.png), depth_to_png16(depth_m, args.png_scale))
    if args.preview is not None:
        save_depth_preview(args.preview, depth_m, runtime.max_depth, title=f"{args.image.name}: depth from "
                           f"{Path(str(args.checkpoint)).name} ({runtime.backend}), camera from {source}")
    valid = depth_m[depth_m > 0]
    summary = (f"{valid.min():.2f}-{valid.max():.2f} m (median {np.median(valid):.2f} m)" if valid.size
               else "no valid pixels")
    print(f"{args.output}: {depth_m.shape[0]}x{depth_m.shape[1]} depth, {summary}, camera from {source}, "
          f"{runtime.backend} backend, flip TTA {'off' if args.no_flip_tta else 'on'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
