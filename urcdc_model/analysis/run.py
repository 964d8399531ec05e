"""Run the three analyses on a model and a set of frames; returns the numbers and the arrays the
figures need. No file output here (see report.py)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from urcdc_model import cli

from .attribution import (
    input_gradient_attribution,
    radial_mass_profile,
    sample_targets,
    topk_distance,
    uniform_reference,
)
from .branches import predict_branches
from .continuity import depth_gradient_errors, edge_aware_smoothness
from .inputs import AnalysisFrame
from .sparse import DEFAULT_KEEP_FRACTIONS, abs_rel, sparse_keep_mask, sparse_response, sparsify

EXAMPLE_KEEP_FRACTIONS = (0.01, 0.1, 1.0)


@dataclass
class AnalysisOptions:
    branches: Sequence[str] = ("transformer", "cnn")
    keep_fractions: Sequence[float] = DEFAULT_KEEP_FRACTIONS
    masks_per_fraction: int = 2          # random masks per image and fraction (p < 1)
    targets_per_image: int = 4           # attribution targets per image
    top_k_fraction: float = 0.005        # "top-k influential pixels" as a fraction of the image
    max_depth_m: float = 80.0            # GT beyond this is ignored (the model cannot output it)
    seed: int = 0
    progress: bool = True                # a tqdm bar per stage on a terminal (the stage lines are always logged)


@dataclass
class ContinuityVariant:
    """A model (or a modified copy) whose branches are scored for depth-gradient continuity."""

    label: str
    model: nn.Module
    branches: Sequence[str]


@dataclass
class FigureData:
    """Arrays for the pictures, from the first frame of the first group (one with GT if any)."""

    example_frame: AnalysisFrame | None = None
    sparse_examples: list[dict] = field(default_factory=list)     # [{keep_fraction, rgb, depth: {branch: HxW}}]
    attribution_maps: dict[str, np.ndarray] = field(default_factory=dict)   # branch -> N,H,W
    attribution_targets: np.ndarray | None = None
    radial_radii_px: np.ndarray | None = None
    radial_profiles: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # group -> branch -> mean profile
    continuity_frame: AnalysisFrame | None = None                  # densest-GT frame, for gradient pictures
    continuity_depths: dict[str, np.ndarray] = field(default_factory=dict)  # variant/branch -> HxW on that frame


def to_input(rgb: np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 -> ImageNet-normalised 1,3,H,W (the project's preprocessing)."""
    from urcdc_model.preprocessing import normalize_rgb

    return normalize_rgb(rgb).unsqueeze(0).float()


def usable_gt(frame: AnalysisFrame, max_depth_m: float) -> np.ndarray | None:
    """GT with 'no data' and out-of-range pixels set to 0 (strictly below max depth, as in the
    standard KITTI/NYU evaluation; this also drops procedural sky, which is rendered at max depth)."""
    if frame.depth_m is None:
        return None
    return np.where((frame.depth_m > 1e-3) & (frame.depth_m < max_depth_m), frame.depth_m, 0.0).astype(np.float32)


def _groups(frames: Sequence[AnalysisFrame]) -> dict[str, list[AnalysisFrame]]:
    groups: dict[str, list[AnalysisFrame]] = {}
    for frame in frames:
        groups.setdefault(frame.group, []).append(frame)
    return groups


