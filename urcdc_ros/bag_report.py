"""Scoring and reporting for the bag replay: latency, throughput, drops, KITTI metrics, uncertainty calibration.

ROS-free: outputs arrive as anything with the sensor_msgs/Image fields (rclpy messages in the
replay, arrays in tests). ``FrameScorer`` reduces each frame to its metrics and a small sample of
(error, uncertainty) pairs as soon as its outputs are complete, so memory does not grow with the bag.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from urcdc_model import metrics as depth_metrics
from urcdc_ros.bag_frames import BagContents
from urcdc_ros.image_codec import image_to_array

METRIC_ORDER = depth_metrics.METRIC_NAMES
CALIBRATION_SAMPLES_PER_FRAME = 20_000
CALIBRATION_BINS = 10
SPARSIFICATION_STEPS = 20
# P(|e| <= E|e|) for Laplace errors; a calibrated "expected absolute error" gives about this coverage.
LAPLACE_COVERAGE = 1.0 - math.exp(-1.0)


@dataclass
class ReplayTiming:
    """When each frame was published and its outputs received (time.perf_counter seconds)."""

    stamps_ns: list[int]
    sent_s: dict[int, float] = field(default_factory=dict)
    depth_received_s: dict[int, float] = field(default_factory=dict)
    uncertainty_received_s: dict[int, float] = field(default_factory=dict)
    uncertainty_expected: bool = False
    extra_received_s: dict[str, dict[int, float]] = field(default_factory=dict)  # more outputs, by name
    model_ms: dict[int, float] = field(default_factory=dict)  # interleaved model-alone baseline, per frame
    model_cpu_ms: dict[int, float] = field(default_factory=dict)
    node_cpu_s: float | None = None  # CPU the node process used over the timed closed-loop frames


@dataclass
class FrameScore:
    metrics: dict[str, float] | None = None
    gt_pixels: int = 0
    valid_depth_fraction: float = 0.0  # positive depth (finite or +Inf "too far"); NaN is not > 0


@dataclass
class Showcase:
    """Full outputs of one frame, kept for the picture."""

    index: int
    depth_m: np.ndarray
    uncertainty_m: np.ndarray | None


class FrameScorer:
    """Turns each frame's outputs into metrics against the bag's GT as soon as they are complete."""

    def __init__(self, contents: BagContents, crop: str = "garg", min_depth_m: float = 1e-3,
                 max_depth_m: float = 80.0, seed: int = 0):
        self.contents = contents
        self.crop = crop
        self.min_depth_m, self.max_depth_m = min_depth_m, max_depth_m
        self.index_of = {f.stamp_ns: i for i, f in enumerate(contents.frames)}
        self.expect_uncertainty = False  # set by the replay once it knows whether the node publishes it
        self.scores: dict[int, FrameScore] = {}
        self._pending: dict[int, dict[str, np.ndarray]] = {}
        self._errors: list[np.ndarray] = []
        self._uncertainties: list[np.ndarray] = []
        self._gts: list[np.ndarray] = []
        self._seed = seed
        with_gt = [i for i, f in enumerate(contents.frames) if f.gt_depth_m is not None]
        pool = with_gt or list(range(len(contents.frames)))
        self.showcase_target = pool[len(pool) // 2]
        self.showcase: Showcase | None = None

    def add_output(self, stamp_ns: int, kind: str, msg: Any) -> None:
        """Record the ``depth`` or ``uncertainty`` output of a frame (an Image-like 32FC1 message)."""
        index = self.index_of.get(stamp_ns)
        if index is None or index in self.scores:
            return
        self._pending.setdefault(index, {})[kind] = image_to_array(msg)
        parts = self._pending[index]
        if "depth" in parts and ("uncertainty" in parts or not self.expect_uncertainty):
            self._score(index, parts["depth"], parts.get("uncertainty"))
            del self._pending[index]

    def finish(self) -> None:
        """Score frames whose uncertainty never came (dropped or not published)."""
        for index, parts in sorted(self._pending.items()):
            if "depth" in parts:
                self._score(index, parts["depth"], parts.get("uncertainty"))
        self._pending.clear()

    def _eval_mask(self, gt_m: np.ndarray) -> np.ndarray:
        mask = np.isfinite(gt_m) & (gt_m > self.min_depth_m) & (gt_m < self.max_depth_m)
        if self.crop != "none":
            mask &= depth_metrics.crop_mask(gt_m.shape, self.crop)
        return mask

    def _score(self, index: int, depth_m: np.ndarray, uncertainty_m: np.ndarray | None) -> None:
        frame = self.contents.frames[index]
        with np.errstate(invalid="ignore"):
            score = FrameScore(valid_depth_fraction=float(np.count_nonzero(depth_m > 0) / depth_m.size))
        if frame.gt_depth_m is not None and depth_m.shape == frame.gt_depth_m.shape:
            mask = self._eval_mask(frame.gt_depth_m)
            score.gt_pixels = int(mask.sum())
            if score.gt_pixels:
                gt = frame.gt_depth_m[mask].astype(np.float64)
                pred = depth_metrics.clamp_prediction(depth_m[mask].astype(np.float64),
                                                      self.min_depth_m, self.max_depth_m)
                score.metrics = {k: float(v) for k, v in depth_metrics.compute_errors(gt, pred).items()}
                if uncertainty_m is not None:
                    self._sample_calibration(index, gt, pred, uncertainty_m[mask])
        self.scores[index] = score
        if self.showcase is None or abs(index - self.showcase_target) < abs(self.showcase.index - self.showcase_target):
            self.showcase = Showcase(index, np.array(depth_m, dtype=np.float32),
                                     None if uncertainty_m is None else np.array(uncertainty_m, dtype=np.float32))

    def _sample_calibration(self, index: int, gt: np.ndarray, pred: np.ndarray, unc: np.ndarray) -> None:
        keep = np.isfinite(unc)
        gt, pred, unc = gt[keep], pred[keep], unc[keep].astype(np.float64)
        if gt.size > CALIBRATION_SAMPLES_PER_FRAME:
            # a Bernoulli mask: O(n) and cheap, unlike choice(replace=False), for dense GT at frame rate
            chosen = np.random.default_rng(self._seed + index).random(gt.size) < CALIBRATION_SAMPLES_PER_FRAME / gt.size
            gt, pred, unc = gt[chosen], pred[chosen], unc[chosen]
        self._errors.append(np.abs(pred - gt))
        self._uncertainties.append(unc)
        self._gts.append(gt)

    def calibration(self) -> dict | None:
        """How well the published uncertainty predicts the actual absolute error (pooled pixels)."""
        if not self._errors:
            return None
        return uncertainty_calibration(np.concatenate(self._errors), np.concatenate(self._uncertainties),
                                       np.concatenate(self._gts))


def uncertainty_calibration(abs_error_m: np.ndarray, uncertainty_m: np.ndarray, gt_m: np.ndarray) -> dict:
    """Coverage, rank correlation, binned error-vs-uncertainty curve and sparsification (AUSE) of abs_rel."""
    from scipy.stats import spearmanr

    n = abs_error_m.size
    edges = np.unique(np.quantile(uncertainty_m, np.linspace(0, 1, CALIBRATION_BINS + 1)))
    which = np.clip(np.searchsorted(edges, uncertainty_m, side="right") - 1, 0, max(len(edges) - 2, 0))
    curve = []
    for b in range(max(len(edges) - 1, 1)):
        in_bin = which == b
        if in_bin.any():
            curve.append({"mean_uncertainty_m": float(uncertainty_m[in_bin].mean()),
                          "mean_abs_error_m": float(abs_error_m[in_bin].mean()), "pixels": int(in_bin.sum())})
    rel_error = abs_error_m / gt_m
    rho = spearmanr(uncertainty_m, abs_error_m).statistic if n > 2 and np.ptp(uncertainty_m) > 0 else float("nan")
    fractions, by_uncertainty, oracle = sparsification(rel_error, uncertainty_m)
    return {
        "pixels": int(n),
        "fraction_error_below_uncertainty": float(np.mean(abs_error_m <= uncertainty_m)),
        "fraction_expected_if_laplace": LAPLACE_COVERAGE,
        "mean_abs_error_m": float(abs_error_m.mean()),
        "mean_uncertainty_m": float(uncertainty_m.mean()),
        "spearman_error_vs_uncertainty": float(rho),
        "ause_abs_rel": float(np.trapezoid(by_uncertainty - oracle, fractions)),
        "error_vs_uncertainty": curve,
        "sparsification": {"removed_fraction": fractions.tolist(), "abs_rel_by_uncertainty": by_uncertainty.tolist(),
                           "abs_rel_oracle": oracle.tolist()},
    }


def sparsification(rel_error: np.ndarray, uncertainty: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """abs_rel of the pixels left after removing the most uncertain (or, oracle, the worst) fraction."""
    fractions = np.linspace(0.0, 0.95, SPARSIFICATION_STEPS)

    def curve(order: np.ndarray) -> np.ndarray:
        kept_sums = np.cumsum(rel_error[order][::-1])[::-1]  # sum of errors from position i to the end
        starts = np.minimum((fractions * rel_error.size).astype(int), rel_error.size - 1)
        return kept_sums[starts] / (rel_error.size - starts)

    return fractions, curve(np.argsort(-uncertainty, kind="stable")), curve(np.argsort(-rel_error, kind="stable"))


# ---------------------------------------------------------------------------------------------
# The report


def _percentile_summary(values_ms: np.ndarray) -> dict[str, float] | None:
    if values_ms.size == 0:
        return None
    return {"median": float(np.median(values_ms)), "p90": float(np.percentile(values_ms, 90)),
            "max": float(values_ms.max()), "mean": float(values_ms.mean()), "min": float(values_ms.min())}


def _rate_hz(times_s: list[float]) -> float | None:
    if len(times_s) < 2:
        return None
    times_s = sorted(times_s)
    return (len(times_s) - 1) / (times_s[-1] - times_s[0]) if times_s[-1] > times_s[0] else None


def _complete_latency_ms(timing: ReplayTiming, stamp: int) -> float | None:
    """Publish -> arrival of the frame's last expected output, or None when one never came."""
    sent = timing.sent_s.get(stamp)
    arrivals = [timing.depth_received_s.get(stamp), *(book.get(stamp) for book in timing.extra_received_s.values())]
    if timing.uncertainty_expected:
        arrivals.append(timing.uncertainty_received_s.get(stamp))
    if sent is None or any(t is None for t in arrivals):
        return None
    return (max(arrivals) - sent) * 1e3


