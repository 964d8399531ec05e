"""The standard monocular-depth metrics, computed exactly as the official URCDC-Depth / NeWCRFs / BTS eval.

Per image: predictions are clamped to [min, max] (inf -> max, nan -> min); pixels count when
min < gt < max and inside the crop (KITTI: Garg or Eigen crop as image fractions; NYU: Eigen crop
rows 45:471, cols 41:601). The dataset numbers are the means of the per-image metrics.
"""
from __future__ import annotations

import numpy as np

METRIC_NAMES = ("silog", "abs_rel", "log10", "rms", "sq_rel", "log_rms", "d1", "d2", "d3")
HIGHER_IS_BETTER = frozenset({"d1", "d2", "d3"})

MIN_DEPTH_M = 1e-3
MAX_DEPTH_M = {"kitti": 80.0, "nyu": 10.0, "synthetic": 80.0}
CROPS = ("garg", "eigen", "none")
DEFAULT_CROP = {"kitti": "garg", "nyu": "eigen", "synthetic": "none"}


def compute_errors(gt_m: np.ndarray, pred_m: np.ndarray) -> dict[str, float]:
    """The nine metrics over matching 1-D arrays of valid pixels (positive depths, metres)."""
    gt = np.asarray(gt_m, dtype=np.float64)
    pred = np.asarray(pred_m, dtype=np.float64)
    if gt.shape != pred.shape:
        raise ValueError(f"compute_errors: gt {gt.shape} and prediction {pred.shape} differ")
    if gt.size == 0:
        raise ValueError("compute_errors: no valid ground-truth pixels (check the crop and depth range)")
    thresh = np.maximum(gt / pred, pred / gt)
    log_err = np.log(pred) - np.log(gt)
    return {
        "silog": float(np.sqrt(np.mean(log_err ** 2) - np.mean(log_err) ** 2) * 100),
        "abs_rel": float(np.mean(np.abs(gt - pred) / gt)),
        "log10": float(np.mean(np.abs(np.log10(pred) - np.log10(gt)))),
        "rms": float(np.sqrt(np.mean((gt - pred) ** 2))),
        "sq_rel": float(np.mean((gt - pred) ** 2 / gt)),
        "log_rms": float(np.sqrt(np.mean(log_err ** 2))),
        "d1": float(np.mean(thresh < 1.25)),
        "d2": float(np.mean(thresh < 1.25 ** 2)),
        "d3": float(np.mean(thresh < 1.25 ** 3)),
    }


def crop_mask(shape: tuple[int, int], crop: str, dataset: str = "kitti") -> np.ndarray:
    """Boolean evaluation region: Garg/Eigen crop (KITTI fractions, official code), NYU Eigen crop, or all."""
    height, width = shape
    mask = np.zeros((height, width), dtype=bool)
    if crop == "none":
        mask[:] = True
    elif crop == "garg":
        mask[int(0.40810811 * height):int(0.99189189 * height), int(0.03594771 * width):int(0.96405229 * width)] = True
    elif crop == "eigen" and dataset == "nyu":
        mask[45:471, 41:601] = True
    elif crop == "eigen":
        mask[int(0.3324324 * height):int(0.91351351 * height), int(0.0359477 * width):int(0.96405229 * width)] = True
    else:
        raise ValueError(f"unknown crop {crop!r}; use one of {CROPS}")
    return mask


def clamp_prediction(pred_m: np.ndarray, min_depth_m: float, max_depth_m: float) -> np.ndarray:
    """Official clamping: below min -> min, above max -> max, inf -> max, nan -> min."""
    pred = np.array(pred_m, dtype=np.float32, copy=True)
    pred[pred < min_depth_m] = min_depth_m
    pred[pred > max_depth_m] = max_depth_m
    pred[np.isinf(pred)] = max_depth_m
    pred[np.isnan(pred)] = min_depth_m
    return pred


def _as_hw(depth: np.ndarray) -> np.ndarray:
    """Drop singleton batch/channel axes (1x1xHxW, HxWx1 -> HxW) but keep 1xW rows."""
    depth = np.asarray(depth, dtype=np.float32)
    while depth.ndim > 2 and depth.shape[0] == 1:
        depth = depth[0]
    while depth.ndim > 2 and depth.shape[-1] == 1:
        depth = depth[..., 0]
    return depth


def valid_mask(gt_m: np.ndarray, dataset: str = "kitti", crop: str | None = None, min_depth_m: float = MIN_DEPTH_M,
               max_depth_m: float | None = None) -> np.ndarray:
    """Pixels that count: min < gt < max, inside the crop."""
    gt = _as_hw(gt_m)
    max_depth_m = MAX_DEPTH_M[dataset] if max_depth_m is None else max_depth_m
    crop = DEFAULT_CROP[dataset] if crop is None else crop
    return (gt > min_depth_m) & (gt < max_depth_m) & crop_mask(gt.shape, crop, dataset)


def compute_depth_metrics(gt_m: np.ndarray, pred_m: np.ndarray, dataset: str = "kitti", crop: str | None = None,
                          min_depth_m: float = MIN_DEPTH_M, max_depth_m: float | None = None) -> dict[str, float]:
    """Metrics of one image: gt and prediction H x W metres (gt 0 = no data), official masks and clamping.

    dataset: "kitti" | "nyu" | "synthetic" (sets the default max depth and crop);
    crop: "garg" | "eigen" | "none" (default: garg for KITTI, eigen for NYU, none for synthetic).
    """
    gt = _as_hw(gt_m)
    pred = _as_hw(pred_m)
    if gt.shape != pred.shape or gt.ndim != 2:
        raise ValueError(f"compute_depth_metrics: gt {gt.shape} and prediction {pred.shape} must be the same HxW; "
                         "resize the prediction to the ground-truth size first")
    if dataset not in MAX_DEPTH_M:
        raise ValueError(f"unknown dataset {dataset!r}; use one of {tuple(MAX_DEPTH_M)}")
    max_depth_m = MAX_DEPTH_M[dataset] if max_depth_m is None else max_depth_m
    pred = clamp_prediction(pred, min_depth_m, max_depth_m)
    valid = valid_mask(gt, dataset, crop, min_depth_m, max_depth_m)
    return compute_errors(gt[valid], pred[valid])


class MetricAccumulator:
    """Averages per-image metrics over a dataset, as the official eval does."""

    def __init__(self):
        self._sums = dict.fromkeys(METRIC_NAMES, 0.0)
        self.count = 0

    def add(self, metrics: dict[str, float]) -> None:
        for name in METRIC_NAMES:
            self._sums[name] += metrics[name]
        self.count += 1

    def mean(self) -> dict[str, float]:
        if self.count == 0:
            raise ValueError("MetricAccumulator: no images were evaluated")
        return {name: total / self.count for name, total in self._sums.items()}


def format_table(metrics: dict[str, float]) -> str:
    """The standard two-line table in the standard order (as printed by the official eval)."""
    header = ", ".join(f"{name:>7}" for name in METRIC_NAMES)
    values = ", ".join(f"{metrics[name]:7.4f}" for name in METRIC_NAMES)
    return f"{header}\n{values}"
