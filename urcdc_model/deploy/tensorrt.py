"""TensorRT engines from our ONNX: build (FP32/FP16/INT8), verify against onnxruntime FP32, cache, run.

``tensorrt`` is imported only when used, so this module imports on any machine; every failure of the
TensorRT path (library missing or unloadable, no GPU, an API the installed version removed, a parser
error, a failed build) reaches the caller as one :class:`BackendUnavailableError` line naming the
TensorRT version and what to do. What differs between TensorRT versions is decided in
:mod:`urcdc_model.deploy.tensorrt_compat`, nowhere else.

Engines are only valid for the GPU, compute capability and TensorRT version that built them, so
the cache key holds all three plus the model hash, input shape and precision: a changed GPU or
TensorRT upgrade builds a new engine instead of failing to deserialise an old one. Each engine
gets a JSON sidecar (``x.engine.json``) with its shape, max depth and build identity.

Every engine built here is run on the verification images and compared with onnxruntime FP32
under its precision's error budget (``urcdc_model.deploy.precision.BUDGETS``) before it is kept:
engines that build but compute wrong depth on a particular TensorRT version are deleted, not cached.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from urcdc_model.deploy.errors import BackendUnavailableError, ExportVerificationError, ModelFileError, one_line
from urcdc_model.deploy.files import file_sha256
from urcdc_model.deploy.graph import INPUT_NAME, OUTPUT_NAMES
from urcdc_model.deploy.onnx_export import read_onnx_metadata
from urcdc_model.deploy.precision import (PRECISIONS, PrecisionError, cached_converted_onnx, read_int8_target,
                                          read_precision, reference_outputs, rendered_batches,
                                          verify_against_reference)
from urcdc_model.deploy.tensorrt_compat import MIN_VERSION, TensorRTCapabilities, build_plan

LOG = logging.getLogger(__name__)

DEFAULT_WORKSPACE_BYTES = 4 << 30
SUPPORTED_RANGE = f"{MIN_VERSION[0]}.{MIN_VERSION[1]} to 11.x"


class EngineVerificationError(ExportVerificationError, BackendUnavailableError):
    """A built engine computes depth outside its precision's budget; it was deleted.

    Also a BackendUnavailableError: callers that fall back to another backend when TensorRT cannot
    run here treat a wrong engine the same way.
    """


# ---------------------------------------------------------------------------------------------
# Availability and identity


def import_tensorrt():
    """The tensorrt module, or a clear error saying how to get it.

    Besides ImportError, loading the bindings raises OSError when libnvinfer is missing or does not
    match (ctypes preloading in the pip wheels), so both count as "not usable here".
    """
    try:
        import tensorrt
    except (ImportError, OSError) as error:
        detail = str(error).splitlines()[0] if str(error) else type(error).__name__
        if isinstance(error, ModuleNotFoundError) and error.name == "tensorrt":
            raise BackendUnavailableError(
                "TensorRT is not installed: `pip install tensorrt` on a desktop with CUDA, or on Jetson use "
                "JetPack's python3-libnvinfer (see docs/JETSON.md)") from error
        raise BackendUnavailableError(
            f"TensorRT is installed but cannot be loaded ({detail}): the Python bindings and libnvinfer must "
            "come from the same TensorRT release (pip install tensorrt, or JetPack's python3-libnvinfer)") from error
    caps = TensorRTCapabilities.for_version(getattr(tensorrt, "__version__", "0.0"))
    if not caps.supported:
        raise BackendUnavailableError(f"TensorRT {caps.version} is older than {SUPPORTED_RANGE.split(' ')[0]}, "
                                      f"the oldest urcdc supports (JetPack 5.1); supported: {SUPPORTED_RANGE}")
    return tensorrt


def installed_capabilities() -> TensorRTCapabilities:
    """Capabilities of the installed TensorRT (raises BackendUnavailableError without one)."""
    return TensorRTCapabilities.for_version(import_tensorrt().__version__)


def tensorrt_opset() -> int:
    """The ONNX opset the installed TensorRT's parser takes (16 below 8.6: no LayerNormalization)."""
    return installed_capabilities().onnx_opset


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

    def describe(self) -> str:
        return f"TensorRT {self.tensorrt_version} on {self.gpu_name} (sm {self.compute_capability})"