def _paired_overhead_ms(rows: list[dict], timing: ReplayTiming) -> dict | None:
    if not timing.model_ms:
        return None
    pairs = {"depth": [], "complete": []}
    for row in rows:
        model_ms = timing.model_ms.get(row["stamp_ns"])
        if model_ms is None:
            continue
        if row["latency_ms"] is not None:
            pairs["depth"].append(row["latency_ms"] - model_ms)
        if row["complete_latency_ms"] is not None:
            pairs["complete"].append(row["complete_latency_ms"] - model_ms)
    return {name: _percentile_summary(np.array(values)) for name, values in pairs.items()}


def build_report(contents: BagContents, timing: ReplayTiming, scorer: FrameScorer, options_summary: dict) -> dict:
    """Everything the replay measured, as one JSON-serialisable dictionary."""
    scorer.finish()
    frames = contents.frames
    rows, latencies, complete_latencies = [], [], []
    for index, frame in enumerate(frames):
        stamp = frame.stamp_ns
        sent = timing.sent_s.get(stamp)
        received = timing.depth_received_s.get(stamp)
        latency_ms = (received - sent) * 1e3 if sent is not None and received is not None else None
        if latency_ms is not None:
            latencies.append(latency_ms)
        unc_received = timing.uncertainty_received_s.get(stamp)
        complete_ms = _complete_latency_ms(timing, stamp)
        if complete_ms is not None:
            complete_latencies.append(complete_ms)
        score = scorer.scores.get(index)
        rows.append({
            "index": index, "stamp_ns": stamp, "published": sent is not None, "received": received is not None,
            "latency_ms": latency_ms,
            "uncertainty_latency_ms": (unc_received - sent) * 1e3 if sent is not None and unc_received else None,
            "complete_latency_ms": complete_ms,
            "has_gt": frame.gt_depth_m is not None,
            "gt_pixels": score.gt_pixels if score else 0,
            "valid_depth_fraction": score.valid_depth_fraction if score else None,
            "metrics": score.metrics if score else None,
        })
    published = sum(r["published"] for r in rows)
    received = sum(r["received"] for r in rows)
    accumulator = depth_metrics.MetricAccumulator()  # the mean of per-image metrics, as the official eval
    for score in scorer.scores.values():
        if score.metrics:
            accumulator.add(score.metrics)
    metrics = accumulator.mean() if accumulator.count else None
    return {
        "bag": str(contents.path),
        "image_topic": contents.image_topic, "info_topic": contents.info_topic, "gt_topic": contents.gt_topic,
        "resolution": [frames[0].width, frames[0].height], "encoding": frames[0].encoding,
        **options_summary,
        "frames_in_bag": len(frames), "frames_published": published, "frames_received": received,
        "uncertainty_frames_received": sum(r["uncertainty_latency_ms"] is not None for r in rows),
        "drop_rate": 1.0 - received / published if published else None,
        "latency_ms": (latency := _percentile_summary(np.array(latencies))),
        "latency_over_model_only": (latency["median"] / options_summary["model_only_latency_ms"]["median"]
                                    if latency and options_summary.get("model_only_latency_ms") else None),
        "latency_overhead_ms": (latency["median"] - options_summary["model_only_latency_ms"]["median"]
                                if latency and options_summary.get("model_only_latency_ms") else None),
        # publish -> the last subscribed output of the frame; minus the model alone = what the node adds
        "complete_latency_ms": (complete := _percentile_summary(np.array(complete_latencies))),
        "complete_overhead_ms": (complete["median"] - options_summary["model_only_latency_ms"]["median"]
                                 if complete and options_summary.get("model_only_latency_ms") else None),
        # interleaved baseline: median over frames of (node latency - model alone on that frame)
        "paired_overhead_ms": _paired_overhead_ms(rows, timing),
        "node_cpu_ms_per_frame": (timing.node_cpu_s * 1e3 / max(received, 1)
                                  if timing.node_cpu_s is not None else None),
        "input_fps": _rate_hz(list(timing.sent_s.values())),
        "output_fps": _rate_hz(list(timing.depth_received_s.values())),
        "recorded_fps": (len(frames) - 1) / contents.duration_s if contents.duration_s > 0 else None,
        "metrics": metrics, "metrics_frames": accumulator.count,
        "metrics_crop": scorer.crop, "metrics_depth_range_m": [scorer.min_depth_m, scorer.max_depth_m],
        "uncertainty_calibration": scorer.calibration(),
        "frames": rows,
        "plots": {},
    }


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def summary_rows(report: dict) -> list[tuple[str, str]]:
    """(name, value) pairs of the headline numbers, for report.md and the console."""
    lat = report["latency_ms"] or {}
    rows = [
        ("frames published / received", f"{report['frames_published']} / {report['frames_received']}"),
        ("drop rate", _fmt(None if report["drop_rate"] is None else 100 * report["drop_rate"]) + " %"),
        ("latency median / p90 / max (ms)",
         f"{_fmt(lat.get('median'))} / {_fmt(lat.get('p90'))} / {_fmt(lat.get('max'))}"),
        *([("model alone median (ms); node latency / model", f"{report['model_only_latency_ms']['median']:.1f}; "
             f"{_fmt(report['latency_over_model_only'], '.2f')}x")] if report.get("model_only_latency_ms") else []),
        *([("all subscribed outputs: latency median / p90 (ms); median - model (ms)",
            f"{_fmt(complete.get('median'))} / {_fmt(complete.get('p90'))}; "
            f"{_fmt(report.get('complete_overhead_ms'))}")] if (complete := report.get("complete_latency_ms")) else []),
        *([("per frame, node - model alone (ms): depth / all outputs, median",
            f"{_fmt((paired['depth'] or {}).get('median'))} / {_fmt((paired['complete'] or {}).get('median'))}")]
          if (paired := report.get("paired_overhead_ms")) else []),
        *([("CPU per frame (ms): node process / model alone",
            f"{_fmt(report['node_cpu_ms_per_frame'])} / "
            f"{_fmt((report.get('model_only_latency_ms') or {}).get('cpu_ms_mean'))}")]
          if report.get("node_cpu_ms_per_frame") is not None else []),
        ("input / output FPS", f"{_fmt(report['input_fps'], '.2f')} / {_fmt(report['output_fps'], '.2f')}"),
    ]
    if report["metrics"]:
        m = report["metrics"]
        rows.append(("frames scored against GT", f"{report['metrics_frames']}"))
        rows.append((f"abs_rel / rms (m) / d1 ({report['metrics_crop']} crop)",
                     f"{m['abs_rel']:.3f} / {m['rms']:.2f} / {m['d1']:.3f}"))
    else:
        rows.append(("frames scored against GT", "0 (no ground truth in the bag)"))
    cal = report["uncertainty_calibration"]
    if cal:
        rows.append(("|error| <= uncertainty (Laplace ideal 0.63)", f"{cal['fraction_error_below_uncertainty']:.3f}"))
        rows.append(("mean |error| / mean uncertainty (m)",
                     f"{cal['mean_abs_error_m']:.2f} / {cal['mean_uncertainty_m']:.2f}"))
        rows.append(("Spearman(uncertainty, error) / AUSE abs_rel",
                     f"{_fmt(cal['spearman_error_vs_uncertainty'], '.3f')} / {cal['ause_abs_rel']:.4f}"))
    return rows


