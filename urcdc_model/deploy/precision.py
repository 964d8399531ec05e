"""FP16 and INT8 versions of the exported FP32 ONNX, their error budgets, and the check against FP32.

One vocabulary for every backend: ``fp32`` | ``fp16`` | ``int8``.

- **FP16**: weights and compute in half precision, ``image``/``depth``/``uncertainty`` stay float32,
  and the numerically sensitive ops stay float32 (:data:`FP16_KEEP_FP32_OPS`: normalisations,
  softmax, the exponentials/logs/divisions of GELU and the uncertainty head). Converted with
  ``onnxruntime.transformers.float16.convert_float_to_float16`` — the maintained copy of
  onnxconverter-common's converter that ships inside onnxruntime (already a dependency; the
  onnxconverter-common package itself sees few releases), with ``keep_io_types`` and an op block list.
- **INT8**: explicit quantization — QuantizeLinear/DequantizeLinear pairs in the graph, calibrated on
  real images (``onnxruntime.quantization.quantize_static``, QDQ format, per-channel symmetric INT8
  weights, symmetric INT8 activations: TensorRT accepts only symmetric, signed INT8 Q/DQ). Two
  flavours differ in one point, the biases (:data:`INT8_TARGETS`): onnxruntime's CPU kernels fuse
  DQ → Gemm/Conv into integer kernels only with INT32-quantized biases, while TensorRT's parser
  rejects an INT32 DequantizeLinear ("only activation types allowed", onnx/onnx-tensorrt#850) and
  wants float biases. Both flavours run on onnxruntime; only the ``tensorrt`` one builds an engine.

Every converted model is run with onnxruntime (CPU) beside the FP32 model on verification images
and refused (nothing written) when its outputs leave the precision's :data:`BUDGETS`.
"""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from urcdc_model.deploy.errors import ExportVerificationError
from urcdc_model.deploy.geometry import CanonicalCamera, plan_input
from urcdc_model.deploy.graph import INPUT_NAME, OUTPUT_NAMES
from urcdc_model.preprocessing import normalize_rgb_array

LOG = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "int8")
PRECISION_METADATA_KEY = "urcdc.precision"
CONVERSION_VERSION = "1"  # bump when the FP16/INT8 recipe changes; part of the cache key

# Ops kept in float32 inside an FP16 model. LayerNormalization/InstanceNormalization and the
# decomposed layer norm (ReduceMean, Pow, Sqrt) sum many squares, which overflow or lose the mean in
# half precision; Softmax/Exp/Erf/Log/Sigmoid/Div have large dynamic range; Resize's scale inputs
# must be float32 anyway. Everything else (MatMul, Gemm, Conv, elementwise) runs in half.
FP16_KEEP_FP32_OPS = ("LayerNormalization", "InstanceNormalization", "GroupNormalization", "BatchNormalization",
                      "ReduceMean", "Pow", "Sqrt", "Softmax", "Exp", "Erf", "Log", "Sigmoid", "Div", "Resize")

# Which ops get INT8 inputs: the weighted ones. Quantizing elementwise/reshape ops as well adds a
# Q/DQ pair per op, which costs more than it saves on CPU and is not what TensorRT's explicit
# quantization recipe asks for (Q/DQ at the inputs of Conv/MatMul/Gemm).
INT8_OP_TYPES = ("Conv", "MatMul", "Gemm")

INT8_TARGETS = ("onnxruntime", "tensorrt")
INT8_TARGET_METADATA_KEY = "urcdc.int8_target"

# Verification frames: rendered street scenes from the held-out seed range, away from the seeds
# the evaluation and benchmarks use, so a check never peeks at an evaluation frame.
VERIFY_SEED_OFFSET = 80_000
DEFAULT_VERIFY_FRAMES = 4


@dataclass(frozen=True)
class ErrorBudget:
    """How far a precision may move the outputs from the FP32 model (onnxruntime CPU) on verification images.

    Depth errors are relative per pixel, |d − d_fp32| / d_fp32; the uncertainty error is the mean
    absolute difference relative to the mean FP32 uncertainty (it is near zero where the model is
    sure, so a per-pixel ratio would explode there).
    """

    depth_mean_rel: float     # mean over pixels and images
    depth_p99_rel: float      # 99th percentile over pixels (per image)
    uncertainty_mean_rel: float


