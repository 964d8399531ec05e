"""The replay report's figures explain themselves: aligned panels, bag and stamp in the title, a legend for
"no ground truth", integer frame counts, axes that fit the data."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest

from urcdc_ros import bag_plots

HEIGHT, WIDTH = 60, 200


def _frames(latencies_ms, uncertainty_extra_ms=2.0):
    return [{"latency_ms": value, "uncertainty_latency_ms": value + uncertainty_extra_ms} for value in latencies_ms]


def _report(latencies_ms, mode="max-rate (closed loop)"):
    return {"bag": "/data/bags/kitti_samples", "frames": _frames(latencies_ms), "frames_received": len(latencies_ms),
            "frames_published": len(latencies_ms), "mode": mode, "recorded_fps": 10.0,
            "model_only_latency_ms": {"median": 26.0}}


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def test_frame_panels_are_equally_wide_and_named_by_bag_and_stamp():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    depth = rng.uniform(2, 60, (HEIGHT, WIDTH)).astype(np.float32)
    gt = np.full_like(depth, np.nan)
    gt[40:, ::7] = depth[40:, ::7] * 1.1  # sparse, LiDAR-like
    title = "kitti_samples: frame 0001 (2 of 3)\nstamp " + bag_plots.format_stamp(1_317_168_005_000_000_000)
    fig = bag_plots.frame_figure(rgb, depth, depth * 0.1, gt, 80.0, title)
    try:
        fig.canvas.draw()
        panels = [ax for ax in fig.axes if ax.get_title()]  # the four titled image panels, not colour bars
        assert [ax.get_title().split(":")[0].split(" (")[0] for ax in panels] == [
            "input", "depth", "uncertainty", "|depth − GT|"]
        widths = [ax.get_window_extent().width for ax in panels]
        lefts = [ax.get_window_extent().x0 for ax in panels]
        assert max(widths) - min(widths) < 1.0, widths  # the input panel is no wider than the others
        assert max(lefts) - min(lefts) < 1.0, lefts
        assert "kitti_samples" in fig._suptitle.get_text() and "1317168005.000000000 s" in fig._suptitle.get_text()
        assert "2011-09-28" in fig._suptitle.get_text()
        legend = panels[-1].get_legend()
        assert legend is not None and "no ground truth" in legend.get_texts()[0].get_text()
    finally:
        plt.close(fig)


@pytest.mark.parametrize("latencies_ms", [[48.3, 51.0, 51.6], list(np.linspace(25, 45, 20))])
def test_latency_histogram_counts_whole_frames_and_says_what_it_shows(latencies_ms):
    fig = bag_plots.latency_figure(_report(latencies_ms))
    try:
        fig.canvas.draw()
        ax = fig.axes[0]
        ticks = [t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]
        assert all(float(t).is_integer() for t in ticks), ticks
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(label.startswith("depth (") for label in labels)
        assert any(label.startswith("depth/uncertainty (") for label in labels)
        assert any("model alone" in label for label in labels)
        # the legend sits beside the plot, not over its bars
        assert ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1
        assert "kitti_samples" in ax.get_title() and "closed loop" in ax.get_title()
        assert any("Closed loop" in text.get_text() for text in fig.texts)
    finally:
        plt.close(fig)


def test_open_loop_note_explains_the_second_peak():
    fig = bag_plots.latency_figure(_report(list(np.linspace(25, 45, 20)), mode="rate 1x (open loop)"))
    try:
        note = " ".join(text.get_text() for text in fig.texts)
        assert "100 ms apart" in note and "waits" in note
    finally:
        plt.close(fig)


def test_calibration_axes_fit_their_own_data():
    """Over-confident like the real KITTI run: errors up to 14 m at uncertainties below 4 m."""
    bins = [{"mean_uncertainty_m": u, "mean_abs_error_m": e, "pixels": 10}
            for u, e in zip(np.linspace(0.4, 3.9, 10), np.linspace(1.0, 14.4, 10))]
    calibration = {"error_vs_uncertainty": bins, "fraction_error_below_uncertainty": 0.2,
                   "fraction_expected_if_laplace": 0.63, "ause_abs_rel": 0.06,
                   "sparsification": {"removed_fraction": [0, 0.5], "abs_rel_by_uncertainty": [0.2, 0.15],
                                      "abs_rel_oracle": [0.2, 0.05]}}
    fig = bag_plots.calibration_figure(calibration, "kitti_samples: uncertainty against the actual error")
    try:
        left = fig.axes[0]
        assert 3.9 < left.get_xlim()[1] < 4.5, left.get_xlim()  # not stretched to the error's 15 m
        assert 14.4 < left.get_ylim()[1] < 16.0, left.get_ylim()
        assert "kitti_samples" in fig._suptitle.get_text()
    finally:
        plt.close(fig)
