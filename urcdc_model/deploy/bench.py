"""Latency benchmark of the runtime backends, with PyTorch eager as the in-run baseline.

    python -m urcdc_model.bench --checkpoint default --backends torch,onnxruntime --input-sizes 352x1216

Each variant (``backend`` or ``backend:precision``; ``torch-compile`` for torch.compile) is loaded
through DepthRuntime and timed on the same frame. Iterations are interleaved round-robin across
variants so a busy shared machine slows every variant alike and the ratios stay fair. Reports the
median and p90 of the end-to-end ``infer()`` latency (resize + normalise + network + resize back)
and of the network alone, the process CPU time per inference (all threads; less sensitive to other
load than wall time), FPS, and the speed-up over PyTorch eager FP32 (from median wall latency). With
``--write FILE`` the table and the machine description replace this device's subsection of FILE's
"Export and runtime" section (e.g. ``--write docs/BENCHMARKS.md``); nothing is written otherwise.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import sys
import time
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from urcdc_model import cli
from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.runtime import DepthRuntime
from urcdc_model.deploy.sources import ModelSource

SECTION_TITLE = "## Export and runtime (issue 5)"
BASELINE = "torch"


@dataclass
class BenchRow:
    variant: str
    size: tuple[int, int]
    infer_ms: list[float]
    network_ms: list[float]
    cpu_ms: list[float] = dataclasses.field(default_factory=list)  # process CPU time per infer, all threads

    @property
    def median_ms(self) -> float:
        return float(np.median(self.infer_ms))

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.infer_ms, 90))

    @property
    def network_median_ms(self) -> float:
        return float(np.median(self.network_ms))

    @property
    def cpu_median_ms(self) -> float:
        return float(np.median(self.cpu_ms)) if self.cpu_ms else float("nan")


def parse_variant(text: str) -> tuple[str, str]:
    """'onnxruntime' → ('onnxruntime', 'fp32'); 'tensorrt:fp16' → ('tensorrt', 'fp16')."""
    backend, _, precision = text.partition(":")
    return backend, precision or "fp32"


def load_variant(variant: str, checkpoint: str, device: str, size: tuple[int, int], cache_dir: Path | None,
                 num_threads: int | None) -> DepthRuntime:
    backend, precision = parse_variant(variant)
    if backend == "torch-compile":
        runtime = DepthRuntime.from_path(checkpoint, backend="torch", device=device, precision=precision,
                                         input_size=size, warmup_runs=0)
        engine = runtime._engine(size)  # the torch backend runs every size with one module
        engine.model = torch.compile(engine.model)
    else:
        runtime = DepthRuntime.from_path(checkpoint, backend=backend, device=device, precision=precision,
                                         input_size=size, cache_dir=cache_dir, num_threads=num_threads,
                                         warmup_runs=0)
    return runtime


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def benchmark(runtimes: dict[str, DepthRuntime], frame: np.ndarray, runs: int, warmup: int,
              device: str) -> dict[str, BenchRow]:
    """Interleaved timing of every runtime on one frame (at the frame's own resolution)."""
    rows = {name: BenchRow(name, rt.input_size, [], []) for name, rt in runtimes.items()}
    prepared = {name: rt.preprocess(frame) for name, rt in runtimes.items()}  # (network input, plan)
    for i in range(warmup + runs):
        for name, rt in runtimes.items():
            _sync(device)
            cpu_start, start = time.process_time(), time.perf_counter()
            rt.infer(frame)
            _sync(device)
            infer_ms = (time.perf_counter() - start) * 1e3
            cpu_ms = (time.process_time() - cpu_start) * 1e3
            start = time.perf_counter()
            image, plan = prepared[name]
            rt._engine(plan.network_hw).run(image)
            _sync(device)
            network_ms = (time.perf_counter() - start) * 1e3
            if i >= warmup:
                rows[name].infer_ms.append(infer_ms)
                rows[name].network_ms.append(network_ms)
                rows[name].cpu_ms.append(cpu_ms)
    return rows


def machine_description(device: str, num_threads: int | None) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    parts = [f"CPU {cpu}", f"{os.cpu_count()} logical cores visible", f"torch {torch.__version__}"]
    try:
        import onnxruntime

        parts.append(f"onnxruntime {onnxruntime.__version__}")
    except ImportError:
        pass
    if device == "cuda":
        parts.append(f"GPU {torch.cuda.get_device_name(0)}")
    try:
        load1, _, _ = os.getloadavg()
        parts.append(f"load average {load1:.1f} at start (shared machine)")
    except OSError:
        pass
    parts.append(f"onnxruntime threads {num_threads or os.cpu_count()}")
    return ", ".join(parts)


def format_table(rows: list[BenchRow], baseline: dict[tuple[int, int], float]) -> str:
    lines = ["| size (H×W) | variant | infer median ms | infer p90 ms | network median ms | CPU ms/infer | FPS "
             "| × PyTorch eager |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        base = baseline.get(row.size)
        ratio = f"{base / row.median_ms:.2f}" if base else "—"
        lines.append(f"| {row.size[0]}×{row.size[1]} | {row.variant} | {row.median_ms:.1f} | {row.p90_ms:.1f} | "
                     f"{row.network_median_ms:.1f} | {row.cpu_median_ms:.0f} | {1e3 / row.median_ms:.2f} | {ratio} |")
    return "\n".join(lines)


def write_benchmarks_md(path: Path, subsection_title: str, body: str, section: str = SECTION_TITLE) -> None:
    """Replace (or add) ``### subsection_title`` inside the ``## section`` (default: this module's) of the file."""
    text = path.read_text() if path.is_file() else "# Benchmarks\n\nMeasured numbers, with the commands that produced them.\n"
    subsection = f"### {subsection_title}\n\n{body.strip()}\n"
    if section not in text:
        text = text.rstrip("\n") + f"\n\n{section}\n\n{subsection}"
    else:
        start = text.index(section)
        next_section = text.find("\n## ", start + len(section))
        end = len(text) if next_section < 0 else next_section + 1
        block = text[start:end]
        header = f"### {subsection_title}\n"
        if header in block:
            s = block.index(header)
            nxt = block.find("\n### ", s + len(header))
            e = len(block) if nxt < 0 else nxt + 1
            block = block[:s] + subsection + ("\n" if nxt >= 0 else "") + block[e:].lstrip("\n")
        else:
            block = block.rstrip("\n") + "\n\n" + subsection
        text = text[:start] + block.rstrip("\n") + "\n" + ("\n" + text[end:] if end < len(text) else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _bench_frame(height: int, width: int) -> np.ndarray:
    """A structured street frame (rendered), so the timing sees a realistic image; size as the network's."""
    try:
        from urcdc_model.data.synthetic import render_frame

        return render_frame(0, kind="street", height=height, width=width).rgb
    except ImportError:
        return np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)


def build_parser() -> argparse.ArgumentParser:
    parser = cli.new_parser("urcdc_model.bench", __doc__.split("\n\n")[0])
    cli.add_checkpoint(parser, runtime=True)
    parser.add_argument("--backends", default=None,
                        help="comma-separated variants: torch, onnxruntime, tensorrt, torch-compile, with optional "
                             ":fp16/:int8 (default: torch,onnxruntime on CPU; plus torch:fp16,tensorrt:fp16 on CUDA)")
    parser.add_argument("--input-sizes", type=lambda s: [cli.parse_size(x) for x in s.split(",")],
                        default=[(352, 1216)], metavar="HxW[,HxW...]",
                        help="comma-separated network input sizes HEIGHTxWIDTH (default: 352x1216)")
    cli.hidden_alias(parser, "--sizes", dest="input_sizes", type=lambda s: [cli.parse_size(x) for x in s.split(",")])
    cli.add_device(parser)
    parser.add_argument("--runs", type=int, default=20, help="timed iterations per variant")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per variant first")
    cli.add_num_threads(parser, old_name="--threads")
    parser.add_argument("--cache-dir", type=Path, default=None, help="ONNX/engine cache (default: ~/.cache/urcdc)")
    parser.add_argument("--write", type=Path, default=None, metavar="FILE",
                        help="also write the table into FILE's 'Export and runtime' section, replacing this "
                             "device's subsection (e.g. docs/BENCHMARKS.md); nothing is written without it")
    cli.hidden_alias(parser, "--benchmarks-md", dest="write", type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cli.show_progress_logs()  # a first-use ONNX export says so before the pause
    try:
        return run_bench(args, argv)
    except (FileNotFoundError, ValueError, *cli.USER_ERRORS) as error:  # bad model file or path: one clear line
        return cli.print_error(error)


def run_bench(args: argparse.Namespace, argv: list[str] | None) -> int:
    """Benchmark as the parsed CLI arguments say and print (and optionally write) the table."""
    default_variants = "torch,onnxruntime" if args.device == "cpu" else "torch,torch:fp16,onnxruntime,tensorrt:fp16"
    variants = [v.strip() for v in (args.backends or default_variants).split(",") if v.strip()]
    exported = ModelSource.resolve(args.checkpoint).kind != "checkpoint"  # .onnx/.engine: no PyTorch to compare
    if BASELINE not in variants and not exported:
        variants.insert(0, BASELINE)  # the ratio needs PyTorch eager FP32 in the same run
    if args.num_threads:
        torch.set_num_threads(args.num_threads)

    all_rows: list[BenchRow] = []
    baseline: dict[tuple[int, int], float] = {}
    skipped: list[str] = []
    for size in args.input_sizes:
        runtimes = {}
        for variant in variants:
            try:
                runtimes[variant] = load_variant(variant, args.checkpoint, args.device, size, args.cache_dir,
                                                 args.num_threads or None)
            except BackendUnavailableError as error:
                skipped.append(f"{variant}: {error}")
                print(f"skip {variant}: {error}", file=sys.stderr)
        rows = benchmark(runtimes, _bench_frame(*size), args.runs, args.warmup, args.device)
        if BASELINE in rows:
            baseline[size] = rows[BASELINE].median_ms
        all_rows.extend(rows.values())

    machine = machine_description(args.device, args.num_threads or None)
    table = format_table(all_rows, baseline)
    command = "python -m urcdc_model.bench " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    print(f"{machine}\n\n{table}")
    for line in sorted(set(skipped)):
        print(f"not measured — {line}")
    if args.write:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        body = (f"Command: `{command}` ({args.runs} timed runs per variant after {args.warmup} warm-up, interleaved; "
                f"{stamp}).\n\nMachine: {machine}.\n\n{table}\n")
        if skipped:
            body += "\nNot measured: " + "; ".join(sorted(set(skipped))) + "\n"
        title = "CPU" if args.device == "cpu" else f"GPU ({torch.cuda.get_device_name(0)})"
        write_benchmarks_md(args.write, title, body)
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
