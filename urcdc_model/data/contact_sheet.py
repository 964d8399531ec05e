"""Contact sheet of procedural frames (RGB beside its exact depth) for the README.

    python -m urcdc_model.data.contact_sheet --out docs/synthetic_contact_sheet.png
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from urcdc_model.data.synthetic import HELD_OUT_SEED, STREET_SHIFTED_CAMERA_DOWN, render_frame


def make_contact_sheet(out: Path, street_seeds=(0, 1, 2, 3, 4, 5), indoor_seeds=(0, 1), seed_offset: int = HELD_OUT_SEED,
                       height: int = 176, width: int = 576) -> Path:
    """Street frames at the training size, one shifted-horizon street frame and indoor rooms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("street", render_frame(seed_offset + s, "street", height, width)) for s in street_seeds]
    panels.append(("street, shifted camera",
                   render_frame(seed_offset + 99, "street", height, width, camera_range=STREET_SHIFTED_CAMERA_DOWN)))
    panels += [("indoor", render_frame(seed_offset + s, "indoor", 240, 320)) for s in indoor_seeds]
    rows = len(panels)
    fig, axes = plt.subplots(rows, 2, figsize=(12, 1.9 * rows), gridspec_kw={"wspace": 0.02, "hspace": 0.25})
    for (label, frame), (ax_rgb, ax_depth) in zip(panels, axes):
        ax_rgb.imshow(frame.rgb)
        image = ax_depth.imshow(frame.depth_m, cmap="magma_r", vmin=0, vmax=frame.max_depth_m)
        ax_rgb.set_title(f"{label}: seed {frame.seed}, camera {frame.camera_height_m:.2f} m, "
                         f"pitch {frame.camera_pitch_deg:+.1f} deg", fontsize=7, loc="left")
        ax_depth.set_title(f"exact depth, 0-{frame.max_depth_m:g} m (sky = max)", fontsize=7, loc="left")
        for ax in (ax_rgb, ax_depth):
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("auto")
        fig.colorbar(image, ax=ax_depth, fraction=0.03, pad=0.01).ax.tick_params(labelsize=6)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=85, bbox_inches="tight")
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m urcdc_model.data.contact_sheet", description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("docs/synthetic_contact_sheet.png"),
                        help="PNG to write (default: docs/synthetic_contact_sheet.png)")
    parser.add_argument("--out", dest="output", type=Path, help=argparse.SUPPRESS)  # old spelling
    args = parser.parse_args(argv)
    print(make_contact_sheet(args.output))


if __name__ == "__main__":
    main()