# Budgets from measurements on the default model (docs/BENCHMARKS.md, "Deploy"), with headroom. They
# are gates against broken conversions and engines (garbage, a drifting scale), not accuracy claims:
# - FP16 (float32 normalisations): 2.5e-4 mean, 8e-4 p99, 1e-3 uncertainty — the budget allows
#   TensorRT's weakly typed FP16 (< 10.12), where the builder may also run other layers in half.
# - FP32 engines may use TF32 tensor cores (10-bit mantissa), so TensorRT FP32 gets FP16's budget.
# - INT8 Q/DQ: 4–5e-2 mean at the model's 96×320, up to 8e-2 at a tiny 64×96, p99 ≤ 0.26,
#   uncertainty ≤ 0.10; at 96×320 that moved abs_rel against ground truth by +0.006 (the previous
#   default) and −0.0002 (the current one; precision_bench; the bound is +0.01). A wrong scale or a broken layer moves the mean by far more than 0.1.
BUDGETS: dict[str, ErrorBudget] = {
    "fp32": ErrorBudget(depth_mean_rel=5e-3, depth_p99_rel=3e-2, uncertainty_mean_rel=3e-2),
    "fp16": ErrorBudget(depth_mean_rel=5e-3, depth_p99_rel=3e-2, uncertainty_mean_rel=3e-2),
    "int8": ErrorBudget(depth_mean_rel=1e-1, depth_p99_rel=4e-1, uncertainty_mean_rel=2.5e-1),
}


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'")
    return precision


# ---------------------------------------------------------------------------------------------
# Images: calibration and verification, preprocessed like the runtime


def prepare_image(rgb_uint8_hwc: np.ndarray, height: int, width: int) -> np.ndarray:
    """uint8 H×W×3 RGB → normalised 1×3×height×width float32, as ``DepthRuntime`` feeds a static model of
    that size a frame without intrinsics: fitted in with the aspect kept, edge-padded (test_precision
    checks they agree). Without intrinsics the fit does not depend on the canonical focal length."""
    plan = plan_input(rgb_uint8_hwc.shape[:2], CanonicalCamera(1.0, (height, width)), network_hw=(height, width))
    return normalize_rgb_array(np.ascontiguousarray(plan.image_to_network(rgb_uint8_hwc)))[None]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_batches(image_paths: Sequence[Path], height: int, width: int) -> list[np.ndarray]:
    """Normalised 1×3×H×W batches of image files (calibration / verification sets)."""
    return [prepare_image(read_rgb(Path(p)), height, width) for p in image_paths]


def rendered_batches(height: int, width: int, count: int = DEFAULT_VERIFY_FRAMES,
                     seed_offset: int = VERIFY_SEED_OFFSET) -> dict[str, np.ndarray]:
    """Procedural street frames (held-out seeds), normalised at H×W: the default verification set."""
    from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame

    seeds = [HELD_OUT_SEED + seed_offset + i for i in range(count)]
    return {f"street_{seed}": prepare_image(render_frame(seed, kind="street", height=height, width=width).rgb,
                                            height, width) for seed in seeds}


def rendered_calibration_batches(height: int, width: int, count: int = 16,
                                 intrinsics: np.ndarray | None = None) -> list[np.ndarray]:
    """Procedural street frames from training seeds (0 …), normalised at H×W: stand-ins for camera images
    where there are none (benchmarks, the GPU check); ``intrinsics``: the camera to render with (default:
    KITTI's field of view). Deployments calibrate on their own camera's frames."""
    from urcdc_model.data.synthetic import render_frame

    return [prepare_image(render_frame(seed, kind="street", height=height, width=width, intrinsics=intrinsics).rgb,
                          height, width) for seed in range(count)]


def verification_batches(height: int, width: int, image_paths: Sequence[Path] | None = None,
                         rendered: int = DEFAULT_VERIFY_FRAMES) -> dict[str, np.ndarray]:
    """The images a precision is verified on: the given real images plus rendered street frames."""
    batches = rendered_batches(height, width, rendered) if rendered else {}
    for path in image_paths or []:
        batches[Path(path).name] = prepare_image(read_rgb(Path(path)), height, width)
    if not batches:
        raise ValueError("no verification images: give image files or rendered > 0")
    return batches


# ---------------------------------------------------------------------------------------------
# Transforms


