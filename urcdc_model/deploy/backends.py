"""The inference backends: each runs a normalised 1×3×H×W float32 NumPy image and returns
(depth_m, uncertainty_m) H×W float32 NumPy arrays; plus which backend can run where.

Speed ranking for ``backend="auto"`` measured by ``python -m urcdc_model.bench`` (docs/BENCHMARKS.md).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from urcdc_model.deploy.errors import REEXPORT_HINT, BackendUnavailableError, ModelFileError, one_line
from urcdc_model.deploy.graph import INPUT_NAME, OUTPUT_NAMES, DeployModel
from urcdc_model.deploy.precision import PRECISIONS  # noqa: F401  (re-exported: one vocabulary)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda")


def cuda_available() -> bool:
    return torch.cuda.is_available()


def onnxruntime_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True



class Backend(Protocol):
    name: str

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchBackend:
    """PyTorch eager (FP32 on CPU/GPU, FP16 on GPU)."""

    name = "torch"

    def __init__(self, deploy_model: DeployModel, device: str, precision: str):
        if precision == "int8":
            raise BackendUnavailableError(
                "precision='int8' runs a calibrated Q/DQ ONNX: export one with `python -m urcdc_model.export "
                "--precision int8 --calib-images DIR` and load it with backend='onnxruntime' or 'tensorrt'")
        if precision == "fp16" and device != "cuda":
            raise BackendUnavailableError("precision='fp16' with backend='torch' needs device='cuda'")
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = deploy_model.to(self.device, self.dtype).eval()

    @torch.inference_mode()
    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = self.model(torch.from_numpy(image).to(self.device, self.dtype))
        return (depth_m[0, 0].float().cpu().numpy(), uncertainty_m[0, 0].float().cpu().numpy())

    @torch.inference_mode()
    def run_tensor(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """1×3×h×w tensor already on the device → 1×1×h×w depth, uncertainty (device tensors)."""
        return self.model(image.to(self.device, self.dtype))


def onnxruntime_providers(device: str, precision: str, cache_dir: Path) -> list:
    """Execution providers in order of preference, only those installed.

    ``precision`` is the ONNX file's own (FP16 and Q/DQ INT8 graphs carry their types): the CPU
    provider runs all three, the TensorRT provider is told to allow FP16/INT8 kernels to match.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", {
            "trt_fp16_enable": precision in ("fp16", "int8"),
            "trt_int8_enable": precision == "int8",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir / "ort_trt"),
            "trt_timing_cache_enable": True,
        }))
    if "CUDAExecutionProvider" in available:
        providers.append("CUDAExecutionProvider")
    if not providers:
        raise BackendUnavailableError(
            f"backend='onnxruntime', device='cuda', precision='{precision}': onnxruntime has no "
            f"suitable GPU execution provider (available: {available}); install onnxruntime-gpu, or "
            "use backend='torch' / 'tensorrt'")
    providers.append("CPUExecutionProvider")  # for the few nodes a GPU EP declines
    return providers


class OnnxRuntimeBackend:
    """onnxruntime with full graph optimisation; CPU EP here, TensorRT/CUDA EPs when installed."""

    name = "onnxruntime"

    def __init__(self, onnx_path: Path, device: str, precision: str, cache_dir: Path,
                 num_threads: int | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # one graph branch: parallel mode only adds overhead
        # Default: one intra-op thread per core; inter-op stays 1 for the same reason.
        options.intra_op_num_threads = num_threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        # Idle threads sleep instead of busy-waiting: on few cores the spin took the CPU the ROS node needs
        # to publish after each frame (node - model 20-50 ms with it, 8-10 ms without; docs/BENCHMARKS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = onnxruntime_providers(device, precision, cache_dir)
        self.session = open_onnxruntime_session(onnx_path, options, providers)
        names = [o.name for o in self.session.get_outputs()]
        if INPUT_NAME not in [i.name for i in self.session.get_inputs()] or list(names) != list(OUTPUT_NAMES):
            raise ModelFileError(f"{onnx_path}: expected input '{INPUT_NAME}' and outputs {OUTPUT_NAMES}, got "
                                 f"{[i.name for i in self.session.get_inputs()]} → {names}; {REEXPORT_HINT}")

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})
        return depth_m[0, 0], uncertainty_m[0, 0]


# onnxruntime's exception classes that mean "this file is not a model it can load"
_ORT_FILE_ERRORS = ("InvalidProtobuf", "InvalidGraph", "NoSuchFile", "ModelLoaded")