def _mean_dicts(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each key over the rows that have it (frames without GT have no GT metrics)."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return {key: float(np.nanmean([row[key] for row in rows if key in row])) for key in keys}


def _example_frame(frames: Sequence[AnalysisFrame]) -> AnalysisFrame:
    with_gt = [f for f in frames if f.depth_m is not None]
    return (with_gt or list(frames))[0]


def _densest_gt_frame(frames: Sequence[AnalysisFrame]) -> AnalysisFrame:
    """First frame with the most valid GT (procedural frames are dense; LiDAR GT is not)."""
    return max(frames, key=lambda f: -1.0 if f.depth_m is None else round(float((f.depth_m > 0).mean()), 2))


@torch.no_grad()
def _sparse_examples(model, frame, branches, seed) -> list[dict]:
    image = to_input(frame.rgb)
    rng = np.random.default_rng(seed)
    mean_rgb = np.array([0.485, 0.456, 0.406]) * 255.0
    examples = []
    for fraction in EXAMPLE_KEEP_FRACTIONS:
        mask = sparse_keep_mask(*frame.rgb.shape[:2], fraction, rng)
        depth = predict_branches(model, sparsify(image, mask), branches)
        shown = np.where(mask[..., None], frame.rgb, mean_rgb).astype(np.uint8)
        examples.append({"keep_fraction": fraction, "rgb": shown,
                         "depth": {b: d[0, 0].numpy() for b, d in depth.items()}})
    return examples


def run_sparse(model, frames, options, log) -> dict:
    results = {}
    for group, members in _groups(frames).items():
        start = time.perf_counter()
        response = sparse_response(
            model,
            [to_input(f.rgb) for f in members],
            options.branches,
            keep_fractions=options.keep_fractions,
            gt_depths_m=[usable_gt(f, options.max_depth_m) for f in members],
            masks_per_fraction=options.masks_per_fraction,
            seed=options.seed,
        )
        results[group] = response.to_dict()
        log(f"sparse response [{group}]: {len(members)} frames in {time.perf_counter() - start:.1f} s")
    return results


def run_attribution(model, frames, options, figures: FigureData, log) -> dict:
    results = {}
    example = figures.example_frame
    for group, members in _groups(frames).items():
        start = time.perf_counter()
        rng = np.random.default_rng(options.seed)
        per_branch_rows = {b: [] for b in options.branches}
        uniform_rows = []
        own_share = []
        profiles: dict[str, list] = {b: [] for b in options.branches}
        height, width = members[0].rgb.shape[:2]
        radii = np.geomspace(1.0, np.hypot(height, width), 64)
        for frame in cli.progress(members, total=len(members), desc=f"attribution [{group}]",
                                  enabled=options.progress, plain_lines=False):
            gt = usable_gt(frame, options.max_depth_m)
            targets = sample_targets(*frame.rgb.shape[:2], options.targets_per_image, rng,
                                     valid=None if gt is None else gt > 0)
            top_k = max(1, int(options.top_k_fraction * frame.rgb.shape[0] * frame.rgb.shape[1]))
            image = to_input(frame.rgb)
            uniform_rows += [uniform_reference(*frame.rgb.shape[:2], t) for t in targets]
            profiles.setdefault("uniform", []).extend(
                radial_mass_profile(np.ones(frame.rgb.shape[:2]), t, radii) for t in targets)
            attributions = input_gradient_attribution(model, image, targets, options.branches)
            for branch, attribution in attributions.items():
                for target, amap in zip(targets, attribution.total):
                    per_branch_rows[branch].append(topk_distance(amap, target, top_k))
                    profiles[branch].append(radial_mass_profile(amap, target, radii))
                if attribution.own_input is not None:
                    coupling = attribution.coupling if attribution.coupling is not None else 0 * attribution.own_input
                    own_share += [o.sum() / max(o.sum() + c.sum(), 1e-20)
                                  for o, c in zip(attribution.own_input, coupling)]
                if frame is example:
                    figures.attribution_maps[branch] = attribution.total
                    figures.attribution_targets = targets
        results[group] = {
            "targets": len(uniform_rows),
            "top_k_pixels": top_k,
            "branches": {b: _mean_dicts(rows) for b, rows in per_branch_rows.items()},
            "uniform_reference": _mean_dicts(uniform_rows),
        }
        if own_share:
            results[group]["cnn_own_input_share"] = float(np.mean(own_share))
        figures.radial_radii_px = radii
        figures.radial_profiles[group] = {b: np.nanmean(p, axis=0) for b, p in profiles.items()}
        log(f"attribution [{group}]: {len(members)} frames in {time.perf_counter() - start:.1f} s")
    return results


@torch.no_grad()
def run_continuity(variants: Sequence[ContinuityVariant], frames, options, figures: FigureData, log,
                   per_frame: dict | None = None) -> dict:
    """Mean scores per group and variant/branch; `per_frame` (if given) receives the rows per frame."""
    results = {}
    per_frame = {} if per_frame is None else per_frame
    for group, members in _groups(frames).items():
        start = time.perf_counter()
        rows: dict[str, list[dict]] = {}
        for frame in cli.progress(members, total=len(members), desc=f"continuity [{group}]",
                                  enabled=options.progress, plain_lines=False):
            gt = usable_gt(frame, options.max_depth_m)
            image = to_input(frame.rgb)
            for variant in variants:
                for branch, depth in predict_branches(variant.model, image, variant.branches).items():
                    depth_m = depth[0, 0].numpy()
                    key = f"{variant.label}/{branch}"
                    row = {"edge_aware_smoothness": edge_aware_smoothness(depth_m, frame.rgb)}
                    if gt is not None:
                        row["abs_rel"] = abs_rel(depth_m, gt)
                        row.update(depth_gradient_errors(depth_m, gt))
                    rows.setdefault(key, []).append(row)
                    if frame is figures.continuity_frame:
                        figures.continuity_depths[key] = depth_m
        results[group] = {key: _mean_dicts(value) for key, value in rows.items()}
        per_frame[group] = rows
        log(f"continuity [{group}]: {len(members)} frames x {len(variants)} models "
            f"in {time.perf_counter() - start:.1f} s")
    return results


def analyse(
    model: nn.Module,
    frames: Sequence[AnalysisFrame],
    options: AnalysisOptions,
    extra_continuity_variants: Sequence[ContinuityVariant] = (),
    model_label: str = "model",
    log: Callable[[str], None] = print,
) -> tuple[dict, FigureData]:
    """All three analyses. Returns (JSON-ready numbers, arrays for figures)."""
    if not frames:
        raise ValueError("no frames to analyse: give --images and/or --procedural N")
    model.eval()
    figures = FigureData(example_frame=_example_frame(frames), continuity_frame=_densest_gt_frame(frames))
    timings = {}
    start = time.perf_counter()
    sparse = run_sparse(model, frames, options, log)
    figures.sparse_examples = _sparse_examples(model, figures.example_frame, options.branches, options.seed)
    timings["sparse_s"] = time.perf_counter() - start
    start = time.perf_counter()
    attribution = run_attribution(model, frames, options, figures, log)
    timings["attribution_s"] = time.perf_counter() - start
    start = time.perf_counter()
    variants = [ContinuityVariant(model_label, model, options.branches), *extra_continuity_variants]
    continuity_per_frame: dict = {}
    continuity = run_continuity(variants, frames, options, figures, log, continuity_per_frame)
    timings["continuity_s"] = time.perf_counter() - start
    numbers = {
        "options": {
            "branches": list(options.branches),
            "keep_fractions": list(options.keep_fractions),
            "masks_per_fraction": options.masks_per_fraction,
            "targets_per_image": options.targets_per_image,
            "top_k_fraction": options.top_k_fraction,
            "max_depth_m": options.max_depth_m,
            "seed": options.seed,
        },
        "frames": [
            {
                "name": f.name,
                "group": f.group,
                "height": int(f.rgb.shape[0]),
                "width": int(f.rgb.shape[1]),
                "gt_valid_fraction": (None if f.depth_m is None
                                      else float((usable_gt(f, options.max_depth_m) > 0).mean())),
            }
            for f in frames
        ],
        "continuity_variants": [v.label for v in variants],
        "sparse_response": sparse,
        "attribution": attribution,
        "continuity": continuity,
        "continuity_per_frame": continuity_per_frame,
        "timings_s": timings,
    }
    return numbers, figures