def render_markdown(report: dict) -> str:
    lines = [f"# Bag replay: `{report['bag']}`", "",
             f"{report['frames_in_bag']} frames of `{report['image_topic']}` "
             f"({report['resolution'][0]}x{report['resolution'][1]} {report['encoding']}), {report['mode']}, "
             f"node namespace `{report['node_namespace']}` (outputs subscribed: "
             f"{', '.join(f'`{name}`' for name in report.get('outputs_subscribed', ['depth', 'depth/uncertainty']))}; "
             "the node skips work for its other outputs when nobody listens).", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {name.replace('|', chr(92) + '|')} | {value} |" for name, value in summary_rows(report)]
    if report["metrics"]:
        lines += ["", "| " + " | ".join(METRIC_ORDER) + " |", "|" + "---|" * len(METRIC_ORDER),
                  "| " + " | ".join(f"{report['metrics'][k]:.3f}" for k in METRIC_ORDER) + " |"]
    cal = report["uncertainty_calibration"]
    if cal:
        lines += ["", "Error vs uncertainty (pixels binned by predicted uncertainty; calibrated = equal columns):", "",
                  "| mean uncertainty (m) | mean abs error (m) | pixels |", "|---|---|---|"]
        lines += [f"| {b['mean_uncertainty_m']:.2f} | {b['mean_abs_error_m']:.2f} | {b['pixels']} |"
                  for b in cal["error_vs_uncertainty"]]
    if report["plots"]:
        lines += ["", "Plots:", ""] + [f"- {name}: `{path}`" for name, path in report["plots"].items()]
    lines += ["", "Per-frame latency and metrics: `report.json` (`frames`)."]
    return "\n".join(lines) + "\n"


def print_summary(report: dict) -> None:
    width = max(len(name) for name, _ in summary_rows(report))
    print(f"\n{report['bag']} ({report['mode']})")
    for name, value in summary_rows(report):
        print(f"  {name:<{width}}  {value}")
    for name, path in report["plots"].items():
        print(f"  {name + ' plot':<{width}}  {path}")


def write_report(report: dict, contents: BagContents, scorer: FrameScorer, report_dir: Path) -> None:
    """report.json, report.md and the PNG plots into ``report_dir``."""
    from urcdc_ros import bag_plots

    report_dir.mkdir(parents=True, exist_ok=True)
    report["plots"] = bag_plots.write_plots(report, contents, scorer.showcase, report_dir)
    (report_dir / "report.json").write_text(json.dumps(_json_safe(report), indent=1, allow_nan=False) + "\n")
    (report_dir / "report.md").write_text(render_markdown(report))


def _json_safe(value: Any) -> Any:
    """NaN/inf become null (strict JSON), numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
