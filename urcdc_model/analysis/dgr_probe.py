"""DGR probe: fit only DGR modules on top of a frozen trained network, so with/without DGR is one
network with and without the refinement (nothing else differs).

    python -m urcdc_model.analysis.dgr_probe --checkpoint default --positions crf0,crf1 \
        --steps 200 --output runs/dgr_probe.safetensors
    python -m urcdc_model.analysis --checkpoint default ... --dgr-checkpoint runs/dgr_probe.safetensors

DGR is zero-initialised, so the probe starts as exactly the given network. It trains on the
procedural training scenes (seeds below HELD_OUT_SEED) with SILog, the depth loss of the model's
own training; the CNN branch is not loaded (DGR sits in the Transformer branch only). This is a
probe, not the paper's end-to-end training with DGR: it asks whether a DGR fitted to the frozen
features makes depth gradients more continuous.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from urcdc_model import cli
from urcdc_model.checkpoints import load_model, save_model
from urcdc_model.data.synthetic import SyntheticDepthDataset
from urcdc_model.losses import silog_loss
from urcdc_model.models import DGR_POSITIONS, URCDCDepth


def add_dgr(model: URCDCDepth, positions: tuple[str, ...]) -> URCDCDepth:
    """A copy of a (Transformer-branch) model with zero-initialised DGR modules at `positions`."""
    cfg = dataclasses.replace(model.cfg, dgr_positions=tuple(positions))
    refined = URCDCDepth(cfg)
    missing, unexpected = refined.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not key.startswith("dgr.") for key in missing):
        raise ValueError(f"add_dgr: weights do not carry over (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return refined.eval()


def fit_dgr(model: URCDCDepth, steps: int, batch_size: int, learning_rate: float, num_scenes: int,
            height: int, width: int, log=print) -> list[float]:
    """Train only the DGR parameters; everything else stays frozen (and in eval mode). Returns losses."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    dgr_parameters = list(model.dgr.parameters())
    for parameter in dgr_parameters:
        parameter.requires_grad_(True)
    optimiser = torch.optim.AdamW(dgr_parameters, lr=learning_rate, weight_decay=0.0)
    dataset = SyntheticDepthDataset(num_scenes, kind="street", height=height, width=width, seed=0, train=True,
                                    cache_frames=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    losses: list[float] = []
    start = time.perf_counter()
    while len(losses) < steps:
        for sample in loader:
            depth_gt = sample["depth"]
            valid = (depth_gt > 1e-3) & (depth_gt < model.cfg.max_depth)
            loss = silog_loss(model(sample["image"])["depth"], depth_gt, valid)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            if len(losses) % 20 == 0 or len(losses) == steps:
                log(f"dgr probe step {len(losses)}/{steps}: SILog {sum(losses[-20:]) / len(losses[-20:]):.3f} "
                    f"({time.perf_counter() - start:.0f} s)")
            if len(losses) == steps:
                break
    return losses


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.analysis.dgr_probe", __doc__)
    cli.add_checkpoint(parser)
    parser.add_argument("--positions", default="crf0,crf1", help=f"comma list of DGR positions from {DGR_POSITIONS}")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--scenes", type=int, default=64, help="procedural training scenes (seeds 0..N-1)")
    parser.add_argument("--output", type=Path, required=True, help="where to write the .safetensors")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    positions = tuple(p.strip() for p in args.positions.split(",") if p.strip())
    unknown = [p for p in positions if p not in DGR_POSITIONS]
    if unknown or not positions:
        parser.error(f"--positions: unknown {unknown or args.positions!r}; choose from {DGR_POSITIONS}")
    torch.manual_seed(0)
    try:
        base, _, meta = load_model(args.checkpoint, with_cnn=False)  # kept frozen; only DGR is fitted
    except (FileNotFoundError, *cli.USER_ERRORS) as error:
        return cli.print_error(error)
    height, width = int(meta.get("input_height", 176)), int(meta.get("input_width", 576))
    model = add_dgr(base, positions)
    log = lambda message: print(message, file=sys.stderr, flush=True)  # noqa: E731
    losses = fit_dgr(model, args.steps, args.batch_size, args.lr, args.scenes, height, width, log=log)
    model.eval()
    probe_meta = {**meta, "dgr_probe": {"base_checkpoint": str(args.checkpoint), "positions": list(positions),
                                        "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
                                        "scenes": args.scenes,
                                        # means over the first / last 10 steps: single batches are noisy
                                        "first_silog": sum(losses[:10]) / len(losses[:10]),
                                        "last_silog": sum(losses[-10:]) / len(losses[-10:])}}
    save_model(args.output, model, model.cfg, meta=probe_meta)
    log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
