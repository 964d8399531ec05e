"""PNG plots of a bag replay: latency histogram, one frame's RGB / depth / uncertainty / error, calibration.

Depth is drawn as everywhere in urcdc (``urcdc_model.visualize``): turbo with near = red, a colour bar in
metres. Every figure names the bag it comes from.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on robots and CI machines
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from mpl_toolkits.axes_grid1 import make_axes_locatable  # noqa: E402

from urcdc_model.visualize import depth_cmap, depth_color_top_m, masked_depth  # noqa: E402
from urcdc_ros.bag_frames import BagContents  # noqa: E402

MAX_ERROR_POINTS = 40_000  # enough to see the pattern of sparse LiDAR GT without a slow scatter
DPI = 100
DENSE_GT_FRACTION = 0.5
NO_GT_GREY = "0.45"  # the darkened grey image under the error dots: where there is no ground truth
COLORBAR_SLOT = "2%"  # every panel gets one, so all panels have the same width (the input's stays empty)


def write_plots(report: dict, contents: BagContents, showcase, report_dir: Path) -> dict[str, str]:
    """Write the plots the data allows; returns {name: path}."""
    plots: dict[str, str] = {}
    bag = Path(report["bag"]).name
    if any(r["latency_ms"] is not None for r in report["frames"]):
        plots["latency"] = str(latency_histogram(report, report_dir / "latency_hist.png"))
    if showcase is not None:
        frame = contents.frames[showcase.index]
        path = report_dir / f"frame_{showcase.index:04d}.png"
        title = (f"{bag}: frame {showcase.index:04d} ({showcase.index + 1} of {len(contents.frames)}) of "
                 f"{contents.image_topic}\nstamp {format_stamp(frame.stamp_ns)}")
        plots["frame"] = str(frame_panels(frame.rgb(), showcase.depth_m, showcase.uncertainty_m, frame.gt_depth_m,
                                          report["metrics_depth_range_m"][1], path, title))
    if report["uncertainty_calibration"]:
        plots["calibration"] = str(calibration_plot(report["uncertainty_calibration"],
                                                    report_dir / "uncertainty_calibration.png",
                                                    f"{bag}: uncertainty against the actual error, "
                                                    f"{report['metrics_frames']} frame(s) with ground truth"))
    return plots


def format_stamp(stamp_ns: int) -> str:
    """'1317168000.500000000 s (2011-09-28 00:00:00.500 UTC)': the header stamp and what date it is."""
    seconds, nanos = divmod(int(stamp_ns), 1_000_000_000)
    when = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    return f"{seconds}.{nanos:09d} s ({when}.{nanos // 1_000_000:03d} UTC)"


def latency_histogram(report: dict, path: Path) -> Path:
    return _save(latency_figure(report), path)


def latency_figure(report: dict):
    """Publish → output received, one count per frame and output (depth, uncertainty), in the replay's mode."""
    rows = report["frames"]
    series = {"depth": np.array([r["latency_ms"] for r in rows if r["latency_ms"] is not None])}
    uncertainty = np.array([r["uncertainty_latency_ms"] for r in rows if r.get("uncertainty_latency_ms") is not None])
    if uncertainty.size:
        series["depth/uncertainty"] = uncertainty
    model = report.get("model_only_latency_ms")
    values = np.concatenate(list(series.values()))
    # The axis spans the data and the model-alone line (the gap between them is what ROS adds); the bins
    # cover that whole axis so a few frames still make visible bars.
    low, high = float(values.min()), float(values.max())
    if model:
        low, high = min(low, model["median"]), max(high, model["median"])
    margin = 0.05 * max(high - low, 1.0)
    edges = np.linspace(low - margin, high + margin, min(40, max(8, values.size // 2)) + 1)
    fig, ax = plt.subplots(figsize=(8.0, 3.8), dpi=DPI)
    ax.hist(list(series.values()), bins=edges, label=[f"{name} ({len(v)} frames)" for name, v in series.items()],
            color=["#4878d0", "#ee854a"][:len(series)])
    depth = series["depth"]
    ax.axvline(np.median(depth), color="k", linestyle="-", label=f"depth median {np.median(depth):.0f} ms")
    ax.axvline(np.percentile(depth, 90), color="k", linestyle="--",
               label=f"depth p90 {np.percentile(depth, 90):.0f} ms")
    if model:
        ax.axvline(model["median"], color="#6acc64", linestyle=":", linewidth=2,
                   label=f"model alone, median {model['median']:.0f} ms")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of frames
    ax.set_xlabel("publish image → output received (ms)")
    ax.set_ylabel("frames")
    ax.set_title(f"{Path(report['bag']).name}: {report['frames_received']} of {report['frames_published']} frames "
                 f"answered, {report['mode']}", fontsize=9)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)  # beside the bars
    fig.text(0.01, 0.01, _mode_note(report), fontsize=7.5, va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def _save(fig, path: Path) -> Path:
    fig.savefig(path)
    plt.close(fig)
    return path


def _mode_note(report: dict) -> str:
    """What the latencies include, and why an open-loop run can have two peaks."""
    if "closed loop" in report["mode"]:
        return ("Closed loop: each image is sent once the previous one's outputs arrived, so no frame waits for "
                "another; latency = transport + decoding + inference + publishing.")
    period = f" ({1e3 / report['recorded_fps'] / _rate(report):.0f} ms apart)" if report.get("recorded_fps") else ""
    return (f"Open loop: images at the recorded pace{period}. One that arrives while the node still works on the "
            "previous one waits up to one inference time: a second, later peak.")


def _rate(report: dict) -> float:
    try:
        return float(report["mode"].split("rate ", 1)[1].split("x", 1)[0])
    except (IndexError, ValueError):
        return 1.0


def frame_panels(rgb: np.ndarray, depth_m: np.ndarray, uncertainty_m: np.ndarray | None,
                 gt_depth_m: np.ndarray | None, max_depth_m: float, path: Path, title: str = "") -> Path:
    return _save(frame_figure(rgb, depth_m, uncertainty_m, gt_depth_m, max_depth_m, title), path)


def frame_figure(rgb: np.ndarray, depth_m: np.ndarray, uncertainty_m: np.ndarray | None,
                 gt_depth_m: np.ndarray | None, max_depth_m: float, title: str = ""):
    """RGB, depth, uncertainty and |depth - GT| at the GT pixels, stacked for wide KITTI frames."""
    panels = ["rgb", "depth"] + (["uncertainty"] if uncertainty_m is not None else []) + (
        ["error"] if gt_depth_m is not None else [])
    height, width = depth_m.shape
    fig_width = 9.0
    fig, axes = plt.subplots(len(panels), 1, dpi=DPI, squeeze=False,
                             figsize=(fig_width, len(panels) * (fig_width * height / width + 0.55) + 0.5))
    for ax, name in zip(axes[:, 0], panels):
        ax.set_axis_off()
        colorbar_slot = make_axes_locatable(ax).append_axes("right", size=COLORBAR_SLOT, pad=0.08)
        if name == "rgb":
            ax.imshow(rgb)
            ax.set_title("input", fontsize=9)
            colorbar_slot.set_axis_off()  # kept empty so this panel is as wide as the others
            continue
        if name == "depth":
            top_m = depth_color_top_m(depth_m, max_depth_m)
            shown = ax.imshow(masked_depth(depth_m), cmap=depth_cmap(), vmin=0, vmax=top_m)
            label = "depth (m), near = red"
        elif name == "uncertainty":
            shown = ax.imshow(uncertainty_m, cmap="magma", vmin=0,
                              vmax=float(np.nanpercentile(uncertainty_m, 99)) or None)
            label = "uncertainty: expected |error| (m)"
        else:
            shown = _error_panel(ax, rgb, depth_m, gt_depth_m)
            label = "|depth − GT| (m) where there is ground truth"
        ax.set_title(label, fontsize=9)
        fig.colorbar(shown, cax=colorbar_slot)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def _error_panel(ax, rgb: np.ndarray, depth_m: np.ndarray, gt_depth_m: np.ndarray):
    """The error at GT pixels over the image in grey (which marks 'no ground truth'), with a legend saying so."""
    height, width = depth_m.shape
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
        shown = ax.scatter(cols, rows, c=error_m[rows, cols], s=1.5, cmap="inferno", vmin=0, vmax=top, linewidths=0)
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
    ax.legend(handles=[Patch(facecolor=NO_GT_GREY, edgecolor="0.2",
                             label=f"no ground truth ({100 * (1 - has_gt.mean()):.0f} % of pixels): image in grey")],
              loc="upper center", bbox_to_anchor=(0.5, 0.0), fontsize=8, frameon=False)
    return shown


def calibration_plot(calibration: dict, path: Path, title: str = "") -> Path:
    return _save(calibration_figure(calibration, title), path)


def calibration_figure(calibration: dict, title: str = ""):
    """Left: mean |error| per uncertainty bin against the ideal diagonal. Right: sparsification curves."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.0, 4.0), dpi=DPI)
    bins = calibration["error_vs_uncertainty"]
    x = np.array([b["mean_uncertainty_m"] for b in bins])
    y = np.array([b["mean_abs_error_m"] for b in bins])
    # Each axis fits its own data: an over-confident model has errors far above its uncertainty, and a
    # shared range would squeeze every point into one corner.
    x_top, y_top = 1.08 * float(x.max()), 1.08 * float(y.max())
    diagonal = min(x_top, y_top)
    left.plot([0, diagonal], [0, diagonal], color="0.6", linestyle="--", label="calibrated (error = uncertainty)")
    left.plot(x, y, "o-", label="published uncertainty (10 bins)")
    left.set_xlim(0, x_top)
    left.set_ylim(0, y_top)
    left.set_xlabel("predicted uncertainty (m)")
    left.set_ylabel("mean |depth − GT| (m)")
    left.set_title(f"|error| ≤ uncertainty for {calibration['fraction_error_below_uncertainty']:.0%} of pixels "
                   f"(ideal {calibration['fraction_expected_if_laplace']:.0%})", fontsize=9)
    left.legend(fontsize=8, loc="upper left")
    sparse = calibration["sparsification"]
    right.plot(sparse["removed_fraction"], sparse["abs_rel_by_uncertainty"], label="remove most uncertain")
    right.plot(sparse["removed_fraction"], sparse["abs_rel_oracle"], label="oracle (remove worst)")
    right.set_xlabel("fraction of pixels removed")
    right.set_ylabel("abs_rel of the rest")
    right.set_ylim(bottom=0)
    right.set_title(f"sparsification, AUSE {calibration['ause_abs_rel']:.4f}", fontsize=9)
    right.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
