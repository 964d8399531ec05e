"""Frames to analyse: image files (with optional GT depth PNGs) and procedural frames with exact depth."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from urcdc_model.data.base import read_depth_png
from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame
from urcdc_model.preprocessing import read_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class AnalysisFrame:
    """One picture at the analysis size, its GT depth when known, and where it came from."""

    name: str
    group: str                     # "images" (from --images) or "procedural"
    rgb: np.ndarray                # HxWx3 uint8
    depth_m: np.ndarray | None     # HxW float32 metres, 0 = no data


def expand_paths(items: Sequence[str | Path], what: str) -> list[Path]:
    """Directories become their sorted image files; files are kept as given."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"{what} {path}: no .png/.jpg files in this directory")
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"{what} {path}: no such file or directory")
    return paths


def _frame_number(stem: str) -> str | None:
    """Trailing digits of a file stem ('rgb_00050' -> '00050'), to pair RGB with GT names."""
    match = re.search(r"(\d+)$", stem)
    return match.group(1) if match else None


def pair_ground_truth(image_paths: Sequence[Path], gt_paths: Sequence[Path]) -> list[Path | None]:
    """The GT file for each image: same stem, else same trailing frame number; None if absent."""
    by_stem = {p.stem: p for p in gt_paths}
    by_number = {_frame_number(p.stem): p for p in gt_paths if _frame_number(p.stem)}
    pairs = []
    for image in image_paths:
        gt = by_stem.get(image.stem) or by_number.get(_frame_number(image.stem) or "")
        pairs.append(gt)
    return pairs


def find_depth_scale(gt_paths: Sequence[Path]) -> float | None:
    """`depth_scale` from an intrinsics.json next to the GT folder (the sample-data layout)."""
    for folder in {p.parent for p in gt_paths}:
        for candidate in (folder / "intrinsics.json", folder.parent / "intrinsics.json"):
            if candidate.is_file():
                scale = json.loads(candidate.read_text()).get("depth_scale")
                if scale:
                    return float(scale)
    return None


def resize_frame(rgb: np.ndarray, depth_m: np.ndarray | None, height: int, width: int):
    """RGB by area averaging; GT by nearest neighbour, so no fake depth is made between a valid
    pixel and a 'no data' zero."""
    rgb = cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
    if depth_m is not None:
        depth_m = cv2.resize(depth_m, (width, height), interpolation=cv2.INTER_NEAREST)
    return rgb, depth_m


def load_image_frames(
    images: Sequence[str | Path],
    gt: Sequence[str | Path] | None,
    height: int,
    width: int,
    gt_depth_scale: float | None = None,
) -> list[AnalysisFrame]:
    """Read images (and their GT when `gt` is given), resized to height x width."""
    image_paths = expand_paths(images, "--images")
    gt_pairs: list[Path | None] = [None] * len(image_paths)
    scale = gt_depth_scale
    if gt:
        gt_paths = expand_paths(gt, "--gt")
        gt_pairs = pair_ground_truth(image_paths, gt_paths)
        if not any(gt_pairs):
            raise ValueError(
                f"--gt: none of {len(gt_paths)} depth files matches an image by name or frame number "
                f"(images: {[p.name for p in image_paths[:3]]}...)"
            )
        scale = scale or find_depth_scale(gt_paths)
        if scale is None:
            raise ValueError(
                "--gt: depth scale unknown; pass --gt-depth-scale (256 for KITTI PNGs, 1000 for NYU) "
                "or put an intrinsics.json with 'depth_scale' next to the depth folder"
            )
    frames = []
    for image_path, gt_path in zip(image_paths, gt_pairs):
        depth = read_depth_png(gt_path, scale) if gt_path is not None else None
        rgb, depth = resize_frame(read_rgb(image_path), depth, height, width)
        frames.append(AnalysisFrame(name=image_path.stem, group="images", rgb=rgb, depth_m=depth))
    return frames


def procedural_frames(count: int, height: int, width: int, kind: str = "street",
                      seed: int = HELD_OUT_SEED) -> list[AnalysisFrame]:
    """Rendered frames with exact dense depth (urcdc_model.data.synthetic), held-out seeds by default."""
    frames = []
    for index in range(count):
        frame = render_frame(seed=seed + index, kind=kind, height=height, width=width)
        frames.append(
            AnalysisFrame(
                name=f"{kind}_{seed + index}",
                group="procedural",
                rgb=frame.rgb,
                depth_m=frame.depth_m.astype(np.float32),
            )
        )
    return frames
