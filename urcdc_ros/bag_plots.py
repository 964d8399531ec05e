"""PNG plots of a bag replay: latency histogram, one frame's RGB / depth / uncertainty / error, calibration."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on robots and CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from urcdc_ros.bag_frames import BagContents  # noqa: E402

MAX_ERROR_POINTS = 40_000  # enough to see the pattern of sparse LiDAR GT without a slow scatter
DPI = 100
DENSE_GT_FRACTION = 0.5


def write_plots(report: dict, contents: BagContents, showcase, report_dir: Path) -> dict[str, str]:
    """Write the plots the data allows; returns {name: path}."""
    plots: dict[str, str] = {}
    latencies = [r["latency_ms"] for r in report["frames"] if r["latency_ms"] is not None]
    if latencies:
        plots["latency"] = str(latency_histogram(np.array(latencies), report, report_dir / "latency_hist.png"))
    if showcase is not None:
        frame = contents.frames[showcase.index]
        path = report_dir / f"frame_{showcase.index:04d}.png"
        plots["frame"] = str(frame_panels(frame.rgb(), showcase.depth_m, showcase.uncertainty_m, frame.gt_depth_m,
                                          report["metrics_depth_range_m"][1], path))
    if report["uncertainty_calibration"]:
        plots["calibration"] = str(calibration_plot(report["uncertainty_calibration"],
                                                    report_dir / "uncertainty_calibration.png"))
    return plots


def latency_histogram(latencies_ms: np.ndarray, report: dict, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=DPI)
    ax.hist(latencies_ms, bins=min(40, max(5, latencies_ms.size // 2)), color="#4878d0")
    for value, name, style in ((np.median(latencies_ms), "median", "-"),
                               (np.percentile(latencies_ms, 90), "p90", "--")):
        ax.axvline(value, color="k", linestyle=style, label=f"{name} {value:.0f} ms")
    ax.set_xlabel("publish → depth received (ms)")
    ax.set_ylabel("frames")
    ax.set_title(f"{report['frames_received']} of {report['frames_published']} frames answered, {report['mode']}",
                 fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def frame_panels(rgb: np.ndarray, depth_m: np.ndarray, uncertainty_m: np.ndarray | None,
                 gt_depth_m: np.ndarray | None, max_depth_m: float, path: Path) -> Path:
    """RGB, depth, uncertainty and |depth - GT| at the GT pixels, stacked for wide KITTI frames."""
    panels = ["rgb", "depth"] + (["uncertainty"] if uncertainty_m is not None else []) + (
        ["error"] if gt_depth_m is not None else [])
    height, width = depth_m.shape
    fig_width = 9.0
    fig, axes = plt.subplots(len(panels), 1, dpi=DPI, squeeze=False,
                             figsize=(fig_width, len(panels) * (fig_width * height / width + 0.5)))
    finite = depth_m[np.isfinite(depth_m)]
    depth_top = float(min(np.percentile(finite, 99), max_depth_m)) if finite.size else max_depth_m
    for ax, name in zip(axes[:, 0], panels):
        ax.set_axis_off()
        if name == "rgb":
            ax.imshow(rgb)
            ax.set_title("input", fontsize=9)
            continue
        if name == "depth":
            shown = ax.imshow(depth_m, cmap="turbo_r", vmin=0, vmax=depth_top)
            label = "depth (m)"
        elif name == "uncertainty":
            shown = ax.imshow(uncertainty_m, cmap="magma", vmin=0,
                              vmax=float(np.nanpercentile(uncertainty_m, 99)) or None)
            label = "uncertainty (m)"
        else:
            ax.imshow(rgb.mean(axis=2), cmap="gray", vmin=0, vmax=255 * 2)
            has_gt = np.isfinite(gt_depth_m) & np.isfinite(depth_m)
            error_m = np.where(has_gt, np.abs(depth_m - gt_depth_m), np.nan)
            top = max(float(np.nanpercentile(error_m, 95)), 1e-3) if has_gt.any() else 1.0
            if has_gt.mean() > DENSE_GT_FRACTION:  # dense GT (procedural, stereo): an image
                shown = ax.imshow(error_m, cmap="inferno", vmin=0, vmax=top)
            else:  # sparse LiDAR GT: dots, or single pixels would vanish at this size
                rows, cols = np.nonzero(has_gt)
                if rows.size > MAX_ERROR_POINTS:
                    keep = np.random.default_rng(0).choice(rows.size, MAX_ERROR_POINTS, replace=False)
                    rows, cols = rows[keep], cols[keep]
                shown = ax.scatter(cols, rows, c=error_m[rows, cols], s=1.5, cmap="inferno", vmin=0, vmax=top,
                                   linewidths=0)
                ax.set_xlim(0, width)
                ax.set_ylim(height, 0)
            label = "|depth − GT| (m) at GT pixels"
        ax.set_title(label, fontsize=9)
        fig.colorbar(shown, ax=ax, fraction=0.025, pad=0.01)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def calibration_plot(calibration: dict, path: Path) -> Path:
    """Left: mean |error| per uncertainty bin against the ideal diagonal. Right: sparsification curves."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 3.8), dpi=DPI)
    bins = calibration["error_vs_uncertainty"]
    x = [b["mean_uncertainty_m"] for b in bins]
    y = [b["mean_abs_error_m"] for b in bins]
    top = max(max(x), max(y)) * 1.05
    left.plot([0, top], [0, top], color="0.6", linestyle="--", label="calibrated")
    left.plot(x, y, "o-", label="published uncertainty")
    left.set_xlabel("predicted uncertainty (m)")
    left.set_ylabel("mean |depth − GT| (m)")
    left.set_title(f"|error| ≤ uncertainty for {calibration['fraction_error_below_uncertainty']:.0%} of pixels",
                   fontsize=9)
    left.legend(fontsize=8)
    sparse = calibration["sparsification"]
    right.plot(sparse["removed_fraction"], sparse["abs_rel_by_uncertainty"], label="remove most uncertain")
    right.plot(sparse["removed_fraction"], sparse["abs_rel_oracle"], label="oracle (remove worst)")
    right.set_xlabel("fraction of pixels removed")
    right.set_ylabel("abs_rel of the rest")
    right.set_title(f"sparsification, AUSE {calibration['ause_abs_rel']:.4f}", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