def current_identity(device_index: int = 0) -> BuildIdentity:
    """The GPU and TensorRT of this machine (raises when either is missing)."""
    trt = import_tensorrt()
    require_cuda()
    major, minor = torch.cuda.get_device_capability(device_index)
    return BuildIdentity(torch.cuda.get_device_name(device_index), f"{major}.{minor}", trt.__version__)


@contextlib.contextmanager
def tensorrt_errors(action: str, version: str):
    """Turn what the TensorRT bindings raise into one BackendUnavailableError line.

    AttributeError is how a binding reports an API its version removed (``BuilderFlag.FP16`` on 11);
    pybind's "factory function returned nullptr" TypeError is how creating a Builder/Runtime reports
    that CUDA could not be initialised.
    """
    try:
        yield
    except (BackendUnavailableError, ExportVerificationError):
        raise
    except AttributeError as error:
        raise BackendUnavailableError(
            f"{action} with TensorRT {version}: this version lacks an API urcdc uses ({error}); urcdc supports "
            f"TensorRT {SUPPORTED_RANGE} (urcdc_model/deploy/tensorrt_compat.py decides per version) — please "
            "report it with `python -c 'import tensorrt; print(tensorrt.__version__)'`") from error
    except TypeError as error:
        if "nullptr" not in str(error):
            raise
        raise BackendUnavailableError(
            f"{action} with TensorRT {version}: TensorRT could not initialise CUDA (no usable GPU, or a driver "
            "too old for this TensorRT); check `nvidia-smi`, or use backend='onnxruntime'") from error


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-").lower()


