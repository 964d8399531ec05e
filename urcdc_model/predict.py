"""Single-image metric depth, as the official URCDC-Depth test script computes it.

    python -m urcdc_model.predict --checkpoint CKPT|default --image IMG --output OUT.npy \
        [--model-max-depth 80] [--no-flip-tta] [--kb-crop] [--png OUT.png] [--preview OUT_color.png]

RGB in (any size), H x W float32 depth in metres out. Preprocessing is RGB / 255 with ImageNet
mean/std; flip test-time augmentation is the official border-blended mean (``--no-flip-tta`` turns it
off). ``--kb-crop`` predicts on the KITTI benchmark crop (bottom-centre 352 x 1216) and writes it
into a full-size map with 0 (= no depth) outside, like the official KITTI evaluation.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from . import cli
from .checkpoints import load_model
from .inference import predict_depth
from .preprocessing import KB_CROP_HEIGHT, KB_CROP_WIDTH, kb_crop_box, normalize_rgb, read_rgb
from .visualize import save_depth_preview

UINT16_MAX = 65535


def predict_image(model: torch.nn.Module, rgb: np.ndarray, flip_tta: bool = True, kb_crop: bool = False,
                  device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """(depth_m, confidence), float32 H x W each, for a uint8 RGB image."""
    height, width = rgb.shape[:2]
    top, left = kb_crop_box(height, width) if kb_crop else (0, 0)
    crop = rgb[top:top + KB_CROP_HEIGHT, left:left + KB_CROP_WIDTH] if kb_crop else rgb
    image = normalize_rgb(crop).unsqueeze(0).to(device)
    depth, confidence = predict_depth(model, image, flip_tta=flip_tta)
    depth_m = np.zeros((height, width), np.float32)
    conf = np.zeros((height, width), np.float32)
    ch, cw = crop.shape[:2]
    depth_m[top:top + ch, left:left + cw] = depth[0, 0].cpu().numpy()
    conf[top:top + ch, left:left + cw] = confidence[0, 0].cpu().numpy()
    return depth_m, conf


def depth_to_png16(depth_m: np.ndarray, scale: float) -> np.ndarray:
    """uint16 depth PNG payload: round(depth * scale), clipped (KITTI convention: scale 256)."""
    return np.clip(np.round(depth_m * scale), 0, UINT16_MAX).astype(np.uint16)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.predict", __doc__.split("\n\n")[0])
    cli.add_checkpoint(parser)
    parser.add_argument("--image", required=True, type=Path, help="input RGB image (PNG/JPEG)")
    parser.add_argument("--output", required=True, type=Path, help="output .npy: H x W float32 depth in metres")
    cli.add_model_max_depth(parser, old_name="--max-depth")
    cli.add_no_flip_tta(parser, old_name="--no-flip")
    parser.add_argument("--kb-crop", action="store_true", help="predict on the KITTI benchmark crop (352x1216)")
    parser.add_argument("--png", type=Path, default=None, help="also write a 16-bit depth PNG (depth * --png-scale)")
    parser.add_argument("--png-scale", type=float, default=256.0, help="PNG units per metre (KITTI 256, NYU 1000)")
    parser.add_argument("--preview", type=Path, default=None,
                        help="also write a colour PNG of the depth (turbo, near = red) with a colour bar in metres")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu, cuda or cuda:1")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.output.suffix != ".npy":
        print(f"error: --output {args.output}: use a .npy file name", file=sys.stderr)
        return 2
    try:
        rgb = read_rgb(args.image)
        model, cfg, _ = load_model(args.checkpoint, with_cnn=False, map_location=args.device,
                                   max_depth=args.model_max_depth)
        depth_m, _ = predict_image(model, rgb, flip_tta=not args.no_flip_tta, kb_crop=args.kb_crop,
                                   device=args.device)
    except (FileNotFoundError, ValueError, *cli.USER_ERRORS) as exc:  # ModelFileError: one line naming file and fix
        return cli.print_error(exc)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, depth_m)
    if args.png is not None:
        cv2.imwrite(str(args.png), depth_to_png16(depth_m, args.png_scale))
    if args.preview is not None:
        save_depth_preview(args.preview, depth_m, cfg.max_depth, title=f"{args.image.name}: depth from "
                           f"{Path(str(args.checkpoint)).name} ({cfg.name})")
    valid = depth_m[depth_m > 0]
    summary = (f"{valid.min():.2f}-{valid.max():.2f} m (median {np.median(valid):.2f} m)" if valid.size
               else "no valid pixels")
    print(f"{args.output}: {depth_m.shape[0]}x{depth_m.shape[1]} depth, {summary}, model {cfg.name}, "
          f"flip TTA {'off' if args.no_flip_tta else 'on'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
