"""Per-camera accuracy of a torch checkpoint through the inference plan, on held-out procedural streets.

    python -m urcdc_model.analysis.camera_sweep --checkpoint default [--seeds 6] [--cache DIR] [--json OUT]

Each camera renders the same held-out scenes (seeds from HELD_OUT_SEED) at its own size and
intrinsics; the frame goes through ``plan_input`` → ``image_to_network`` → the Transformer branch (no
flip TTA, as the deployed graph) → ``output_to_frame`` and is scored against the exact depth on the
frame's own pixel grid (sky excluded). Prints abs_rel and the median pred/GT per camera, and the
issue-12 targets (abs_rel ≤ 1.25 × the KITTI camera's, median within 1 ± 0.05, KITTI ≤ 0.12).
A checkpoint may also be a training state (``runs/NAME/checkpoints/last.pt``), to follow a run.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from urcdc_model.checkpoints import load_model
from urcdc_model.data.synthetic import HELD_OUT_SEED, KITTI_CX_PX, KITTI_CY_PX, KITTI_FOCAL_PX, render_frame
from urcdc_model.deploy.geometry import canonical_camera_from_meta, plan_input
from urcdc_model.metrics import compute_depth_metrics, valid_mask
from urcdc_model.models import URCDCDepth
from urcdc_model.preprocessing import normalize_rgb

# name: (height, width, fx = fy, cx, cy); cx/cy None = the centre
CAMERAS = {
    "kitti_1242x375_f721": (375, 1242, KITTI_FOCAL_PX, KITTI_CX_PX, KITTI_CY_PX),
    "vga_640x480_f525": (480, 640, 525.0, None, None),
    "hd_1280x720_f700": (720, 1280, 700.0, None, None),
    "tele_1936x1216_f2200": (1216, 1936, 2200.0, None, None),
    "wide_1242x375_f360": (375, 1242, 360.0, None, None),
    "qvga_320x240_f250": (240, 320, 250.0, None, None),
    "d435_848x480_f420": (480, 848, 420.0, None, None),
    "strip_1360x400_f1200": (400, 1360, 1200.0, None, None),
}
KITTI_CAMERA = "kitti_1242x375_f721"


def intrinsics_of(height: int, width: int, focal_px: float, cx: float | None, cy: float | None) -> np.ndarray:
    cx = (width - 1) / 2 if cx is None else cx
    cy = (height - 1) / 2 if cy is None else cy
    return np.array([[focal_px, 0, cx], [0, focal_px, cy], [0, 0, 1]], dtype=np.float64)


def held_out_frame(name: str, seed: int, cache: Path | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgb, depth_m, K) of one held-out scene seen by camera ``name``; cached as .npz (big frames are slow)."""
    height, width, focal, cx, cy = CAMERAS[name]
    path = cache / f"{name}_{seed}.npz" if cache else None
    if path is not None and path.is_file():
        stored = np.load(path)
        return stored["rgb"], stored["depth_m"], stored["intrinsics"]
    k = intrinsics_of(height, width, focal, cx, cy)
    frame = render_frame(seed, kind="street", height=height, width=width, intrinsics=k)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, rgb=frame.rgb, depth_m=frame.depth_m, intrinsics=k)
    return frame.rgb, frame.depth_m, k


def load_torch_model(checkpoint: str) -> tuple[torch.nn.Module, object]:
    """(Transformer-branch model, canonical camera) from a weights file or a trainer state (last.pt)."""
    if checkpoint.endswith(".pt"):
        import yaml

        from urcdc_model.training.config import TrainConfig
        from urcdc_model.training.data import canonical_camera
        from urcdc_model.training.state import load_training_state

        state = load_training_state(checkpoint)
        config = TrainConfig.from_dict(yaml.safe_load(state["config_yaml"]), source=checkpoint)
        model = URCDCDepth(config.model.build_config())
        model.load_state_dict(state["model"])
        return model.eval(), canonical_camera(config.data)
    model, cfg, meta = load_model(checkpoint, with_cnn=False, map_location="cpu")
    train_size = (int(meta.get("input_height", 96)), int(meta.get("input_width", 320)))
    return model.eval(), canonical_camera_from_meta(meta, train_size, cfg.max_depth, official=False)


@torch.no_grad()
def camera_scores(model, canonical, name: str, seeds: list[int], cache: Path | None) -> dict[str, float]:
    abs_rel, ratios = [], []
    for seed in seeds:
        rgb, depth_m, k = held_out_frame(name, seed, cache)
        plan = plan_input(rgb.shape[:2], canonical, k)
        net_depth = model(normalize_rgb(plan.image_to_network(rgb))[None])["depth"][0, 0].numpy()
        pred = plan.output_to_frame(net_depth)
        abs_rel.append(compute_depth_metrics(depth_m, pred, dataset="synthetic")["abs_rel"])
        valid = valid_mask(depth_m, dataset="synthetic")
        ratios.append(float(np.median(pred[valid] / depth_m[valid])))
    return {"abs_rel": float(np.mean(abs_rel)), "median_ratio": float(np.median(ratios)),
            "network_hw": list(plan.network_hw)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="default", help="weights (default / path) or a trainer last.pt")
    parser.add_argument("--seeds", type=int, default=6, help="held-out scenes per camera")
    parser.add_argument("--cache", default=None, help="folder to keep rendered frames in between runs")
    parser.add_argument("--json", default=None, help="write the table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    model, canonical = load_torch_model(args.checkpoint)
    seeds = [HELD_OUT_SEED + i for i in range(args.seeds)]
    cache = Path(args.cache) if args.cache else None
    table = {name: camera_scores(model, canonical, name, seeds, cache) for name in CAMERAS}
    kitti = table[KITTI_CAMERA]["abs_rel"]
    print(f"{args.checkpoint}: canonical focal {canonical.focal_px:.2f} px at {canonical.train_size}, {args.seeds} seeds")
    print(f"| camera | network input | abs_rel | / KITTI | median pred/GT |")
    print("|---|---|---|---|---|")
    all_met = kitti <= 0.12
    for name, row in table.items():
        relative = row["abs_rel"] / kitti
        met = relative <= 1.25 and abs(row["median_ratio"] - 1) <= 0.05
        all_met &= met
        print(f"| {name} | {row['network_hw'][0]}x{row['network_hw'][1]} | {row['abs_rel']:.4f} | "
              f"{relative:.2f} | {row['median_ratio']:.3f} |{'' if met else ' (miss)'}")
    print(f"targets {'met' if all_met else 'NOT met'} (KITTI abs_rel {kitti:.4f} <= 0.12, others <= 1.25x, "
          "median 1 +- 0.05)")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint, "seeds": args.seeds, "cameras": table},
                                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
