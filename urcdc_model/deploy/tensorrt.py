"""TensorRT engines from our ONNX: build (FP32/FP16/INT8), cache, run.

``tensorrt`` and ``torch_tensorrt`` are imported only when used, so this module imports on any
machine; every entry point raises :class:`BackendUnavailableError` naming what is missing.

Engines are only valid for the GPU, compute capability and TensorRT version that built them, so
the cache key holds all three plus the model hash, input shape and precision: a changed GPU or
TensorRT upgrade builds a new engine instead of failing to deserialise an old one. Each engine
gets a JSON sidecar (``x.engine.json``) with its shape, max depth and build identity.
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
import torch

from urcdc_model.deploy.errors import BackendUnavailableError, ModelFileError, one_line
from urcdc_model.deploy.files import file_sha256
from urcdc_model.deploy.graph import INPUT_NAME, OUTPUT_NAMES
from urcdc_model.deploy.onnx_export import read_onnx_metadata
from urcdc_model.preprocessing import normalize_rgb_array

LOG = logging.getLogger(__name__)

DEFAULT_WORKSPACE_BYTES = 4 << 30
TRT_PRECISIONS = ("fp32", "fp16", "int8")


# ---------------------------------------------------------------------------------------------
# Availability and identity


def import_tensorrt():
    """The tensorrt module, or a clear error saying how to get it."""
    try:
        import tensorrt
    except ImportError as error:
        raise BackendUnavailableError(
            "TensorRT is not installed: `pip install tensorrt` on a desktop with CUDA, or on Jetson use "
            "JetPack's python3-libnvinfer (see docs/JETSON.md)") from error
    return tensorrt


def require_cuda() -> None:
    if not torch.cuda.is_available():
        raise BackendUnavailableError("TensorRT needs an NVIDIA GPU, and PyTorch sees none "
                                      "(torch.cuda.is_available() is False); use backend='onnxruntime' or 'torch'")


@dataclass(frozen=True)
class BuildIdentity:
    """What an engine is bound to: it must match at load time."""

    gpu_name: str
    compute_capability: str  # "8.6"
    tensorrt_version: str


def current_identity(device_index: int = 0) -> BuildIdentity:
    """The GPU and TensorRT of this machine (raises when either is missing)."""
    trt = import_tensorrt()
    require_cuda()
    major, minor = torch.cuda.get_device_capability(device_index)
    return BuildIdentity(torch.cuda.get_device_name(device_index), f"{major}.{minor}", trt.__version__)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def engine_cache_key(model_sha256: str, height: int, width: int, precision: str, identity: BuildIdentity,
                     dynamic: bool = False) -> str:
    """File-name-safe key of one engine: model hash, shape, precision, GPU, compute capability, TRT version."""
    if precision not in TRT_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRT_PRECISIONS)}; got '{precision}'")
    if not re.fullmatch(r"[0-9a-f]{16,64}", model_sha256):
        raise ValueError(f"model_sha256 must be a hex digest, got '{model_sha256}'")
    shape = f"{height}x{width}" + ("-dyn" if dynamic else "")
    sm = "sm" + identity.compute_capability.replace(".", "")
    return "_".join([model_sha256[:16], shape, precision, _slug(identity.gpu_name), sm,
                     "trt" + _slug(identity.tensorrt_version)])


def timing_cache_path(cache_dir: Path, identity: BuildIdentity) -> Path:
    """One timing cache per GPU + TensorRT version (shared by all models: it caches kernel timings)."""
    sm = "sm" + identity.compute_capability.replace(".", "")
    return Path(cache_dir) / "trt_timing" / f"{_slug(identity.gpu_name)}_{sm}_trt{_slug(identity.tensorrt_version)}.cache"


# ---------------------------------------------------------------------------------------------
# INT8 calibration


def calibration_batches(image_paths: list[Path], height: int, width: int) -> Iterator[np.ndarray]:
    """Normalised 1×3×H×W float32 batches, preprocessed exactly like DepthRuntime.preprocess."""
    for path in image_paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: not a readable image (calibration set)")
        rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height), interpolation=cv2.INTER_AREA)
        yield normalize_rgb_array(rgb)[None]


def make_entropy_calibrator(batches: Iterable[np.ndarray], cache_path: Path):
    """A trt.IInt8EntropyCalibrator2 over the batches; its result is cached at cache_path."""
    trt = import_tensorrt()

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)  # pybind base must be initialised explicitly
            self._batches = iter(batches)
            self._device_batch: torch.Tensor | None = None  # kept alive while TensorRT reads it

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            batch = next(self._batches, None)
            if batch is None:
                return None
            self._device_batch = torch.from_numpy(batch).cuda().contiguous()
            return [int(self._device_batch.data_ptr())]

        def read_calibration_cache(self):
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()


# ---------------------------------------------------------------------------------------------
# Building


def build_engine(onnx_path: str | Path, engine_path: str | Path, height: int, width: int, precision: str,
                 max_depth: float, dynamic: bool = False, calibration: Iterable[np.ndarray] | None = None,
                 workspace_bytes: int = DEFAULT_WORKSPACE_BYTES, timing_cache: Path | None = None,
                 min_size: tuple[int, int] | None = None) -> Path:
    """Build and serialise a TensorRT engine from an exported ONNX.

    Args:
        precision: "fp32", "fp16" (FP16 kernels allowed) or "int8" (INT8 + FP16, needs ``calibration``).
        dynamic: one optimisation profile from ``min_size`` (default H/2×W/2) up to H×W, optimised for H×W.
        calibration: normalised 1×3×H×W batches for the INT8 entropy calibrator.
        workspace_bytes: builder scratch-memory limit (lower it on Jetson).
        timing_cache: file to load/save kernel timings so rebuilds are fast.
    """
    trt = import_tensorrt()
    require_cuda()
    if precision not in TRT_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRT_PRECISIONS)}; got '{precision}'")
    if precision == "int8" and calibration is None:
        raise ValueError("precision='int8' needs calibration images (export --int8 --calib-images DIR)")
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if int(trt.__version__.split(".")[0]) < 10:  # explicit batch is implicit (and the flag deprecated) in TRT 10
        flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "\n".join(f"  {parser.get_error(i)}" for i in range(parser.num_errors))
        raise RuntimeError(f"{onnx_path}: the TensorRT ONNX parser failed:\n{errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    config.set_timing_cache(config.create_timing_cache(cache_bytes), False)
    if precision in ("fp16", "int8"):
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in newer TensorRT
            LOG.warning("this GPU has no fast FP16; TensorRT may keep FP32 kernels")
        config.set_flag(trt.BuilderFlag.FP16)

    profile = builder.create_optimization_profile()
    full = (1, 3, height, width)
    if dynamic:
        min_h, min_w = min_size or (max(32, height // 2 // 32 * 32), max(32, width // 2 // 32 * 32))
        profile.set_shape(INPUT_NAME, (1, 3, min_h, min_w), full, full)
    else:
        profile.set_shape(INPUT_NAME, full, full, full)
    config.add_optimization_profile(profile)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = make_entropy_calibrator(
            calibration, engine_path.with_suffix(engine_path.suffix + ".calib"))
        config.set_calibration_profile(profile)

    LOG.info("building TensorRT %s engine %dx%d from %s (minutes on first build)", precision, height, width, onnx_path)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    if timing_cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(f".{engine_path.name}.tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, engine_path)
    write_engine_metadata(engine_path, {"height": height, "width": width, "dynamic": dynamic,
                                        "precision": precision, "max_depth": float(max_depth),
                                        "onnx_sha256": file_sha256(onnx_path), **asdict(current_identity())})
    return engine_path


def cached_engine_build(onnx_path: Path, height: int, width: int, precision: str, max_depth: float,
                        cache_dir: Path) -> Path:
    """The engine for an ONNX at H×W and precision on this GPU/TensorRT: built once, then reused."""
    identity = current_identity()
    if precision == "int8":
        raise BackendUnavailableError(
            "INT8 engines need calibration images: build one with `python -m urcdc_model.export --format tensorrt "
            "--int8 --calib-images DIR --output x.engine` and pass that .engine to DepthRuntime.from_path")
    key = engine_cache_key(file_sha256(onnx_path), height, width, precision, identity)
    engine_path = Path(cache_dir) / "engines" / f"{key}.engine"
    if not engine_path.is_file():
        build_engine(onnx_path, engine_path, height, width, precision, max_depth,
                     timing_cache=timing_cache_path(Path(cache_dir), identity))
    return engine_path


# ---------------------------------------------------------------------------------------------
# Engine metadata and running


def _sidecar(engine_path: Path) -> Path:
    return engine_path.with_name(engine_path.name + ".json")


def write_engine_metadata(engine_path: Path, meta: dict) -> None:
    _sidecar(engine_path).write_text(json.dumps(meta, indent=2) + "\n")


# Sidecar fields the runtime cannot do without (the build identity is checked by check_engine_identity).
ENGINE_REQUIRED_FIELDS = ("height", "width", "max_depth")
REBUILD_HINT = ("rebuild it on this machine with `python -m urcdc_model.export --format tensorrt`, "
                "or pass the .onnx or checkpoint it was built from")


def read_engine_metadata(engine_path: str | Path) -> dict:
    """Shape, precision and max depth of an engine: from its JSON sidecar, or from the ONNX beside it
    (same stem; the trtexec route in docs/JETSON.md). A bad sidecar is a ModelFileError naming the field."""
    engine_path = Path(engine_path)
    sidecar = _sidecar(engine_path)
    if sidecar.is_file():
        try:
            meta = json.loads(sidecar.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(f"{sidecar}: not valid JSON ({one_line(exc, 80)}); {REBUILD_HINT}") from exc
        if not isinstance(meta, dict):
            raise ModelFileError(f"{sidecar}: not an engine description (a JSON object expected); {REBUILD_HINT}")
        missing = [name for name in ENGINE_REQUIRED_FIELDS if name not in meta]
        if missing:
            raise ModelFileError(f"{sidecar}: no {', '.join(missing)} field; {REBUILD_HINT}")
        return meta
    onnx_path = engine_path.with_suffix(".onnx")
    if onnx_path.is_file():
        meta = read_onnx_metadata(onnx_path)
        if meta["height"] is None:
            raise ModelFileError(f"{onnx_path} is a dynamic export; write {sidecar} with the engine's height/width")
        return {**meta, "precision": "unknown"}
    raise ModelFileError(f"{engine_path}: no metadata — expected {sidecar} (written by `python -m "
                         f"urcdc_model.export --format tensorrt`) or the source ONNX at {onnx_path}")


def check_engine_identity(engine_path: Path, meta: dict, here: BuildIdentity) -> None:
    """An engine runs only on the GPU and TensorRT version that built it: a ModelFileError otherwise."""
    built = (meta.get("gpu_name"), meta.get("compute_capability"), meta.get("tensorrt_version"))
    if None not in built and built != (here.gpu_name, here.compute_capability, here.tensorrt_version):
        raise ModelFileError(
            f"{engine_path}: built for {built[0]} (sm {built[1]}, TensorRT {built[2]}), not for this "
            f"{here.gpu_name} (sm {here.compute_capability}, TensorRT {here.tensorrt_version}); {REBUILD_HINT}")


class TensorRTEngineRunner:
    """Runs a serialised engine on CUDA with torch-allocated buffers (no pycuda needed)."""

    def __init__(self, engine_path: str | Path):
        trt = import_tensorrt()
        require_cuda()
        engine_path = Path(engine_path)
        check_engine_identity(engine_path, read_engine_metadata(engine_path), current_identity())
        self._trt = trt
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        try:
            self.engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
        except Exception as exc:  # some TensorRT versions raise instead of returning None
            raise ModelFileError(f"{engine_path}: not a TensorRT engine this TensorRT can load (corrupt, or built "
                                 f"by another version: {one_line(exc, 120)}); {REBUILD_HINT}") from exc
        if self.engine is None:
            raise ModelFileError(f"{engine_path}: not a TensorRT engine this TensorRT can load (corrupt, or built "
                                 f"by another version or for another GPU); {REBUILD_HINT}")
        self.context = self.engine.create_execution_context()
        self.input_dtype = self._torch_dtype(self.engine.get_tensor_dtype(INPUT_NAME))
        self.stream = torch.cuda.Stream()

    def _torch_dtype(self, trt_dtype) -> torch.dtype:
        trt = self._trt
        return {trt.float32: torch.float32, trt.float16: torch.float16}[trt_dtype]

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = image.to("cuda", self.input_dtype, non_blocking=True).contiguous()
        self.context.set_input_shape(INPUT_NAME, tuple(image.shape))
        self.context.set_tensor_address(INPUT_NAME, image.data_ptr())
        outputs = []
        for name in OUTPUT_NAMES:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self._torch_dtype(self.engine.get_tensor_dtype(name)), device="cuda")
            self.context.set_tensor_address(name, out.data_ptr())
            outputs.append(out)
        self.stream.wait_stream(torch.cuda.current_stream())
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError("TensorRT execution failed (see the TensorRT log)")
        self.stream.synchronize()
        return outputs[0], outputs[1]
