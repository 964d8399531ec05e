"""One inference interface over PyTorch, onnxruntime and TensorRT.

    rt = DepthRuntime.from_path("default", backend="auto", device="cpu")
    depth_m, uncertainty_m = rt.infer(rgb_uint8_hwc)     # float32 H×W each, at the input resolution

Every backend gets the same pre-processing (resize to the model input size, ImageNet
normalisation) and post-processing (resize back to the input resolution), and runs the same
deployed graph (:class:`urcdc_model.deploy_model.DeployModel`), so outputs agree across backends.
The depth map comes back at the camera's own resolution, so the camera's intrinsics apply to it
unchanged.
"""
from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np
import torch

from urcdc_model.deploy_model import INPUT_NAME, OUTPUT_NAMES, DeployModel

LOG = logging.getLogger(__name__)

BACKENDS = ("torch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "int8")
# The KITTI Eigen-crop size, used only when a checkpoint does not record its training size.
FALLBACK_INPUT_SIZE = (352, 1216)
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


class BackendUnavailableError(RuntimeError):
    """The requested backend, device or precision cannot run on this machine."""


def default_cache_dir() -> Path:
    """Where exported ONNX models and TensorRT engines are cached ($URCDC_CACHE_DIR or ~/.cache/urcdc)."""
    env = os.environ.get("URCDC_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "urcdc"


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file (the cache key of everything derived from a checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


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


# ---------------------------------------------------------------------------------------------
# Backends: each runs a normalised 1×3×H×W float32 NumPy image and returns (depth_m, uncertainty_m) H×W.


class _Backend(Protocol):
    name: str

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchBackend:
    """PyTorch eager (FP32 on CPU/GPU, FP16 on GPU)."""

    name = "torch"

    def __init__(self, deploy_model: DeployModel, device: str, precision: str):
        if precision == "int8":
            raise BackendUnavailableError("precision='int8' needs backend='tensorrt' (INT8 calibration)")
        if precision == "fp16" and device != "cuda":
            raise BackendUnavailableError("precision='fp16' with backend='torch' needs device='cuda'")
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = deploy_model.to(self.device, self.dtype).eval()

    @torch.inference_mode()
    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = self.model(torch.from_numpy(image).to(self.device, self.dtype))
        return (depth_m[0, 0].float().cpu().numpy(), uncertainty_m[0, 0].float().cpu().numpy())


def onnxruntime_providers(device: str, precision: str, cache_dir: Path) -> list:
    """Execution providers in order of preference for the device/precision, only those installed."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        if precision != "fp32":
            raise BackendUnavailableError(
                f"precision='{precision}' with backend='onnxruntime' needs device='cuda' "
                "(the CPU execution provider runs FP32)")
        return ["CPUExecutionProvider"]
    providers: list = []
    if "TensorrtExecutionProvider" in available:
        providers.append(("TensorrtExecutionProvider", {
            "trt_fp16_enable": precision == "fp16",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(cache_dir / "ort_trt"),
            "trt_timing_cache_enable": True,
        }))
    if "CUDAExecutionProvider" in available and precision == "fp32":
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
        providers = onnxruntime_providers(device, precision, cache_dir)
        self.session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=providers)
        names = [o.name for o in self.session.get_outputs()]
        if INPUT_NAME not in [i.name for i in self.session.get_inputs()] or list(names) != list(OUTPUT_NAMES):
            raise ValueError(f"{onnx_path}: expected input '{INPUT_NAME}' and outputs {OUTPUT_NAMES}, got "
                             f"{[i.name for i in self.session.get_inputs()]} → {names}; re-export with "
                             "`python -m urcdc_model.export`")

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = self.session.run(list(OUTPUT_NAMES), {INPUT_NAME: image})
        return depth_m[0, 0], uncertainty_m[0, 0]


class TensorRTBackend:
    """A serialised TensorRT engine (built from our ONNX), run on CUDA with torch-owned buffers."""

    name = "tensorrt"

    def __init__(self, engine_path: Path):
        from urcdc_model.export_tensorrt import TensorRTEngineRunner

        self.runner = TensorRTEngineRunner(engine_path)

    def run(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        depth_m, uncertainty_m = self.runner(torch.from_numpy(image))
        return depth_m[0, 0].float().cpu().numpy(), uncertainty_m[0, 0].float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Model sources: a checkpoint (safetensors / official .ckpt / "default"), an ONNX file or an engine.


@dataclass(frozen=True)
class ModelSource:
    """What ``from_path`` was given, resolved to a file and its kind."""

    path: Path
    kind: str  # "checkpoint" | "onnx" | "engine"

    @classmethod
    def resolve(cls, path: str | Path) -> "ModelSource":
        if str(path) == "default":
            from urcdc_model.checkpoints import DEFAULT_CHECKPOINT

            resolved = Path(DEFAULT_CHECKPOINT)
            if not resolved.is_file():
                raise FileNotFoundError(
                    f"the default model {resolved} is not there yet (it is produced by training); "
                    "pass a checkpoint path instead")
            return cls(resolved, "checkpoint")
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise FileNotFoundError(f"model file not found: {resolved} (give a .safetensors/.ckpt checkpoint, "
                                    "an .onnx from `python -m urcdc_model.export`, a TensorRT .engine, or 'default')")
        suffix = resolved.suffix.lower()
        if suffix in ONNX_SUFFIXES:
            return cls(resolved, "onnx")
        if suffix in ENGINE_SUFFIXES:
            return cls(resolved, "engine")
        return cls(resolved, "checkpoint")


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
                f"backend='{requested}' cannot run a {source_kind} file on device='{device}' "
                f"(possible: {', '.join(candidates)})")
        return requested
    for name in candidates:
        if _installed(name, device):
            return name
    raise BackendUnavailableError(f"no backend for a {source_kind} file on device='{device}': "
                                  f"install one of {', '.join(candidates)}")


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


# ---------------------------------------------------------------------------------------------


class DepthRuntime:
    """Metric depth + uncertainty from RGB frames on the chosen backend.

    Attributes:
        backend: the backend actually running ("torch" | "onnxruntime" | "tensorrt").
        input_size: (height, width) the network runs at.
        max_depth: the model's maximum depth in metres.
    """

    def __init__(self, engine: _Backend, input_size: tuple[int, int], max_depth: float,
                 device: str = "cpu", precision: str = "fp32"):
        self._engine = engine
        self.backend = engine.name
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.max_depth = float(max_depth)
        self.device = device
        self.precision = precision

    @classmethod
    def from_path(cls, path: str | Path, backend: str = "auto", device: str = "cpu", precision: str = "fp32",
                  input_size: tuple[int, int] | None = None, max_depth: float | None = None,
                  cache_dir: str | Path | None = None, num_threads: int | None = None,
                  warmup_runs: int = 1) -> "DepthRuntime":
        """Load a model for inference.

        Args:
            path: a checkpoint (.safetensors, official .ckpt), "default", an exported .onnx or a TensorRT engine.
            backend: "auto" (fastest available) | "torch" | "onnxruntime" | "tensorrt".
            device: "cpu" | "cuda".
            precision: "fp32" | "fp16" (GPU) | "int8" (TensorRT, calibrated at build time).
            input_size: (height, width) to run the network at; default: the checkpoint's training size.
            max_depth: override the model's max depth in metres (checkpoints only).
            cache_dir: where exported ONNX models / engines are cached (default: :func:`default_cache_dir`).
            num_threads: CPU threads: onnxruntime intra-op threads of this session, or torch's
                (process-wide) for the torch backend; default: all cores.
            warmup_runs: inferences run once at load so the first real frame is not slow.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'")
        source = ModelSource.resolve(path)
        chosen = choose_backend(backend, device, source.kind)
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if input_size is not None:
            input_size = _check_input_size(input_size)
        if max_depth is not None and source.kind != "checkpoint":
            raise ValueError(f"{source.path}: max_depth is fixed inside an exported model; re-export with "
                             "`python -m urcdc_model.export --max-depth M`")

        if source.kind == "checkpoint":
            runtime = cls._from_checkpoint(source.path, chosen, device, precision, input_size, max_depth, cache,
                                           num_threads)
        elif source.kind == "onnx":
            runtime = cls._from_onnx(source.path, chosen, device, precision, input_size, cache, num_threads)
        else:
            from urcdc_model.export_tensorrt import read_engine_metadata

            meta = read_engine_metadata(source.path)
            size = (int(meta["height"]), int(meta["width"]))
            if input_size is not None and input_size != size and not meta.get("dynamic"):
                raise ValueError(f"{source.path}: engine built for {size[0]}x{size[1]}, input_size={input_size} "
                                 "was asked; build another engine")
            runtime = cls(TensorRTBackend(source.path), input_size or size, meta["max_depth"],
                          device, meta.get("precision", precision))
        runtime.warmup(warmup_runs)
        LOG.info("DepthRuntime: %s on %s (%s), input %dx%d", runtime.backend, device, precision,
                 *runtime.input_size)
        return runtime

    @classmethod
    def _from_checkpoint(cls, path: Path, backend: str, device: str, precision: str,
                         input_size: tuple[int, int] | None, max_depth: float | None, cache: Path,
                         num_threads: int | None) -> "DepthRuntime":
        from urcdc_model.checkpoints import load_model

        if max_depth is not None and max_depth <= 0:
            raise ValueError(f"max_depth must be > 0 metres, got {max_depth}")
        # max_depth also names the scale of official checkpoints, which store no config (80 m KITTI, 10 m NYU)
        model, cfg, meta = load_model(path, with_cnn=False, map_location="cpu", max_depth=max_depth)
        max_depth_m = float(cfg.max_depth)
        size = input_size or checkpoint_input_size(meta, path)
        deploy = DeployModel(model, max_depth=max_depth_m).eval()
        if backend == "torch":
            if num_threads:
                torch.set_num_threads(num_threads)
            return cls(TorchBackend(deploy, device, precision), size, max_depth_m, device, precision)

        from urcdc_model.export import cached_onnx_export

        onnx_path = cached_onnx_export(deploy, checkpoint_path=path, height=size[0], width=size[1],
                                       max_depth=max_depth_m, cache_dir=cache)
        if backend == "onnxruntime":
            engine = OnnxRuntimeBackend(onnx_path, device, precision, cache, num_threads)
            return cls(engine, size, max_depth_m, device, precision)
        from urcdc_model.export_tensorrt import cached_engine_build

        engine_path = cached_engine_build(onnx_path, height=size[0], width=size[1], precision=precision,
                                          max_depth=max_depth_m, cache_dir=cache)
        return cls(TensorRTBackend(engine_path), size, max_depth_m, device, precision)

    @classmethod
    def _from_onnx(cls, path: Path, backend: str, device: str, precision: str,
                   input_size: tuple[int, int] | None, cache: Path, num_threads: int | None) -> "DepthRuntime":
        from urcdc_model.export import read_onnx_metadata

        meta = read_onnx_metadata(path)
        size = onnx_run_size(meta, input_size, path)
        if backend == "onnxruntime":
            engine = OnnxRuntimeBackend(path, device, precision, cache, num_threads)
            return cls(engine, size, meta["max_depth"], device, precision)
        from urcdc_model.export_tensorrt import cached_engine_build

        engine_path = cached_engine_build(path, height=size[0], width=size[1], precision=precision,
                                          max_depth=meta["max_depth"], cache_dir=cache)
        return cls(TensorRTBackend(engine_path), size, meta["max_depth"], device, precision)

    # -- inference --------------------------------------------------------------------------

    def preprocess(self, rgb_uint8_hwc: np.ndarray) -> np.ndarray:
        """uint8 H×W×3 RGB → normalised 1×3×h×w float32 array at the model input size."""
        from urcdc_model.preprocessing import normalize_rgb_array

        _check_rgb(rgb_uint8_hwc)
        height, width = self.input_size
        if rgb_uint8_hwc.shape[:2] != (height, width):
            shrinking = rgb_uint8_hwc.shape[0] * rgb_uint8_hwc.shape[1] > height * width
            rgb_uint8_hwc = cv2.resize(rgb_uint8_hwc, (width, height),
                                       interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
        return normalize_rgb_array(rgb_uint8_hwc)[None]

    def infer(self, rgb_uint8_hwc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth and expected absolute error, both float32 metres at the input image's H×W."""
        image = self.preprocess(rgb_uint8_hwc)
        depth_m, uncertainty_m = self._engine.run(image)
        out_hw = rgb_uint8_hwc.shape[:2]
        return _resize_to(depth_m, out_hw), _resize_to(uncertainty_m, out_hw)

    def warmup(self, runs: int = 1) -> None:
        """Run a few frames so lazy initialisation (allocations, kernel selection) happens now."""
        height, width = self.input_size
        frame = np.zeros((height, width, 3), np.uint8)
        for _ in range(max(0, runs)):
            self.infer(frame)

    def __repr__(self) -> str:
        return (f"DepthRuntime(backend={self.backend!r}, device={self.device!r}, precision={self.precision!r}, "
                f"input_size={self.input_size}, max_depth={self.max_depth})")


# ---------------------------------------------------------------------------------------------
# Helpers


def checkpoint_input_size(meta: dict, path: Path) -> tuple[int, int]:
    """The training input size recorded in a checkpoint's metadata (or the KITTI size, with a warning)."""
    try:
        return _check_input_size((int(meta["input_height"]), int(meta["input_width"])))
    except (KeyError, TypeError, ValueError):
        LOG.warning("%s: no input_height/input_width in the checkpoint metadata; running at %dx%d "
                    "(pass input_size=(h, w) to choose)", path, *FALLBACK_INPUT_SIZE)
        return FALLBACK_INPUT_SIZE


def onnx_run_size(meta: dict, input_size: tuple[int, int] | None, path: Path) -> tuple[int, int]:
    """The size to run an ONNX model at: its static size, or input_size for a dynamic export."""
    static = meta.get("height"), meta.get("width")
    if None not in static:
        if input_size is not None and tuple(input_size) != static:
            raise ValueError(f"{path}: exported for a fixed {static[0]}x{static[1]} input, input_size={input_size} "
                             "was asked; re-export with --dynamic or at that size")
        return int(static[0]), int(static[1])
    if input_size is not None:
        return input_size
    if "train_height" in meta and "train_width" in meta:
        return int(meta["train_height"]), int(meta["train_width"])
    return FALLBACK_INPUT_SIZE


def _check_input_size(size) -> tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < 32 or width < 32:
        raise ValueError(f"input_size must be at least 32x32 pixels, got {height}x{width}")
    return height, width


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"infer() expects an RGB image as a uint8 numpy array H×W×3, got shape {shape} dtype {dtype}")


def _resize_to(map_hw: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    map_hw = np.ascontiguousarray(map_hw, dtype=np.float32)
    if map_hw.shape == tuple(out_hw):
        return map_hw
    return cv2.resize(map_hw, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_LINEAR)
