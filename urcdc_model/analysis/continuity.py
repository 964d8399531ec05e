"""Depth-gradient continuity: how well a prediction's first and second derivatives match GT.

Finite differences are taken only where every pixel involved has ground truth, so sparse
(LiDAR) GT only contributes where it is locally dense. Errors are reported in metres per
pixel and on log depth (relative, so far and near structure weigh alike).
"""
from __future__ import annotations

import numpy as np


def _first_differences(depth: np.ndarray, valid: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(difference, valid) along x and along y."""
    return [
        (depth[:, 1:] - depth[:, :-1], valid[:, 1:] & valid[:, :-1]),
        (depth[1:, :] - depth[:-1, :], valid[1:, :] & valid[:-1, :]),
    ]


def _second_differences(depth: np.ndarray, valid: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(d2/dx2, valid) and (d2/dy2, valid), central three-point stencil."""
    return [
        (depth[:, 2:] - 2 * depth[:, 1:-1] + depth[:, :-2], valid[:, 2:] & valid[:, 1:-1] & valid[:, :-2]),
        (depth[2:, :] - 2 * depth[1:-1, :] + depth[:-2, :], valid[2:, :] & valid[1:-1, :] & valid[:-2, :]),
    ]


def _mean_abs_difference(pred_parts, gt_parts) -> float:
    errors = [np.abs(p[v] - g[v]) for (p, _), (g, v) in zip(pred_parts, gt_parts)]
    count = sum(e.size for e in errors)
    return float(sum(e.sum() for e in errors) / count) if count else float("nan")


def depth_gradient_errors(pred_m: np.ndarray, gt_m: np.ndarray, valid: np.ndarray | None = None) -> dict[str, float]:
    """Mean |grad pred - grad GT| for first and second order, in metres and in log depth.

    pred_m, gt_m: HxW metres. valid: where GT is usable (default gt > 0); pred is clipped to a
    millimetre before the log so a zero prediction cannot blow up the log terms.
    """
    if pred_m.shape != gt_m.shape:
        raise ValueError(f"prediction {pred_m.shape} and ground truth {gt_m.shape} differ in size")
    valid = gt_m > 0 if valid is None else valid & (gt_m > 0)
    pred_m = pred_m.astype(np.float64)
    gt_m = gt_m.astype(np.float64)
    log_pred = np.log(np.maximum(pred_m, 1e-3))
    log_gt = np.log(np.where(valid, gt_m, 1.0))
    return {
        "grad1_m_per_px": _mean_abs_difference(_first_differences(pred_m, valid), _first_differences(gt_m, valid)),
        "grad2_m_per_px2": _mean_abs_difference(_second_differences(pred_m, valid), _second_differences(gt_m, valid)),
        "grad1_log": _mean_abs_difference(_first_differences(log_pred, valid), _first_differences(log_gt, valid)),
        "grad2_log": _mean_abs_difference(_second_differences(log_pred, valid), _second_differences(log_gt, valid)),
        "num_grad1_pairs": int(sum(v.sum() for _, v in _first_differences(gt_m, valid))),
    }


def edge_aware_smoothness(depth_m: np.ndarray, rgb: np.ndarray) -> float:
    """monodepth2's edge-aware smoothness of mean-normalised inverse depth (lower = smoother
    where the image is smooth; no GT needed). rgb: HxWx3 uint8 or float in [0, 1]."""
    disparity = 1.0 / np.maximum(depth_m.astype(np.float64), 1e-3)
    disparity = disparity / disparity.mean()
    image = rgb.astype(np.float64) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    grad_disp_x = np.abs(disparity[:, 1:] - disparity[:, :-1])
    grad_disp_y = np.abs(disparity[1:, :] - disparity[:-1, :])
    grad_img_x = np.abs(image[:, 1:] - image[:, :-1]).mean(axis=2)
    grad_img_y = np.abs(image[1:, :] - image[:-1, :]).mean(axis=2)
    return float((grad_disp_x * np.exp(-grad_img_x)).mean() + (grad_disp_y * np.exp(-grad_img_y)).mean())


def gradient_magnitude(depth_m: np.ndarray) -> np.ndarray:
    """HxW |grad log depth| (central differences), for pictures."""
    grad_y, grad_x = np.gradient(np.log(np.maximum(depth_m.astype(np.float64), 1e-3)))
    return np.hypot(grad_x, grad_y)
