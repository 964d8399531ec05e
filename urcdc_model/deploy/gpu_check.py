"""GPU check: build, verify and time every GPU path in one command (≤ 8 minutes on one GPU).

    python -m urcdc_model.deploy.gpu_check                    # default model + large07 (random weights)
    python -m urcdc_model.deploy.gpu_check --input-size 352x1216 --budget-s 480 --json gpu_check.json

For each model: PyTorch eager FP32 (the parity reference) and FP16, ``torch.compile``, onnxruntime's
CUDA and TensorRT execution providers (where installed), and our TensorRT engines in FP32, FP16 and
INT8 (Q/DQ calibrated on rendered street frames; each engine verified against onnxruntime FP32
while it is built, see urcdc_model.deploy.tensorrt). Then the node's pipeline in process on a
KITTI-size frame (``DepthRuntime.infer`` + the point cloud the node publishes) with the fastest
verified path. Prints one table: median/p90 latency of ``infer()``, FPS, and parity (mean relative
depth difference to eager FP32 on a held-out frame, and whether it is within the precision's budget).

Paths that cannot run here are listed with the reason; paths that fail are listed as FAILED (exit
code 1). A path is not started when the time budget is spent. Without a CUDA GPU the command prints
one line saying so and exits 0: nothing to check.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from urcdc_model import cli
from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.precision import BUDGETS, compare_to_reference

DEFAULT_BUDGET_S = 8 * 60
MIN_PATH_S = 30  # do not start a path (build + timing) with less time than this left
NO_GPU_LINE = "gpu_check: no CUDA GPU visible (torch.cuda.is_available() is False); nothing to check"

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


@dataclass
class CheckRow:
    model: str
    path: str
    precision: str
    status: str = "ok"              # "ok" | "skipped: why" | "FAILED: why" | "not run: why"
    median_ms: float = float("nan")
    p90_ms: float = float("nan")
    parity: float = float("nan")    # mean |d − d_eager_fp32| / d_eager_fp32 on the held-out frame
    within_budget: bool | None = None
    setup_s: float = float("nan")   # load / compile / build + verify

    @property
    def fps(self) -> float:
        return 1e3 / self.median_ms if self.median_ms == self.median_ms else float("nan")


def time_runner(runner: Runner, frame: np.ndarray, runs: int, warmup: int) -> tuple[float, float]:
    """Median and p90 wall time of ``runner(frame)`` in ms (the runner returns host arrays, so it syncs)."""
    for _ in range(warmup):
        runner(frame)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(frame)
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples)), float(np.percentile(samples, 90))


def check_path(row: CheckRow, load: Callable[[], Runner], frame: np.ndarray, reference: tuple | None,
               runs: int, warmup: int, deadline: float) -> tuple[CheckRow, Runner | None]:
    """Load (build, verify), check parity against ``reference`` and time one path; never raises."""
    if time.monotonic() > deadline - MIN_PATH_S:
        row.status = "not run: time budget spent"
        return row, None
    start = time.monotonic()
    try:
        runner = load()
        row.setup_s = time.monotonic() - start
        if reference is not None:
            error = compare_to_reference("held-out", runner(frame), reference)
            row.parity = error.depth_mean_rel
            row.within_budget = error.within(BUDGETS[row.precision])
        row.median_ms, row.p90_ms = time_runner(runner, frame, runs, warmup)
    except BackendUnavailableError as error:
        row.status = f"skipped: {str(error).splitlines()[0]}"
        return row, None
    except Exception as error:  # noqa: BLE001 - a check reports every failure in its table and goes on
        row.status = f"FAILED: {type(error).__name__}: {(str(error).splitlines() or [''])[0]}"
        return row, None
    if row.within_budget is False:
        row.status = "FAILED: outside the precision's budget against eager FP32"
    return row, runner


def format_table(rows: list[CheckRow]) -> str:
    lines = ["| model | path | precision | median ms | p90 ms | FPS | parity (depth mean rel) | setup s | status |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def num(value: float, fmt: str) -> str:
            return format(value, fmt) if value == value else "—"

        parity = num(r.parity, ".1e") + ("" if r.within_budget is None else " ✓" if r.within_budget else " ✗")
        lines.append(f"| {r.model} | {r.path} | {r.precision} | {num(r.median_ms, '.2f')} | {num(r.p90_ms, '.2f')} | "
                     f"{num(r.fps, '.1f')} | {parity} | {num(r.setup_s, '.0f')} | {r.status} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The paths


def _runtime_runner(**kwargs) -> Runner:
    from urcdc_model.deploy.runtime import DepthRuntime

    return DepthRuntime.from_path(**kwargs).infer


def _compiled_runner(checkpoint: Path, size: tuple[int, int]) -> Runner:
    from urcdc_model.deploy.runtime import DepthRuntime

    runtime = DepthRuntime.from_path(checkpoint, backend="torch", device="cuda", input_size=size, warmup_runs=0)
    engine = runtime._engine(size)  # the torch backend runs every size with one module
    engine.model = torch.compile(engine.model)
    runtime.warmup(2)  # compiles here, so the setup time shows the compile cost
    return runtime.infer


def _ort_provider_runner(checkpoint: Path, size: tuple[int, int], cache: Path, provider: str,
                         precision: str) -> Runner:
    """DepthRuntime on onnxruntime, pinned to one GPU execution provider."""
    import onnxruntime as ort

    from urcdc_model.deploy import backends

    if provider not in ort.get_available_providers():
        raise BackendUnavailableError(f"onnxruntime has no {provider} (install onnxruntime-gpu)")
    chosen = [p for p in backends.onnxruntime_providers("cuda", precision, cache)
              if (p[0] if isinstance(p, tuple) else p) in (provider, "CPUExecutionProvider")]
    original = backends.onnxruntime_providers
    backends.onnxruntime_providers = lambda device, precision, cache_dir: chosen
    try:
        return _runtime_runner(path=checkpoint, backend="onnxruntime", device="cuda", precision=precision,
                               input_size=size, cache_dir=cache)
    finally:
        backends.onnxruntime_providers = original


def _int8_engine_runner(checkpoint: Path, size: tuple[int, int], cache: Path) -> Runner:
    """A Q/DQ INT8 ONNX for TensorRT calibrated on rendered street frames, built into a verified engine."""
    from urcdc_model.checkpoints import load_model
    from urcdc_model.deploy.tensorrt import current_identity
    from urcdc_model.deploy.graph import DeployModel
    from urcdc_model.deploy.onnx_export import cached_onnx_export
    from urcdc_model.deploy.precision import convert_verified, rendered_calibration_batches
    from urcdc_model.deploy.tensorrt import tensorrt_opset

    current_identity()  # fail fast (skipped) without TensorRT
    model, cfg, _ = load_model(checkpoint, with_cnn=False)
    fp32 = cached_onnx_export(DeployModel(model, cfg.max_depth), checkpoint, *size, max_depth=cfg.max_depth,
                              cache_dir=cache, opset=tensorrt_opset())
    int8 = cache / f"{fp32.stem}_int8_tensorrt.onnx"
    if not int8.is_file():
        calibration = rendered_calibration_batches(*size, count=8)
        convert_verified(fp32, int8, "int8", calibration=calibration, int8_target="tensorrt")
    return _runtime_runner(path=int8, backend="tensorrt", device="cuda", precision="int8", cache_dir=cache)


def model_paths(checkpoint: Path, size: tuple[int, int], cache: Path) -> list[tuple[str, str, Callable[[], Runner]]]:
    """(path, precision, loader) for every GPU path, eager FP32 first (the parity reference)."""
    common = {"path": checkpoint, "device": "cuda", "input_size": size, "cache_dir": cache}
    return [
        ("torch eager", "fp32", lambda: _runtime_runner(backend="torch", precision="fp32", **common)),
        ("torch eager", "fp16", lambda: _runtime_runner(backend="torch", precision="fp16", **common)),
        ("torch.compile", "fp32", lambda: _compiled_runner(checkpoint, size)),
        ("onnxruntime CUDA EP", "fp32",
         lambda: _ort_provider_runner(checkpoint, size, cache, "CUDAExecutionProvider", "fp32")),
        ("onnxruntime TensorRT EP", "fp16",
         lambda: _ort_provider_runner(checkpoint, size, cache, "TensorrtExecutionProvider", "fp16")),
        ("TensorRT", "fp32", lambda: _runtime_runner(backend="tensorrt", precision="fp32", **common)),
        ("TensorRT", "fp16", lambda: _runtime_runner(backend="tensorrt", precision="fp16", **common)),
        ("TensorRT", "int8", lambda: _int8_engine_runner(checkpoint, size, cache)),
    ]


def random_large07_checkpoint(directory: Path, size: tuple[int, int]) -> Path:
    """large07 (the Swin-L deploy model) with random weights: speed and parity need no training."""
    from urcdc_model.checkpoints import save_model
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_name("large07"), with_cnn=False)
    return save_model(directory / "large07_random.safetensors", URCDCDepth(cfg).eval(), cfg,
                      meta={"input_height": size[0], "input_width": size[1]})


def node_pipeline_runner(runner: Runner) -> tuple[Runner, np.ndarray]:
    """The node's per-frame work in process: infer on a KITTI-size frame + the x,y,z,rgb cloud it publishes."""
    from urcdc_model.data.synthetic import KITTI_FULL_SIZE, render_frame
    from urcdc_ros.pointcloud import CloudBuilder, PinholeIntrinsics  # the ROS side's plain functions, no rclpy

    frame = render_frame(1_000_123, kind="street", height=KITTI_FULL_SIZE[0], width=KITTI_FULL_SIZE[1])
    k = frame.intrinsics
    intrinsics = PinholeIntrinsics(fx=float(k[0, 0]), fy=float(k[1, 1]), cx=float(k[0, 2]), cy=float(k[1, 2]),
                                   width=KITTI_FULL_SIZE[1], height=KITTI_FULL_SIZE[0])
    builder = CloudBuilder()

    def run(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = runner(rgb)
        builder.build(depth_m, intrinsics, rgb=rgb, uncertainty_m=uncertainty_m, max_relative_uncertainty=0.2)
        return depth_m, uncertainty_m

    return run, frame.rgb


def run_checks(size: tuple[int, int], models: list[str], budget_s: float, runs: int, warmup: int,
               cache: Path) -> list[CheckRow]:
    from urcdc_model.checkpoints import DEFAULT_CHECKPOINT
    from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame

    deadline = time.monotonic() + budget_s
    frame = render_frame(HELD_OUT_SEED + 123, kind="street", height=size[0], width=size[1]).rgb
    rows: list[CheckRow] = []
    fastest: tuple[float, str, Runner] | None = None
    for name in models:
        checkpoint = Path(DEFAULT_CHECKPOINT) if name == "default" else random_large07_checkpoint(cache, size)
        reference = None
        for path, precision, load in model_paths(checkpoint, size, cache):
            row, runner = check_path(CheckRow(name, path, precision), load, frame, reference, runs, warmup, deadline)
            rows.append(row)
            print(format_table([row]).splitlines()[-1], flush=True)
            if runner is not None and path == "torch eager" and precision == "fp32":
                reference = runner(frame)
                row.parity, row.within_budget = 0.0, True
            if runner is not None and row.status == "ok" and name == "default" and (
                    fastest is None or row.median_ms < fastest[0]):
                fastest = (row.median_ms, f"{path} {precision}", runner)
    if fastest is not None:
        node_run, kitti_frame = node_pipeline_runner(fastest[2])
        row, _ = check_path(CheckRow("default", f"node pipeline ({fastest[1]}, 375×1242 + cloud)", "—"),
                            lambda: node_run, kitti_frame, None, runs, warmup, deadline)
        rows.append(row)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.deploy.gpu_check", __doc__.split("\n\n")[0])
    cli.add_input_size(parser, old_name="--size", default=(352, 1216))
    parser.add_argument("--models", default="default,large07", help="comma-separated: default, large07")
    parser.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="wall-clock budget in seconds")
    parser.add_argument("--runs", type=int, default=30, help="timed runs per path")
    parser.add_argument("--warmup", type=int, default=5, help="untimed runs per path first")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="ONNX/engine cache (default: a fresh temporary folder, so every engine is built "
                             "and verified)")
    cli.add_json(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.size = args.input_size
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = set(models) - {"default", "large07"}
    if unknown:
        parser.error(f"unknown model(s) {', '.join(sorted(unknown))}: use default, large07")
    if not torch.cuda.is_available():
        print(NO_GPU_LINE)
        return 0
    with tempfile.TemporaryDirectory(prefix="urcdc-gpu-check.") as tmp:
        cache = args.cache_dir or Path(tmp)
        print(f"gpu_check on {torch.cuda.get_device_name(0)}, torch {torch.__version__}, input {args.size[0]}x"
              f"{args.size[1]}, budget {args.budget_s:.0f} s", flush=True)
        rows = run_checks(args.size, models, args.budget_s, args.runs, args.warmup, cache)
    print("\n" + format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps([dataclasses.asdict(r) | {"fps": r.fps} for r in rows], indent=2) + "\n")
    return 1 if any(r.status.startswith("FAILED") for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