def open_onnxruntime_session(onnx_path: Path, options, providers: list):
    """An onnxruntime session; a file onnxruntime cannot load is a ModelFileError naming it and the fix."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
    except Exception as exc:  # pybind11 exception classes, not importable by a stable name
        kind = type(exc).__name__
        if kind == "InvalidProtobuf":
            raise ModelFileError(f"{onnx_path}: not a valid ONNX model (truncated or not ONNX); {REEXPORT_HINT}") from exc
        if kind in _ORT_FILE_ERRORS or (kind == "Fail" and "Load model" in str(exc)):
            raise ModelFileError(f"{onnx_path}: onnxruntime cannot load it ({one_line(exc, 160)}); "
                                 f"{REEXPORT_HINT}") from exc
        raise


class TensorRTBackend:
    """A serialised TensorRT engine (built from our ONNX), run on CUDA with torch-owned buffers."""

    name = "tensorrt"

    def __init__(self, engine_path: Path):
        from urcdc_model.deploy.tensorrt import TensorRTEngineRunner

        self.runner = TensorRTEngineRunner(engine_path)

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = self.runner(torch.from_numpy(image))
        return depth_m[0, 0].float().cpu().numpy(), uncertainty_m[0, 0].float().cpu().numpy()

    def run_tensor(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """1×3×h×w CUDA tensor → 1×1×h×w depth, uncertainty CUDA tensors (no host copies)."""
        return self.runner(image)


def choose_backend(requested: str, device: str, source_kind: str) -> str:
    """Resolve backend='auto' to the fastest backend that can run here; validate explicit choices."""
    if requested not in ("auto", *BACKENDS):
        raise ValueError(f"backend must be one of auto, {', '.join(BACKENDS)}; got '{requested}'")
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}; got '{device}'")
    if requested != "auto":
        _require_installed(requested)  # "not installed" is the most useful error, so it comes first
    if requested == "tensorrt" and device != "cuda":
        raise BackendUnavailableError("backend='tensorrt' runs on NVIDIA GPUs only: use device='cuda'")
    if device == "cuda" and not cuda_available():
        raise BackendUnavailableError("device='cuda' requested but no CUDA GPU is visible to PyTorch "
                                      "(torch.cuda.is_available() is False); use device='cpu'")
    if source_kind == "engine":
        if device != "cuda":
            raise BackendUnavailableError("a TensorRT engine runs on NVIDIA GPUs only: use device='cuda'")
        candidates = ["tensorrt"]
    elif source_kind == "onnx":
        candidates = ["tensorrt", "onnxruntime"] if device == "cuda" else ["onnxruntime"]
    else:
        # Speed ranking measured by `python -m urcdc_model.bench` (docs/BENCHMARKS.md).
        candidates = ["tensorrt", "onnxruntime", "torch"] if device == "cuda" else ["onnxruntime", "torch"]
    if requested != "auto":
        if requested not in candidates:
            raise BackendUnavailableError(
                f"backend='{requested}' cannot run {_KIND_NAMES[source_kind]} on device='{device}'; pass "
                f"backend {' or '.join(repr(c) for c in candidates)}, or a checkpoint for backend='{requested}'")
        return requested
    for name in candidates:
        if _installed(name, device):
            return name
    raise BackendUnavailableError(f"no backend for {_KIND_NAMES[source_kind]} on device='{device}': "
                                  f"install one of {', '.join(candidates)}")


_KIND_NAMES = {"checkpoint": "a checkpoint", "onnx": "an ONNX model", "engine": "a TensorRT engine"}


def _installed(backend: str, device: str) -> bool:
    if backend == "onnxruntime" and device == "cuda":
        if not onnxruntime_available():
            return False
        import onnxruntime as ort

        gpu_providers = {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
        return bool(gpu_providers & set(ort.get_available_providers()))
    return {"torch": True, "onnxruntime": onnxruntime_available(), "tensorrt": tensorrt_available()}[backend]


def _require_installed(backend: str) -> None:
    if backend == "tensorrt" and not tensorrt_available():
        raise BackendUnavailableError("backend='tensorrt' needs the TensorRT Python package: "
                                      "`pip install tensorrt` (desktop) or JetPack's python3-libnvinfer (Jetson); "
                                      "see docs/JETSON.md")
    if backend == "onnxruntime" and not onnxruntime_available():
        raise BackendUnavailableError("backend='onnxruntime' needs `pip install onnxruntime` "
                                      "(or onnxruntime-gpu for CUDA)")