def _set_metadata(model, **values: str) -> None:
    for prop in list(model.metadata_props):
        if prop.key in values:
            model.metadata_props.remove(prop)
    for key, value in values.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def _metadata(onnx_path: str | Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def read_precision(onnx_path: str | Path) -> str:
    """The precision an urcdc ONNX was converted to ("fp32" when it never was)."""
    return _metadata(onnx_path).get(PRECISION_METADATA_KEY, "fp32")


def read_int8_target(onnx_path: str | Path) -> str | None:
    """Which runtime an INT8 ONNX was quantized for (None for other precisions)."""
    return _metadata(onnx_path).get(INT8_TARGET_METADATA_KEY)


def convert_fp16(fp32_path: str | Path, output_path: str | Path,
                 keep_fp32_ops: Iterable[str] = FP16_KEEP_FP32_OPS) -> Path:
    """FP16 weights and compute with float32 I/O and ``keep_fp32_ops`` in float32 (unverified)."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    model = onnx.load(str(fp32_path))
    block = sorted(set(DEFAULT_OP_BLOCK_LIST) | set(keep_fp32_ops))
    model16 = convert_float_to_float16(model, keep_io_types=True, op_block_list=block)
    _set_metadata(model16, **{PRECISION_METADATA_KEY: "fp16"})
    onnx.save(model16, str(output_path))
    return Path(output_path)


def calibration_reader(batches: Sequence[np.ndarray]):
    """An onnxruntime CalibrationDataReader over normalised 1×3×H×W batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = list(batches)
            self._index = 0

        def get_next(self):
            if self._index >= len(self._batches):
                return None
            self._index += 1
            return {INPUT_NAME: self._batches[self._index - 1]}

        def rewind(self):
            self._index = 0

    return _Reader()


def quantize_int8(fp32_path: str | Path, output_path: str | Path, calibration: Sequence[np.ndarray],
                  target: str = "onnxruntime", calibrate_method: str = "MinMax",
                  exclude_nodes: Sequence[str] = ()) -> Path:
    """Explicit Q/DQ INT8 model calibrated on ``calibration`` (normalised batches; unverified).

    ``target``: "onnxruntime" (INT32 biases, fused integer kernels on CPU) or "tensorrt" (float biases).

    ``quant_pre_process`` first (shape inference + onnxruntime's basic graph optimisation), as the
    onnxruntime quantization guide recommends, so Q/DQ lands on the fused ops the runtime will run.
    """
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if not calibration:
        raise ValueError("INT8 quantization needs calibration images (--calib-images DIR)")
    if target not in INT8_TARGETS:
        raise ValueError(f"INT8 target must be one of {', '.join(INT8_TARGETS)}; got '{target}'")
    output_path = Path(output_path)
    with tempfile.TemporaryDirectory(dir=output_path.parent, prefix=".quant.") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=False)
        quantize_static(
            str(prepared), str(output_path), calibration_reader(calibration),
            quant_format=QuantFormat.QDQ, per_channel=True,
            activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
            op_types_to_quantize=list(INT8_OP_TYPES), nodes_to_exclude=list(exclude_nodes),
            calibrate_method=getattr(CalibrationMethod, calibrate_method),
            extra_options={
                # TensorRT takes symmetric (zero-point 0) signed INT8 only; onnxruntime runs it too.
                "ActivationSymmetric": True, "WeightSymmetric": True,
                # Q/DQ on the inputs only: an output Q/DQ pair per op costs onnxruntime more than the
                # INT8 kernel saves (measured: 1.4× slower than FP32 with them), and TensorRT's
                # recipe quantizes inputs of weighted ops only.
                "OpTypesToExcludeOutputQuantization": list(INT8_OP_TYPES),
                "QuantizeBias": target == "onnxruntime",  # see INT8_TARGETS
            },
        )
    model = onnx.load(str(output_path))
    _set_metadata(model, **{PRECISION_METADATA_KEY: "int8", INT8_TARGET_METADATA_KEY: target})
    onnx.save(model, str(output_path))
    return output_path


# ---------------------------------------------------------------------------------------------
# Verification


@dataclass
class PrecisionError:
    """Outputs of a model against FP32 on one image."""

    image: str
    depth_mean_rel: float
    depth_p99_rel: float
    uncertainty_mean_rel: float

    def within(self, budget: ErrorBudget) -> bool:
        return (self.depth_mean_rel <= budget.depth_mean_rel and self.depth_p99_rel <= budget.depth_p99_rel
                and self.uncertainty_mean_rel <= budget.uncertainty_mean_rel)

    def describe(self) -> str:
        return (f"{self.image}: depth mean {self.depth_mean_rel:.2e} p99 {self.depth_p99_rel:.2e}, "
                f"uncertainty mean {self.uncertainty_mean_rel:.2e}")


