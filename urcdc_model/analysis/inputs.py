"""Frames to analyse: image files (with optional GT depth PNGs) and procedural frames with exact depth.

Every frame reaches the network as it does in deployment: through the input plan of
``urcdc_model.deploy.geometry`` for its camera (real images: an ``intrinsics.json`` beside them, else the
fallback; procedural frames: the rendered K), fitted into the analysis size. Ground truth goes onto
the same grid at the network's scale (``plan.depth_to_network``), so it compares with raw model outputs.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from urcdc_model.data.base import read_depth_png
from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame
from urcdc_model.deploy.geometry import CanonicalCamera, InputPlan, canonical_camera_from_meta, plan_input
from urcdc_model.preprocessing import read_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class AnalysisFrame:
    """One picture as the network sees it (analysis size), its GT depth when known, and where it came from."""

    name: str
    group: str                     # "images" (from --images) or "procedural"
    rgb: np.ndarray                # HxWx3 uint8, the network input (canonical resize + padding)
    depth_m: np.ndarray | None     # HxW float32, the network's metres (true depth / plan.depth_scale), 0 = no data
    plan: InputPlan | None = None  # how the camera's frame became ``rgb``


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


def _sample_metadata(paths: Sequence[Path]) -> list[dict]:
    """The intrinsics.json files in or beside the folders of ``paths`` (the sample-data layout)."""
    found = []
    for folder in sorted({p.parent for p in paths}):
        for candidate in (folder / "intrinsics.json", folder.parent / "intrinsics.json"):
            if candidate.is_file():
                found.append(json.loads(candidate.read_text()))
    return found


def find_depth_scale(gt_paths: Sequence[Path]) -> float | None:
    """`depth_scale` from an intrinsics.json next to the GT folder (the sample-data layout)."""
    for meta in _sample_metadata(gt_paths):
        if meta.get("depth_scale"):
            return float(meta["depth_scale"])
    return None


def find_intrinsics(image_paths: Sequence[Path]) -> np.ndarray | None:
    """K from the fx, fy, cx, cy of an intrinsics.json in or beside the image folder, else None."""
    for meta in _sample_metadata(image_paths):
        if all(key in meta for key in ("fx", "fy", "cx", "cy")):
            return np.array([[meta["fx"], 0.0, meta["cx"]], [0.0, meta["fy"], meta["cy"]], [0.0, 0.0, 1.0]])
    return None


def default_canonical(height: int, width: int) -> CanonicalCamera:
    """The canonical camera of a checkpoint trained at height x width that recorded none (KITTI's field of view)."""
    return canonical_camera_from_meta({}, (height, width), None, official=False)


def to_network_frame(rgb: np.ndarray, depth_m: np.ndarray | None, intrinsics: np.ndarray | None,
                     canonical: CanonicalCamera, height: int, width: int
                     ) -> tuple[np.ndarray, np.ndarray | None, InputPlan]:
    """The deployment input plan, fitted into height x width: RGB and GT on the network's grid and scale."""
    plan = plan_input(rgb.shape[:2], canonical, intrinsics, network_hw=(height, width))
    return plan.image_to_network(rgb), (None if depth_m is None else plan.depth_to_network(depth_m)), plan


def load_image_frames(
    images: Sequence[str | Path],
    gt: Sequence[str | Path] | None,
    height: int,
    width: int,
    gt_depth_scale: float | None = None,
    canonical: CanonicalCamera | None = None,
    intrinsics: np.ndarray | None = None,
) -> list[AnalysisFrame]:
    """Read images (and their GT when `gt` is given) and put them through the input plan at height x width.

    canonical: the model's canonical camera (default: KITTI's field of view at height x width);
    intrinsics: the images' K (default: an intrinsics.json in or beside their folder, else the fallback).
    """
    image_paths = expand_paths(images, "--images")
    canonical = canonical or default_canonical(height, width)
    intrinsics = intrinsics if intrinsics is not None else find_intrinsics(image_paths)
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
        rgb, depth, plan = to_network_frame(read_rgb(image_path), depth, intrinsics, canonical, height, width)
        frames.append(AnalysisFrame(name=image_path.stem, group="images", rgb=rgb, depth_m=depth, plan=plan))
    return frames


def procedural_frames(count: int, height: int, width: int, kind: str = "street",
                      seed: int = HELD_OUT_SEED, canonical: CanonicalCamera | None = None) -> list[AnalysisFrame]:
    """Rendered frames with exact dense depth (urcdc_model.data.synthetic), held-out seeds by default.

    Rendered at height x width with the dataset's camera, then through the input plan with that K (the
    identity when the model's canonical camera is that camera, as for the default model)."""
    canonical = canonical or default_canonical(height, width)
    frames = []
    for index in range(count):
        frame = render_frame(seed=seed + index, kind=kind, height=height, width=width)
        rgb, depth, plan = to_network_frame(frame.rgb, frame.depth_m.astype(np.float32), frame.intrinsics,
                                            canonical, height, width)
        frames.append(AnalysisFrame(name=f"{kind}_{seed + index}", group="procedural", rgb=rgb, depth_m=depth,
                                    plan=plan))
    return frames
