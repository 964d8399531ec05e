"""One inference interface over PyTorch, onnxruntime and TensorRT.

    rt = DepthRuntime.from_path("default", backend="auto", device="cpu")
    depth_m, uncertainty_m = rt.infer(rgb_uint8_hwc)     # float32 H×W each, at the input resolution

Every backend gets the same pre-processing (resize to the model input size, ImageNet
normalisation) and post-processing (resize back to the input resolution), and runs the same
deployed graph (:class:`urcdc_model.deploy.graph.DeployModel`), so outputs agree across backends.
The depth map comes back at the camera's own resolution, so the camera's intrinsics apply to it
unchanged.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from urcdc_model.deploy.backends import OnnxRuntimeBackend, TensorRTBackend, TorchBackend, Backend, choose_backend
from urcdc_model.checkpoints import load_model
from urcdc_model.deploy.files import default_cache_dir
from urcdc_model.deploy.graph import DeployModel
from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.onnx_export import ONNX_OPSET, cached_onnx_export, read_onnx_metadata
from urcdc_model.deploy.precision import PRECISIONS, cached_converted_onnx
from urcdc_model.deploy.sources import ModelSource, check_input_size, checkpoint_input_size, onnx_run_size
from urcdc_model.deploy.tensorrt import cached_engine_build, read_engine_metadata, tensorrt_opset
from urcdc_model.preprocessing import normalize_rgb_array

LOG = logging.getLogger(__name__)


class DepthRuntime:
    """Metric depth + uncertainty from RGB frames on the chosen backend.

    Attributes:
        backend: the backend actually running ("torch" | "onnxruntime" | "tensorrt").
        input_size: (height, width) the network runs at.
        max_depth: the model's maximum depth in metres.
    """

    def __init__(self, engine: Backend, input_size: tuple[int, int], max_depth: float,
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
            precision: "fp32" | "fp16" | "int8". An exported FP16/INT8 .onnx runs at its own precision;
                from a checkpoint or FP32 .onnx, fp16 is derived (and cached), int8 needs the calibrated
                Q/DQ .onnx from ``python -m urcdc_model.export --precision int8 --calib-images DIR``.
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
            input_size = check_input_size(input_size)
        if max_depth is not None and source.kind != "checkpoint":
            raise ValueError(f"{source.path}: max_depth is fixed inside an exported model; re-export with "
                             "`python -m urcdc_model.export --max-depth M`")

        if source.kind == "checkpoint":
            runtime = cls._from_checkpoint(source.path, chosen, device, precision, input_size, max_depth, cache,
                                           num_threads)
        elif source.kind == "onnx":
            runtime = cls._from_onnx(source.path, chosen, device, precision, input_size, cache, num_threads)
        else:
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
        opset = tensorrt_opset() if backend == "tensorrt" else ONNX_OPSET
        onnx_path = cached_onnx_export(deploy, checkpoint_path=path, height=size[0], width=size[1],
                                       max_depth=max_depth_m, cache_dir=cache, opset=opset)
        if backend == "onnxruntime":
            onnx_path = _onnxruntime_model(onnx_path, "fp32", precision, cache, size)
            engine = OnnxRuntimeBackend(onnx_path, device, precision, cache, num_threads)
            return cls(engine, size, max_depth_m, device, precision)
        engine_path = cached_engine_build(onnx_path, height=size[0], width=size[1], precision=precision,
                                          max_depth=max_depth_m, cache_dir=cache)
        return cls(TensorRTBackend(engine_path), size, max_depth_m, device, precision)

    @classmethod
    def _from_onnx(cls, path: Path, backend: str, device: str, precision: str,
                   input_size: tuple[int, int] | None, cache: Path, num_threads: int | None) -> "DepthRuntime":
        meta = read_onnx_metadata(path)
        size = onnx_run_size(meta, input_size, path)
        if meta["precision"] != "fp32":
            if precision not in ("fp32", meta["precision"]):  # fp32 is the default: "not asked"
                raise ValueError(f"{path} is a {meta['precision']} model; precision='{precision}' was asked "
                                 "(pass the FP32 export to run another precision)")
            precision = meta["precision"]
        if backend == "onnxruntime":
            path = _onnxruntime_model(path, meta["precision"], precision, cache, size)
            engine = OnnxRuntimeBackend(path, device, precision, cache, num_threads)
            return cls(engine, size, meta["max_depth"], device, precision)
        engine_path = cached_engine_build(path, height=size[0], width=size[1], precision=precision,
                                          max_depth=meta["max_depth"], cache_dir=cache)
        return cls(TensorRTBackend(engine_path), size, meta["max_depth"], device, precision)

    # -- inference --------------------------------------------------------------------------

    def preprocess(self, rgb_uint8_hwc: np.ndarray) -> np.ndarray:
        """uint8 H×W×3 RGB → normalised 1×3×h×w float32 array at the model input size."""
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


def _onnxruntime_model(onnx_path: Path, file_precision: str, precision: str, cache: Path,
                       size: tuple[int, int]) -> Path:
    """The ONNX onnxruntime runs for ``precision``: the file itself, or its cached FP16 conversion."""
    if precision == file_precision:
        return onnx_path
    if precision == "fp16":
        return cached_converted_onnx(onnx_path, "fp16", cache, size)
    raise BackendUnavailableError(
        "precision='int8' runs a Q/DQ ONNX calibrated on your camera's images: `python -m urcdc_model.export "
        "--checkpoint CKPT --format onnx --precision int8 --calib-images DIR --output model_int8.onnx`, then "
        "DepthRuntime.from_path('model_int8.onnx', backend='onnxruntime')")


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
