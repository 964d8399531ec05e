"""Training-step cost on this machine: `python -m urcdc_model.training.bench_step [--size 96x320] [--batch 2]`.

Times forward + backward of the nano network (both branches vs Transformer only, 1 vs 2 intra-op
threads) in one process, interleaved so load changes hit every configuration alike, and prints the
median wall and CPU seconds per step with ratios against the baseline (both branches, 1 thread).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch

from urcdc_model.models import ModelConfig, URCDCDepth


def step_seconds(model: URCDCDepth, image: torch.Tensor) -> tuple[float, float]:
    """(wall, process CPU) seconds of one forward + backward."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = model(image, image)
    sum(value.mean() for value in out.values()).backward()
    model.zero_grad(set_to_none=True)
    return time.perf_counter() - wall, time.process_time() - cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m urcdc_model.training.bench_step", description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="96x320", help="HxW of the training input")
    parser.add_argument("--batch", type=int, default=2, help="images per process and step")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per configuration")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    torch.manual_seed(0)
    image = torch.randn(args.batch, 3, height, width)
    models = {with_cnn: URCDCDepth(dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=with_cnn)).train()
              for with_cnn in (True, False)}
    configs = [(with_cnn, threads) for with_cnn in (True, False) for threads in (1, 2)]
    times: dict[tuple[bool, int], list[tuple[float, float]]] = {c: [] for c in configs}
    for repeat in range(args.repeats + 1):            # the first round warms up and is dropped
        for with_cnn, threads in configs:
            torch.set_num_threads(threads)
            measured = step_seconds(models[with_cnn], image)
            if repeat:
                times[(with_cnn, threads)].append(measured)
    base_wall = statistics.median(w for w, _ in times[(True, 1)])
    print(f"nano fwd+bwd, batch {args.batch}, {height}x{width}, median of {args.repeats}")
    print(f"{'branches':<18}{'threads':>8}{'wall s':>9}{'cpu s':>8}{'wall / baseline':>17}")
    for with_cnn, threads in configs:
        wall = statistics.median(w for w, _ in times[(with_cnn, threads)])
        cpu = statistics.median(c for _, c in times[(with_cnn, threads)])
        name = "both" if with_cnn else "transformer only"
        print(f"{name:<18}{threads:>8}{wall:>9.3f}{cpu:>8.3f}{wall / base_wall:>17.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
