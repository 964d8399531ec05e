"""Benchmark the procedural renderer: frames per second on one core, per size and scene kind.

    python -m urcdc_model.data.bench_synthetic [--frames 30] [--repeats 3] [--json out.json]

CPU time (``time.process_time``) is the one-core cost and is what the >= 20 frames/s target refers to;
wall time is printed too (it includes waiting for a core on a shared machine). The baseline is one
full-image numpy pass (a float32 multiply at the same size) timed in the same process, so the ratio
``frame / pass`` is comparable across machines.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from urcdc_model.data.synthetic import render_frame

CASES = (("street", 352, 704), ("street", 176, 576), ("street", 375, 1242), ("indoor", 240, 320))


def _numpy_pass_ms(height: int, width: int, repeats: int = 200) -> float:
    a = np.random.default_rng(0).random((height, width), dtype=np.float32)
    b = a.copy()
    start = time.process_time()
    for _ in range(repeats):
        np.multiply(a, b)
    return (time.process_time() - start) / repeats * 1000


def bench_case(kind: str, height: int, width: int, frames: int, repeats: int) -> dict:
    """Best of ``repeats`` runs over the same seeds (on a shared machine the minimum is the least disturbed)."""
    render_frame(0, kind, height, width)                       # warm caches (noise texture, imports)
    cpu_runs, wall_runs = [], []
    for _ in range(repeats):
        cpu_start, wall_start = time.process_time(), time.perf_counter()
        for seed in range(frames):
            render_frame(seed, kind, height, width)
        cpu_runs.append((time.process_time() - cpu_start) / frames * 1000)
        wall_runs.append((time.perf_counter() - wall_start) / frames * 1000)
    cpu_ms = min(cpu_runs)
    pass_ms = min(_numpy_pass_ms(height, width) for _ in range(repeats))
    return {"kind": kind, "height": height, "width": width, "frames": frames, "repeats": repeats,
            "cpu_ms_per_frame": cpu_ms, "cpu_ms_per_frame_runs": cpu_runs, "fps_one_core": 1000 / cpu_ms,
            "wall_ms_per_frame": min(wall_runs), "numpy_pass_ms": pass_ms, "frame_in_numpy_passes": cpu_ms / pass_ms}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m urcdc_model.data.bench_synthetic", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=30, help="frames per run (seeds 0..N-1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the fastest is reported")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    results = [bench_case(kind, h, w, args.frames, args.repeats) for kind, h, w in CASES]
    print(f"procedural renderer, best of {args.repeats} runs x {args.frames} frames per case, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'kind':>7} {'size':>9} {'cpu ms':>7} {'fps/core':>8} {'wall ms':>8} {'passes':>7}")
    for r in results:
        print(f"{r['kind']:>7} {r['height']:>4}x{r['width']:<4} {r['cpu_ms_per_frame']:7.1f} {r['fps_one_core']:8.1f} "
              f"{r['wall_ms_per_frame']:8.1f} {r['frame_in_numpy_passes']:7.0f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