def compare_to_reference(image: str, outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> PrecisionError:
    """(depth, uncertainty) of a candidate against the FP32 reference, any matching shapes."""
    depth, unc = (np.asarray(o, dtype=np.float64) for o in outputs)
    depth_ref, unc_ref = (np.asarray(o, dtype=np.float64) for o in reference)
    if depth.shape != depth_ref.shape or unc.shape != unc_ref.shape:
        raise ExportVerificationError(f"{image}: output shapes {depth.shape}/{unc.shape} differ from FP32 "
                                      f"{depth_ref.shape}/{unc_ref.shape}")
    if not (np.isfinite(depth).all() and np.isfinite(unc).all()):
        return PrecisionError(image, float("inf"), float("inf"), float("inf"))
    rel = np.abs(depth - depth_ref) / np.maximum(np.abs(depth_ref), 1e-6)
    unc_rel = float(np.abs(unc - unc_ref).mean() / max(float(np.abs(unc_ref).mean()), 1e-6))
    return PrecisionError(image, float(rel.mean()), float(np.percentile(rel, 99)), unc_rel)


def onnxruntime_session(onnx_path: str | Path, num_threads: int | None = None):
    """A CPU onnxruntime session with full graph optimisation, as the runtime creates it."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        options.intra_op_num_threads = num_threads
    return ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])


def reference_outputs(fp32_path: str | Path, batches: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """FP32 outputs (onnxruntime CPU) for each verification image: what every precision is held to."""
    session = onnxruntime_session(fp32_path)
    return {name: session.run(list(OUTPUT_NAMES), {INPUT_NAME: batch}) for name, batch in batches.items()}


def verify_against_reference(run, batches: dict[str, np.ndarray], reference: dict[str, list[np.ndarray]],
                             precision: str, what: str) -> list[PrecisionError]:
    """Run ``run(batch) -> (depth, uncertainty)`` on every image; raise when outside the budget.

    Raises:
        ExportVerificationError: naming ``what`` (the model or engine), the precision, the budget and
            the worst image.
    """
    budget = BUDGETS[check_precision(precision)]
    errors = [compare_to_reference(name, run(batch), reference[name]) for name, batch in batches.items()]
    failed = [e for e in errors if not e.within(budget)]
    if failed:
        raise ExportVerificationError(
            f"{what} ({precision}) is outside the {precision} error budget against FP32 (depth mean "
            f"{budget.depth_mean_rel:g}, p99 {budget.depth_p99_rel:g}, uncertainty mean "
            f"{budget.uncertainty_mean_rel:g}): " + "; ".join(e.describe() for e in failed))
    return errors


def convert_verified(fp32_path: str | Path, output_path: str | Path, precision: str,
                     calibration: Sequence[np.ndarray] | None = None,
                     verify: dict[str, np.ndarray] | None = None,
                     int8_target: str = "onnxruntime") -> tuple[Path, list[PrecisionError]]:
    """Convert a verified FP32 ONNX to ``precision``, check it against FP32, and only then write it.

    Args:
        calibration: normalised batches for INT8 (images from the deployment camera).
        int8_target: "onnxruntime" | "tensorrt" (see :data:`INT8_TARGETS`).
        verify: normalised batches to verify on (default: rendered street frames at the model size).
    Raises:
        ExportVerificationError: outside the precision's budget; ``output_path`` is not written.
    """
    check_precision(precision)
    fp32_path, output_path = Path(fp32_path), Path(output_path)
    if precision == "fp32":
        raise ValueError("convert_verified converts to fp16/int8; the FP32 export is the reference itself")
    if verify is None:
        height, width = _static_size(fp32_path)
        verify = rendered_batches(height, width)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=output_path.parent, prefix=f".{output_path.stem}.")
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        if precision == "fp16":
            convert_fp16(fp32_path, tmp_path)
        else:
            quantize_int8(fp32_path, tmp_path, calibration or [], target=int8_target)
        reference = reference_outputs(fp32_path, verify)
        session = onnxruntime_session(tmp_path)
        errors = verify_against_reference(lambda b: session.run(list(OUTPUT_NAMES), {INPUT_NAME: b}), verify,
                                          reference, precision, f"{output_path.name}")
        del session
        os.replace(tmp_path, output_path)
        return output_path, errors
    finally:
        tmp_path.unlink(missing_ok=True)


def cached_converted_onnx(fp32_path: Path, precision: str, cache_dir: Path,
                          size: tuple[int, int] | None = None) -> Path:
    """The verified FP16 version of an FP32 ONNX, converted on first use (INT8 needs calibration images,
    so it is never derived implicitly). ``size`` (H, W) to verify at, for dynamic exports."""
    from urcdc_model.deploy.files import file_sha256

    if precision != "fp16":
        raise ValueError(f"only fp16 is derived automatically; got '{precision}'")
    path = Path(cache_dir) / "onnx" / f"{file_sha256(fp32_path)[:16]}_{precision}_v{CONVERSION_VERSION}.onnx"
    if not path.is_file():
        height, width = size or _static_size(Path(fp32_path))
        LOG.info("converting %s to %s (%s; cached afterwards)", fp32_path, precision, path)
        convert_verified(fp32_path, path, precision, verify=rendered_batches(height, width))
    return path


def _static_size(onnx_path: Path) -> tuple[int, int]:
    import onnx

    model = onnx.load(str(onnx_path), load_external_data=False)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not dims[2] or not dims[3]:
        raise ValueError(f"{onnx_path}: FP16/INT8 conversion needs a static-size export (no --dynamic)")
    return dims[2], dims[3]
