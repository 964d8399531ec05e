"""Is the uncertainty in metres calibrated? Predicted uncertainty vs the actual absolute error.

    python -m urcdc_model.uncertainty_check --checkpoint default --frames 40

Runs a DepthRuntime on held-out procedural street frames (seeds from HELD_OUT_SEED, exact ground
truth), bins pixels by predicted uncertainty (quantiles) and prints, per bin, the mean predicted
uncertainty next to the mean and median actual |depth − truth|. A calibrated model has the two
means close in every bin; the Spearman rank correlation says whether higher uncertainty marks
larger errors at all. Sky pixels (clipped at max depth) are left out.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np

from urcdc_model import cli
from urcdc_model.deploy.runtime import DepthRuntime


@dataclass
class CalibrationBin:
    uncertainty_lo_m: float
    uncertainty_hi_m: float
    mean_uncertainty_m: float
    mean_abs_error_m: float
    median_abs_error_m: float
    pixels: int


def calibration_table(runtime: DepthRuntime, frames: int, num_bins: int = 5, seed_offset: int | None = None,
                      ) -> tuple[list[CalibrationBin], float]:
    """Bins of predicted uncertainty with the actual errors in them, and the Spearman correlation."""
    from scipy.stats import spearmanr

    from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame

    start = HELD_OUT_SEED if seed_offset is None else seed_offset
    height, width = runtime.input_size
    uncertainties, errors = [], []
    for i in range(frames):
        frame = render_frame(start + i, kind="street", height=height, width=width, max_depth_m=runtime.max_depth)
        depth_m, uncertainty_m = runtime.infer(frame.rgb, intrinsics=frame.intrinsics)
        valid = (frame.depth_m > 0) & (frame.depth_m < frame.max_depth_m - 1e-3)
        uncertainties.append(uncertainty_m[valid])
        errors.append(np.abs(depth_m[valid] - frame.depth_m[valid]))
    u = np.concatenate(uncertainties).astype(np.float64)
    e = np.concatenate(errors).astype(np.float64)
    if u.size == 0:
        raise ValueError("no valid ground-truth pixels in the rendered frames")
    edges = np.quantile(u, np.linspace(0.0, 1.0, num_bins + 1))
    index = np.clip(np.searchsorted(edges, u, side="right") - 1, 0, num_bins - 1)
    bins = []
    for b in range(num_bins):
        mask = index == b
        if mask.any():
            bins.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), float(u[mask].mean()),
                                       float(e[mask].mean()), float(np.median(e[mask])), int(mask.sum())))
    rho = float(spearmanr(u, e).statistic) if u.size > 1 else float("nan")
    return bins, rho


def format_calibration(bins: list[CalibrationBin], rho: float) -> str:
    lines = ["| predicted uncertainty bin (m) | mean predicted (m) | mean actual |error| (m) | median actual (m) | pixels |",
             "|---|---|---|---|---|"]
    for b in bins:
        lines.append(f"| {b.uncertainty_lo_m:.2f}–{b.uncertainty_hi_m:.2f} | {b.mean_uncertainty_m:.2f} | "
                     f"{b.mean_abs_error_m:.2f} | {b.median_abs_error_m:.2f} | {b.pixels} |")
    lines.append(f"\nSpearman rank correlation (uncertainty vs actual error): {rho:.3f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.uncertainty_check", __doc__.split("\n\n")[0])
    cli.add_checkpoint(parser, runtime=True)
    cli.add_backend(parser)
    cli.add_device(parser)
    parser.add_argument("--frames", type=int, default=40, metavar="N", help="held-out street frames to render")
    parser.add_argument("--bins", type=int, default=5, help="quantile bins of predicted uncertainty")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.show_progress_logs()  # a first-use ONNX export says so before the pause
    try:
        runtime = DepthRuntime.from_path(args.checkpoint, backend=args.backend, device=args.device)
    except (FileNotFoundError, ValueError, RuntimeError, *cli.USER_ERRORS) as error:
        return cli.print_error(error)
    bins, rho = calibration_table(runtime, args.frames, args.bins)
    print(f"{args.checkpoint} on {runtime.backend}, {args.frames} held-out street frames at "
          f"{runtime.input_size[0]}x{runtime.input_size[1]}:\n")
    print(format_calibration(bins, rho))
    return 0


if __name__ == "__main__":
    sys.exit(main())
