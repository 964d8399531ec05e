"""Confidence → expected absolute depth error in metres.

URCDC-Depth trains its confidence head against

    c = exp(−k · |d − d̂| / (d + d̂)),   k = 5,

where d is the ground-truth depth and d̂ the prediction (official code: ``uncer_gt = exp(-5 |gt − pred| /
(gt + pred))``). Given d̂ and c, write r = −ln(c) / k ∈ [0, 1) and e = |d − d̂|. The sign of the
error is unknown, so both cases satisfy the target exactly:

    d = d̂ + e (prediction too near):   r = e / (2d̂ + e)  →  e₊ = 2 d̂ r / (1 − r)
    d = d̂ − e (prediction too far):    r = e / (2d̂ − e)  →  e₋ = 2 d̂ r / (1 + r)

Weighting both cases equally gives the expected absolute error

    E|d − d̂| = (e₊ + e₋) / 2 = 2 d̂ r / (1 − r²)          (≈ 2 d̂ r for small r)

r → 1 (c → e⁻⁵ ≈ 0.0067) means "the true depth could be anywhere", so r is clamped just below 1
and the result is capped at ``max_error_m`` (the model's max depth) so it stays finite.

Works on numpy arrays and torch tensors alike (the ONNX export traces the torch path), so every
runtime backend reports the same uncertainty.
"""
from __future__ import annotations

import math
from typing import TypeVar

import numpy as np

CONFIDENCE_SHARPNESS = 5.0  # the k of the training target above
_R_MAX = 1.0 - 1e-4  # keeps 1 − r² away from zero

ArrayT = TypeVar("ArrayT")


def confidence_to_uncertainty_m(confidence: ArrayT, depth_m: ArrayT, max_error_m: float | None = None) -> ArrayT:
    """Expected absolute depth error (metres) from confidence c ∈ (0, 1] and predicted depth d̂ (metres).

    Args:
        confidence: c, same shape as ``depth_m`` (numpy array or torch tensor).
        depth_m: the predicted depth d̂ in metres.
        max_error_m: upper bound for the result (usually the model's ``max_depth``); None = no cap.
    """
    if isinstance(confidence, np.ndarray):
        c = np.clip(confidence.astype(np.float32, copy=False), 1e-12, 1.0)
        r = np.minimum(-np.log(c) / CONFIDENCE_SHARPNESS, _R_MAX)
        error_m = 2.0 * depth_m * r / (1.0 - r * r)
        return error_m if max_error_m is None else np.minimum(error_m, max_error_m).astype(np.float32)
    # torch path (also what the exported graph contains)
    c = confidence.clamp(min=1e-12, max=1.0)
    r = (-c.log() / CONFIDENCE_SHARPNESS).clamp(max=_R_MAX)
    error_m = 2.0 * depth_m * r / (1.0 - r * r)
    return error_m if max_error_m is None else error_m.clamp(max=max_error_m)


def uncertainty_m_to_confidence(uncertainty_m: np.ndarray, depth_m: np.ndarray) -> np.ndarray:
    """Inverse of :func:`confidence_to_uncertainty_m` (uncapped), for consumers that want c back.

    Solves 2 d̂ r / (1 − r²) = u for r ∈ [0, 1): u r² + 2 d̂ r − u = 0 → r = (√(d̂² + u²) − d̂) / u.
    """
    u = np.asarray(uncertainty_m, dtype=np.float64)
    d = np.asarray(depth_m, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(u > 0, (np.sqrt(d * d + u * u) - d) / np.where(u > 0, u, 1.0), 0.0)
    return np.exp(-CONFIDENCE_SHARPNESS * r).astype(np.float32)


def target_confidence(depth_true_m: np.ndarray, depth_pred_m: np.ndarray) -> np.ndarray:
    """The training target c = exp(−5 |d − d̂| / (d + d̂)), for checks and analysis."""
    d = np.asarray(depth_true_m, dtype=np.float64)
    p = np.asarray(depth_pred_m, dtype=np.float64)
    return np.exp(-CONFIDENCE_SHARPNESS * np.abs(d - p) / (d + p + 1e-7)).astype(np.float32)


# c below this means r ≥ 1: no finite depth explains it (the error is unbounded).
MIN_INFORMATIVE_CONFIDENCE = math.exp(-CONFIDENCE_SHARPNESS)
