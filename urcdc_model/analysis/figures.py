"""PNG figures of the analysis (matplotlib, Agg backend; sized to keep a report under ~1 MB)."""
from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (backend must be chosen first)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib's own dependency)

from .continuity import gradient_magnitude  # noqa: E402
from .run import FigureData  # noqa: E402

DPI = 80
BRANCH_COLOURS = {"transformer": "tab:blue", "cnn": "tab:orange"}


def _save(fig, path: Path) -> str:
    """PNG with a 256-colour adaptive palette: a third of the size of RGB, enough for colour maps."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    buffer.seek(0)
    Image.open(buffer).convert("RGB").quantize(colors=256).save(path, optimize=True)
    return path.name


def _colour(key: str) -> str:
    return BRANCH_COLOURS.get(key.split("/")[-1], "tab:gray")


def sparse_response_figure(numbers: dict, path: Path) -> str:
    groups = numbers["sparse_response"]
    has_gt = any(g["abs_rel_vs_gt"] for g in groups.values())
    fig, axes = plt.subplots(len(groups), 2 if has_gt else 1, figsize=(9 if has_gt else 5, 3.2 * len(groups)),
                             squeeze=False)
    for row, (group, data) in enumerate(groups.items()):
        percent = np.array(data["keep_fractions"]) * 100
        panels = [("abs_rel_vs_full_prediction", "abs-rel vs own full-image depth")]
        if has_gt:
            panels.append(("abs_rel_vs_gt", "abs-rel vs ground truth"))
        for col, (key, title) in enumerate(panels):
            ax = axes[row, col]
            for branch, values in (data[key] or {}).items():
                ax.plot(percent, values, "o-", color=_colour(branch), label=branch)
            ax.set_xscale("log")
            ax.set_xlabel("pixels kept (%)")
            ax.set_title(f"{group}: {title}", fontsize=10)
            ax.grid(alpha=0.3)
            if not data[key]:
                ax.text(0.5, 0.5, "no ground truth", ha="center", transform=ax.transAxes)
        axes[row, 0].legend()
    fig.tight_layout()
    return _save(fig, path)


def _inverse_depth_limits(depths: list[np.ndarray]) -> tuple[float, float]:
    inverse = np.concatenate([1.0 / np.maximum(d.ravel(), 1e-3) for d in depths])
    return float(np.percentile(inverse, 2)), float(np.percentile(inverse, 98))


def sparse_examples_figure(figures: FigureData, path: Path) -> str:
    examples = figures.sparse_examples
    branches = list(examples[0]["depth"])
    vmin, vmax = _inverse_depth_limits([examples[-1]["depth"][b] for b in branches])
    fig, axes = plt.subplots(len(examples), 1 + len(branches), figsize=(4.2 * (1 + len(branches)), 1.6 * len(examples)),
                             squeeze=False)
    for row, example in enumerate(examples):
        axes[row, 0].imshow(example["rgb"])
        axes[row, 0].set_ylabel(f"{example['keep_fraction'] * 100:g} % kept", fontsize=9)
        for col, branch in enumerate(branches, start=1):
            axes[row, col].imshow(1.0 / np.maximum(example["depth"][branch], 1e-3), cmap="magma", vmin=vmin, vmax=vmax)
            if row == 0:
                axes[row, col].set_title(f"{branch} (inverse depth)", fontsize=9)
        for ax in axes[row]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title(f"input: {figures.example_frame.name}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def attribution_maps_figure(figures: FigureData, path: Path, max_targets: int = 3) -> str:
    branches = list(figures.attribution_maps)
    targets = figures.attribution_targets[:max_targets]
    fig, axes = plt.subplots(len(targets), 1 + len(branches), figsize=(4.2 * (1 + len(branches)), 1.6 * len(targets)),
                             squeeze=False)
    for row, (y, x) in enumerate(targets):
        axes[row, 0].imshow(figures.example_frame.rgb)
        for col, branch in enumerate(branches, start=1):
            amap = figures.attribution_maps[branch][row]
            # log scale: attributions span orders of magnitude between near and far pixels
            shown = np.log10(amap / max(amap.max(), 1e-20) + 1e-4)
            axes[row, col].imshow(shown, cmap="inferno", vmin=-4, vmax=0)
            if row == 0:
                axes[row, col].set_title(f"{branch}: log10 |d depth / d input|", fontsize=9)
        for ax in axes[row]:
            ax.plot([x], [y], marker="+", color="cyan", markersize=10, mew=2)
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_title("target pixel (+)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def attribution_radius_figure(numbers: dict, figures: FigureData, path: Path) -> str:
    groups = figures.radial_profiles
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.2), squeeze=False)
    radii = figures.radial_radii_px
    for col, (group, profiles) in enumerate(groups.items()):
        ax = axes[0, col]
        for branch, profile in profiles.items():
            uniform = branch == "uniform"
            ax.plot(radii, profile, color=_colour(branch), ls="--" if uniform else "-",
                    label="uniform attribution (reference)" if uniform else branch)
        ax.set_xscale("log")
        ax.set_xlabel("distance from target (px)")
        ax.set_ylabel("share of attribution within")
        ax.set_title(f"{group}", fontsize=10)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return _save(fig, path)


def gradient_maps_figure(figures: FigureData, path: Path) -> str:
    depths = figures.continuity_depths
    frame = figures.continuity_frame
    panels = [(f"input: {frame.name}", frame.rgb)]
    if frame.depth_m is not None and (frame.depth_m > 0).mean() > 0.9:  # dense GT only: sparse GT makes no map
        panels.append(("GT |grad log depth|", gradient_magnitude(frame.depth_m)))
    panels += [(f"{key} |grad log depth|", gradient_magnitude(d)) for key, d in depths.items()]
    columns = 2
    rows = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.5 * columns, 1.7 * rows), squeeze=False)
    vmax = float(np.percentile(np.concatenate([p.ravel() for _, p in panels[1:]]), 99)) if len(panels) > 1 else 1.0
    for ax, (title, image) in zip(axes.ravel(), panels):
        ax.imshow(image, cmap=None if image.ndim == 3 else "viridis", vmin=0 if image.ndim == 2 else None,
                  vmax=vmax if image.ndim == 2 else None)
        ax.set_title(title, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        if not ax.images:
            ax.set_visible(False)
    fig.tight_layout()
    return _save(fig, path)


def write_figures(numbers: dict, figures: FigureData, output_dir: Path) -> dict[str, str]:
    """All PNGs into output_dir; returns {figure kind: file name}."""
    return {
        "sparse_response": sparse_response_figure(numbers, output_dir / "sparse_response.png"),
        "sparse_examples": sparse_examples_figure(figures, output_dir / "sparse_examples.png"),
        "attribution_maps": attribution_maps_figure(figures, output_dir / "attribution_maps.png"),
        "attribution_radius": attribution_radius_figure(numbers, figures, output_dir / "attribution_radius.png"),
        "gradient_maps": gradient_maps_figure(figures, output_dir / "gradient_maps.png"),
    }
