"""Size and CPU speed of a model variant: parameters, safetensors size, deploy forward, training step.

    python -m urcdc_model.models.benchmark --variant nano --height 176 --width 576 [--baseline tiny07]

Reports wall-clock and process CPU time (the latter is less sensitive to other load on a shared
machine) and, with ``--baseline``, the same deploy forward of another variant run in this process.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import build_model


def _timed(fn, repeats: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds of ``fn()`` over ``repeats`` runs, after one warm-up."""
    fn()
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w0) * 1000)
        cpu.append((time.process_time() - c0) * 1000)
    return float(np.median(wall)), float(np.median(cpu))


def deploy_forward_ms(variant: str, height: int, width: int, repeats: int) -> tuple[float, float]:
    model = build_model(variant, with_cnn=False).eval()
    image = torch.randn(1, 3, height, width)

    def run() -> None:
        with torch.inference_mode():
            model(image)
    return _timed(run, repeats)


def train_step_ms(variant: str, height: int, width: int, batch: int, repeats: int) -> tuple[float, float]:
    model = build_model(variant, with_cnn=True).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    image = torch.randn(batch, 3, height, width)

    def step() -> None:
        out = model(image, image)
        loss = out["depth"].mean() + out["depth_cnn"].mean() + out["confidence"].mean() + out["confidence_cnn"].mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return _timed(step, repeats)


def deploy_gflops(variant: str, height: int, width: int) -> float:
    """Forward FLOPs (multiply-adds count 2) of the deploy model: a machine-independent cost."""
    from torch.utils.flop_counter import FlopCounterMode
    model = build_model(variant, with_cnn=False).eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(torch.randn(1, 3, height, width))
    return counter.get_total_flops() / 1e9


def safetensors_mb(variant: str, with_cnn: bool) -> float:
    from ..checkpoints import save_model
    model = build_model(variant, with_cnn=with_cnn)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_model(Path(tmp) / "m.safetensors", model, dataclasses.replace(model.cfg))
        return path.stat().st_size / 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m urcdc_model.models.benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="nano", help="model variant to measure")
    parser.add_argument("--height", type=int, default=176, help="input height in pixels")
    parser.add_argument("--width", type=int, default=576, help="input width in pixels")
    parser.add_argument("--batch", type=int, default=4, help="training batch size")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--baseline", default=None, help="also time this variant's deploy forward (e.g. tiny07)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    full = build_model(args.variant, with_cnn=True)
    deploy = build_model(args.variant, with_cnn=False)
    result = {
        "variant": args.variant, "input": [args.height, args.width], "threads": args.threads,
        "load_average_1min": os.getloadavg()[0], "cpu_count": os.cpu_count(),
        "params_total_m": sum(p.numel() for p in full.parameters()) / 1e6,
        "params_deploy_m": sum(p.numel() for p in deploy.parameters()) / 1e6,
        "safetensors_two_branch_mb": safetensors_mb(args.variant, True),
        "safetensors_deploy_mb": safetensors_mb(args.variant, False),
    }
    result["deploy_forward_gflops"] = deploy_gflops(args.variant, args.height, args.width)
    wall, cpu = deploy_forward_ms(args.variant, args.height, args.width, args.repeats)
    result.update(deploy_forward_wall_ms=wall, deploy_forward_cpu_ms=cpu)
    wall, cpu = train_step_ms(args.variant, args.height, args.width, args.batch, max(2, args.repeats // 2))
    result.update(train_step_batch=args.batch, train_step_wall_ms=wall, train_step_cpu_ms=cpu)
    if args.baseline:
        wall, cpu = deploy_forward_ms(args.baseline, args.height, args.width, max(2, args.repeats // 2))
        result.update(baseline=args.baseline, baseline_forward_gflops=deploy_gflops(args.baseline, args.height, args.width), baseline_forward_wall_ms=wall, baseline_forward_cpu_ms=cpu,
                      speedup_vs_baseline_wall=wall / result["deploy_forward_wall_ms"])
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
