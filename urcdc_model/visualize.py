"""How depth is drawn everywhere (predict --preview, the bag replay report, the node's depth/colored):
TURBO with near = red and far = blue, a colour bar in metres, grey where there is no depth."""
from __future__ import annotations

from pathlib import Path

import numpy as np

DEPTH_CMAP = "turbo_r"  # matplotlib name; turbo reversed, so small depth (near) is red
NO_DEPTH_GREY = "0.55"  # pixels without a depth value (outside --kb-crop, NaN)
PREVIEW_DPI = 100
COLORBAR_WIDTH_IN = 0.9  # room for the bar and its labels beside the image


def depth_color_top_m(depth_m: np.ndarray, max_depth_m: float) -> float:
    """Top of the colour scale: the 99th percentile of valid depth (so a few sky pixels at max depth do not
    squash the rest into one colour), never above the model's max depth."""
    valid = depth_m[np.isfinite(depth_m) & (depth_m > 0)]
    if valid.size == 0:
        return float(max_depth_m)
    return float(min(np.percentile(valid, 99), max_depth_m)) or float(max_depth_m)


def depth_cmap():
    """The depth colour map with grey for masked (no depth) pixels."""
    import matplotlib

    return matplotlib.colormaps[DEPTH_CMAP].with_extremes(bad=NO_DEPTH_GREY)


def masked_depth(depth_m: np.ndarray) -> np.ma.MaskedArray:
    """Depth with NaN, +Inf and <= 0 (no value) masked, so they draw in NO_DEPTH_GREY."""
    with np.errstate(invalid="ignore"):
        return np.ma.masked_where(~(np.isfinite(depth_m) & (depth_m > 0)), depth_m)


def save_depth_preview(path: str | Path, depth_m: np.ndarray, max_depth_m: float, title: str) -> Path:
    """A PNG of the depth map at its own resolution, with a colour bar in metres and a title."""
    import matplotlib

    matplotlib.use("Agg")  # files only
    import matplotlib.pyplot as plt

    height, width = depth_m.shape
    title_in = 0.35
    fig = plt.figure(figsize=(width / PREVIEW_DPI + COLORBAR_WIDTH_IN, height / PREVIEW_DPI + title_in),
                     dpi=PREVIEW_DPI)
    fig_w, fig_h = fig.get_size_inches()
    # The image axes cover exactly width x height pixels, so the preview is not resampled.
    image_ax = fig.add_axes((0, 0, (width / PREVIEW_DPI) / fig_w, (height / PREVIEW_DPI) / fig_h))
    bar_ax = fig.add_axes(((width / PREVIEW_DPI + 0.12) / fig_w, 0.08, 0.15 / fig_w, 0.84 * height / PREVIEW_DPI / fig_h))
    top_m = depth_color_top_m(depth_m, max_depth_m)
    shown_m = masked_depth(depth_m)
    if np.ma.count_masked(shown_m):
        title += "; grey = no depth"
    shown = image_ax.imshow(shown_m, cmap=depth_cmap(), vmin=0.0, vmax=top_m, interpolation="nearest")
    image_ax.set_axis_off()
    beyond = bool(np.nanmax(np.where(np.isfinite(depth_m), depth_m, 0)) > top_m)  # those draw as the far colour
    fig.colorbar(shown, cax=bar_ax, extend="max" if beyond else "neither").set_label("depth (m)")
    fig.text(0.005, 1 - 0.05 * title_in / fig_h, title, va="top", ha="left", fontsize=9)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=PREVIEW_DPI)
    plt.close(fig)
    return path