def engine_cache_key(model_sha256: str, height: int, width: int, precision: str, identity: BuildIdentity,
                     dynamic: bool = False) -> str:
    """File-name-safe key of one engine: model hash, shape, precision, GPU, compute capability, TRT version."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'")
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
# Building


def build_engine(onnx_path: str | Path, engine_path: str | Path, height: int, width: int, precision: str,
                 max_depth: float, dynamic: bool = False, workspace_bytes: int = DEFAULT_WORKSPACE_BYTES,
                 timing_cache: Path | None = None, min_size: tuple[int, int] | None = None) -> Path:
    """Build and serialise a TensorRT engine from an exported ONNX (unverified; see :func:`build_verified_engine`).

    Args:
        onnx_path: the ONNX in the precision :func:`tensorrt_compat.build_plan` asks for on this TensorRT
            (FP32; FP16 on ≥ 10.12; the Q/DQ INT8 ONNX for int8).
        precision: "fp32" | "fp16" | "int8".
        dynamic: one optimisation profile from ``min_size`` (default H/2×W/2) up to H×W, optimised for H×W.
        workspace_bytes: builder scratch-memory limit (lower it on Jetson).
        timing_cache: file to load/save kernel timings so rebuilds are fast.
    """
    trt = import_tensorrt()
    identity = current_identity()
    caps = TensorRTCapabilities.for_version(trt.__version__)
    plan = build_plan(caps, precision)
    onnx_path, engine_path = Path(onnx_path), Path(engine_path)
    onnx_precision = read_precision(onnx_path)
    if onnx_precision != plan.onnx_precision:
        raise ValueError(f"{onnx_path} is a {onnx_precision} ONNX, but TensorRT {caps.version} builds {precision} "
                         f"engines from a {plan.onnx_precision} ONNX; export it with `python -m urcdc_model.export "
                         f"--format onnx --precision {plan.onnx_precision}`")
    if onnx_precision == "int8" and read_int8_target(onnx_path) != "tensorrt":
        raise ValueError(f"{onnx_path} was quantized for onnxruntime (INT32 biases, which TensorRT's parser rejects); "
                         "export with `--format tensorrt --precision int8`, or `--format onnx --precision int8 "
                         "--int8-target tensorrt`")
    with tensorrt_errors(f"building a {precision} engine", caps.version):
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0
        for name in plan.network_flags:
            flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(min(parser.num_errors, 3)))
            raise BackendUnavailableError(
                f"{onnx_path}: the ONNX parser of TensorRT {caps.version} rejected the model ({errors}); export at "
                f"opset {caps.onnx_opset} (`--opset {caps.onnx_opset}`), or try `--format torch-tensorrt`")

        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
        cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
        config.set_timing_cache(config.create_timing_cache(cache_bytes), False)
        for name in plan.builder_flags:
            config.set_flag(getattr(trt.BuilderFlag, name))
        if "FP16" in plan.builder_flags and caps.has_fast_fp16_query and not builder.platform_has_fast_fp16:
            LOG.warning("this GPU has no fast FP16; TensorRT may keep FP32 kernels")

        profile = builder.create_optimization_profile()
        full = (1, 3, height, width)
        if dynamic:
            min_h, min_w = min_size or (max(32, height // 2 // 32 * 32), max(32, width // 2 // 32 * 32))
            profile.set_shape(INPUT_NAME, (1, 3, min_h, min_w), full, full)
        else:
            profile.set_shape(INPUT_NAME, full, full, full)
        config.add_optimization_profile(profile)

        LOG.info("building TensorRT %s %s engine %dx%d from %s (%s; minutes on first build)", caps.version,
                 precision, height, width, onnx_path, "strongly typed" if "STRONGLY_TYPED" in plan.network_flags
                 else "weakly typed" + (f", {'+'.join(plan.builder_flags)}" if plan.builder_flags else ""))
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailableError(f"{identity.describe()} failed to build a {precision} engine from "
                                          f"{onnx_path} (see the TensorRT log above)")
        if timing_cache is not None:
            timing_cache.parent.mkdir(parents=True, exist_ok=True)
            timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(f".{engine_path.name}.tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, engine_path)
    write_engine_metadata(engine_path, {"height": height, "width": width, "dynamic": dynamic,
                                        "precision": precision, "max_depth": float(max_depth),
                                        "onnx_sha256": file_sha256(onnx_path), **asdict(identity)})
    return engine_path


def verify_engine(engine_path: str | Path, batches: dict[str, np.ndarray], reference: dict[str, list[np.ndarray]],
                  precision: str) -> list[PrecisionError]:
    """Run an engine on the verification batches against the FP32 reference outputs.

    Raises:
        EngineVerificationError: outside the precision's budget; the engine and its sidecar are deleted.
    """
    engine_path = Path(engine_path)
    runner = TensorRTEngineRunner(engine_path)

    def run(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = runner(torch.from_numpy(batch))
        return depth_m.float().cpu().numpy(), uncertainty_m.float().cpu().numpy()

    identity = current_identity()
    try:
        return verify_against_reference(run, batches, reference, precision, f"the {identity.describe()} engine")
    except ExportVerificationError as error:
        engine_path.unlink(missing_ok=True)
        _sidecar(engine_path).unlink(missing_ok=True)
        raise EngineVerificationError(
            f"{error} — deleted {engine_path.name}; build another precision (e.g. fp32), or use another TensorRT "
            "version / backend='onnxruntime'") from None


def build_verified_engine(build_onnx: Path, engine_path: Path, height: int, width: int, precision: str,
                          max_depth: float, reference_onnx: Path, verify: dict[str, np.ndarray] | None = None,
                          **build_options) -> tuple[Path, list[PrecisionError]]:
    """Build, then verify against onnxruntime running ``reference_onnx`` (FP32) on ``verify``.

    ``verify`` defaults to rendered street frames at H×W (add real ones with ``--verify-images``).
    """
    batches = verify if verify is not None else rendered_batches(height, width)
    reference = reference_outputs(reference_onnx, batches)
    build_engine(build_onnx, engine_path, height, width, precision, max_depth, **build_options)
    errors = verify_engine(engine_path, batches, reference, precision)
    for error in errors:
        LOG.info("engine vs FP32 %s", error.describe())
    return engine_path, errors


def cached_engine_build(onnx_path: Path, height: int, width: int, precision: str, max_depth: float,
                        cache_dir: Path) -> Path:
    """The verified engine for an ONNX at H×W and precision on this GPU/TensorRT: built once, then reused.

    ``onnx_path`` is the FP32 export (the FP16 ONNX that strongly typed TensorRT needs is derived and
    cached) or an ONNX already converted by ``python -m urcdc_model.export --precision``; an INT8
    engine needs the latter (calibration images). A converted ONNX without its FP32 original is
    verified against itself on onnxruntime.
    """
    identity = current_identity()
    plan = build_plan(TensorRTCapabilities.for_version(identity.tensorrt_version), precision)
    onnx_precision = read_precision(onnx_path)
    if onnx_precision == plan.onnx_precision:
        build_onnx = onnx_path
    elif onnx_precision == "fp32" and plan.onnx_precision == "fp16":
        build_onnx = cached_converted_onnx(onnx_path, "fp16", Path(cache_dir))
    elif plan.onnx_precision == "int8":
        raise BackendUnavailableError(
            "INT8 engines are built from a Q/DQ ONNX calibrated on your camera's images: `python -m "
            "urcdc_model.export --checkpoint CKPT --format tensorrt --precision int8 --calib-images DIR "
            "--output x.engine`, then pass that .engine (or its .onnx) to DepthRuntime.from_path")
    else:
        raise ValueError(f"{onnx_path} is a {onnx_precision} ONNX; precision='{precision}' cannot be built from it "
                         f"(pass its own precision, or the FP32 export)")
    key = engine_cache_key(file_sha256(build_onnx), height, width, precision, identity)
    engine_path = Path(cache_dir) / "engines" / f"{key}.engine"
    if not engine_path.is_file():
        reference = onnx_path if onnx_precision == "fp32" else build_onnx
        build_verified_engine(build_onnx, engine_path, height, width, precision, max_depth, reference_onnx=reference,
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
        return {**meta, "precision": read_precision(onnx_path)}
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
    """Runs a serialised engine with torch-allocated buffers (no pycuda needed).

    Args:
        engine_path: the engine (with its JSON sidecar or source ONNX beside it).
        device: where the buffers live; "cuda" on a real machine (tests use "cpu" with the bindings mocked).
    """

    def __init__(self, engine_path: str | Path, device: str = "cuda"):
        trt = import_tensorrt()
        require_cuda()
        engine_path = Path(engine_path)
        check_engine_identity(engine_path, read_engine_metadata(engine_path), current_identity())
        self._trt = trt
        self._version = trt.__version__
        self.device = torch.device(device)
        with tensorrt_errors(f"loading {engine_path.name}", self._version):
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            try:
                self.engine = self._runtime.deserialize_cuda_engine(engine_path.read_bytes())
            except Exception as exc:  # some TensorRT versions raise instead of returning None
                raise ModelFileError(f"{engine_path}: not a TensorRT engine TensorRT {self._version} can load "
                                     f"(corrupt, or built by another version: {one_line(exc, 120)}); "
                                     f"{REBUILD_HINT}") from exc
            if self.engine is None:
                raise ModelFileError(f"{engine_path}: not a TensorRT engine TensorRT {self._version} can load "
                                     f"(corrupt, or built by another version or for another GPU); {REBUILD_HINT}")
            self.context = self.engine.create_execution_context()
            self.input_dtype = self._torch_dtype(self.engine.get_tensor_dtype(INPUT_NAME))
            self.output_dtypes = [self._torch_dtype(self.engine.get_tensor_dtype(n)) for n in OUTPUT_NAMES]
        self.stream = torch.cuda.Stream()

    def _torch_dtype(self, trt_dtype) -> torch.dtype:
        trt = self._trt
        dtypes = {trt.float32: torch.float32, trt.float16: torch.float16}
        if trt_dtype not in dtypes:
            raise BackendUnavailableError(f"engine I/O type {trt_dtype} is not float32/float16; re-export the ONNX "
                                          "with `python -m urcdc_model.export` (float32 inputs and outputs)")
        return dtypes[trt_dtype]

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image = image.to(self.device, self.input_dtype, non_blocking=True).contiguous()
        with tensorrt_errors("running the engine", self._version):
            self.context.set_input_shape(INPUT_NAME, tuple(image.shape))
            self.context.set_tensor_address(INPUT_NAME, image.data_ptr())
            outputs = []
            for name, dtype in zip(OUTPUT_NAMES, self.output_dtypes):
                shape = tuple(self.context.get_tensor_shape(name))
                out = torch.empty(shape, dtype=dtype, device=self.device)
                self.context.set_tensor_address(name, out.data_ptr())
                outputs.append(out)
            self.stream.wait_stream(torch.cuda.current_stream())
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendUnavailableError(f"TensorRT {self._version}: engine execution failed (see the TensorRT log)")
            self.stream.synchronize()
        return outputs[0], outputs[1]
