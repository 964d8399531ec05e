"""One inference interface over PyTorch, onnxruntime and TensorRT, metric for any camera.

    rt = DepthRuntime.from_path("default", backend="auto", device="cpu")
    depth_m, uncertainty_m = rt.infer(rgb_uint8_hwc, intrinsics=K)   # float32 H×W each, the frame's grid

Every frame goes through one input geometry (:mod:`urcdc_model.deploy.geometry`): resized so the
camera looks like the model's canonical camera (aspect kept), padded, run, and mapped back onto the
frame's pixel grid with the depth scale corrected for the focal length the network saw. ``K`` is the
frame's 3×3 intrinsics; without it the frame is assumed to have the training images' field of view.
Every backend runs the same deployed graph (:class:`urcdc_model.deploy.graph.DeployModel`) on the
same preprocessed input, so outputs agree across backends.

Network sizes follow the camera. The torch backend and dynamic ONNX files run any size; the
onnxruntime and TensorRT backends built from a checkpoint export (and cache) one static model per
network size, on the first frame of a new camera (announced in the log). A static ONNX file or an
engine runs at its own size: frames are fitted into it (aspect kept, scale corrected).
"""
from __future__ import annotations

import logging
import math
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from urcdc_model.checkpoints import load_model
from urcdc_model.deploy.backends import Backend, OnnxRuntimeBackend, TensorRTBackend, TorchBackend, choose_backend
from urcdc_model.deploy.device_io import DeviceFrameIO
from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.files import default_cache_dir
from urcdc_model.deploy.geometry import (DEFAULT_STRIDE, CanonicalCamera, InputPlan,
                                        canonical_camera_from_meta, mirror_intrinsics, plan_input)
from urcdc_model.deploy.graph import DeployModel
from urcdc_model.deploy.onnx_export import ONNX_OPSET, cached_onnx_export, read_onnx_metadata
from urcdc_model.deploy.precision import PRECISIONS, cached_converted_onnx
from urcdc_model.deploy.sources import (FALLBACK_INPUT_SIZE, ModelSource, check_input_size, checkpoint_input_size,
                                        onnx_run_size)
from urcdc_model.deploy.tensorrt import cached_engine_build, read_engine_metadata, tensorrt_opset
from urcdc_model.inference import flip_blend_array
from urcdc_model.preprocessing import normalize_rgb_array

LOG = logging.getLogger(__name__)

MAX_CACHED_PLANS = 8    # cameras seen recently (flip TTA and a few camera_info changes)
MAX_CACHED_ENGINES = 4  # static models kept loaded, one per network size


class DepthRuntime:
    """Metric depth + uncertainty from RGB frames on the chosen backend.

    Attributes:
        backend: the backend actually running ("torch" | "onnxruntime" | "tensorrt").
        input_size: (height, width) of the model's training input (the fallback field of view's reference).
        network_size: the fixed network size of a static model, or None when it follows the camera.
        canonical: the camera whose metric scale the network learned.
        max_depth: the model's maximum depth in metres.
    """

    def __init__(self, engine_for_size: Callable[[tuple[int, int]], Backend], backend: str,
                 canonical: CanonicalCamera, max_depth: float, device: str = "cpu", precision: str = "fp32",
                 network_size: tuple[int, int] | None = None, max_pixels: int | None = None,
                 builds_per_size: bool = False):
        """
        Args:
            engine_for_size: returns the backend that runs a given (height, width) network input.
            network_size: fixed network (height, width), or None to follow each camera.
            max_pixels: compute budget per frame in network pixels (default: see geometry.plan_input).
            builds_per_size: engine_for_size exports or builds a model per size (seconds to minutes).
        """
        self._engine_for_size = engine_for_size
        self._builds_per_size = builds_per_size
        self._engines: OrderedDict[tuple[int, int], Backend] = OrderedDict()
        self._plans: OrderedDict[tuple, InputPlan] = OrderedDict()
        self.backend = backend
        self.canonical = canonical
        self.input_size = tuple(int(v) for v in canonical.train_size)
        self.network_size = None if network_size is None else (int(network_size[0]), int(network_size[1]))
        self.max_pixels = max_pixels
        self.max_depth = float(max_depth)
        self.device = device
        self.precision = precision
        # On CUDA, resize/normalise and the way back run on the GPU for backends that take device tensors.
        self._device_io = DeviceFrameIO(device) if device == "cuda" else None

    @classmethod
    def from_path(cls, path: str | Path, backend: str = "auto", device: str = "cpu", precision: str = "fp32",
                  input_size: tuple[int, int] | None = None, max_depth: float | None = None,
                  cache_dir: str | Path | None = None, num_threads: int | None = None,
                  warmup_runs: int = 1, canonical_focal_px: float | None = None,
                  max_pixels: int | None = None) -> "DepthRuntime":
        """Load a model for inference.

        Args:
            path: a checkpoint (.safetensors, official .ckpt), "default", an exported .onnx or a TensorRT engine.
            backend: "auto" (fastest available) | "torch" | "onnxruntime" | "tensorrt".
            device: "cpu" | "cuda".
            precision: "fp32" | "fp16" | "int8". An exported FP16/INT8 .onnx runs at its own precision;
                from a checkpoint or FP32 .onnx, fp16 is derived (and cached), int8 needs the calibrated
                Q/DQ .onnx from ``python -m urcdc_model.export --precision int8 --calib-images DIR``.
            input_size: pin the network to this (height, width) for every frame (frames are fitted
                into it); default: the network size follows the camera (checkpoints, dynamic ONNX).
            max_depth: override the model's max depth in metres (checkpoints only).
            cache_dir: where exported ONNX models / engines are cached (default: :func:`default_cache_dir`).
            num_threads: CPU threads: onnxruntime intra-op threads of this session, or torch's
                (process-wide) for the torch backend; default: all cores.
            warmup_runs: inferences run once at load so the first real frame is not slow; skipped where
                the network size follows the camera and each size is its own export or engine (the
                first frame of a camera pays for its own size; a guessed size would cost an export no
                camera uses).
            canonical_focal_px: override the model's canonical focal length (px at its training size).
            max_pixels: compute budget per frame, in network pixels.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got '{precision}'")
        source = ModelSource.resolve(path)
        try:
            chosen = choose_backend(backend, device, source.kind)
        except BackendUnavailableError:
            if source.kind == "onnx":
                read_onnx_metadata(source.path)  # a bad file is the first thing to fix: say so (ModelFileError)
            raise
        cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        if input_size is not None:
            input_size = check_input_size(input_size)
        if max_depth is not None and source.kind != "checkpoint":
            raise ValueError(f"{source.path}: max_depth is fixed inside an exported model; re-export with "
                             "`python -m urcdc_model.export --max-depth M`")
        if canonical_focal_px is not None and not (math.isfinite(canonical_focal_px) and canonical_focal_px > 0):
            raise ValueError(f"canonical_focal_px must be a positive number of pixels, got {canonical_focal_px}")
        options = dict(device=device, precision=precision, input_size=input_size, cache=cache,
                       num_threads=num_threads, canonical_focal_px=canonical_focal_px, max_pixels=max_pixels)
        if source.kind == "checkpoint":
            runtime = cls._from_checkpoint(source.path, chosen, max_depth=max_depth, **options)
        elif source.kind == "onnx":
            runtime = cls._from_onnx(source.path, chosen, **options)
        else:
            runtime = cls._from_engine(source.path, **options)
        runtime.warmup(warmup_runs)
        LOG.info("DepthRuntime: %s on %s (%s), canonical focal %.1f px at %dx%d, network %s", runtime.backend,
                 device, precision, runtime.canonical.focal_px, *runtime.input_size,
                 "%dx%d" % runtime.network_size if runtime.network_size else "sized per camera")
        return runtime

    @classmethod
    def _from_checkpoint(cls, path: Path, backend: str, *, device: str, precision: str,
                         input_size: tuple[int, int] | None, max_depth: float | None, cache: Path,
                         num_threads: int | None, canonical_focal_px: float | None,
                         max_pixels: int | None) -> "DepthRuntime":
        if max_depth is not None and max_depth <= 0:
            raise ValueError(f"max_depth must be > 0 metres, got {max_depth}")
        # max_depth also names the scale of official checkpoints, which store no config (80 m KITTI, 10 m NYU)
        model, cfg, meta = load_model(path, with_cnn=False, map_location="cpu", max_depth=max_depth)
        max_depth_m = float(cfg.max_depth)
        official = "input_height" not in meta
        canonical = _canonical(meta, None if official else checkpoint_input_size(meta, path), max_depth_m,
                               official, canonical_focal_px)
        deploy = DeployModel(model, max_depth=max_depth_m).eval()
        if backend == "torch":
            if num_threads:
                torch.set_num_threads(num_threads)
            engine = TorchBackend(deploy, device, precision)
            return cls(lambda size: engine, "torch", canonical, max_depth_m, device, precision, input_size, max_pixels)

        if backend == "onnxruntime" and precision == "int8":
            raise _int8_needs_calibration()
        opset = tensorrt_opset() if backend == "tensorrt" else ONNX_OPSET

        def engine_for_size(size: tuple[int, int]) -> Backend:
            onnx_path = cached_onnx_export(deploy, checkpoint_path=path, height=size[0], width=size[1],
                                           max_depth=max_depth_m, cache_dir=cache, opset=opset,
                                           metadata={"urcdc.train_height": canonical.train_size[0],
                                                     "urcdc.train_width": canonical.train_size[1],
                                                     "urcdc.canonical_focal_px": canonical.focal_px})
            if backend == "onnxruntime":
                onnx_path = _onnxruntime_model(onnx_path, "fp32", precision, cache, size)
                return OnnxRuntimeBackend(onnx_path, device, precision, cache, num_threads)
            engine_path = cached_engine_build(onnx_path, height=size[0], width=size[1], precision=precision,
                                              max_depth=max_depth_m, cache_dir=cache)
            return TensorRTBackend(engine_path)

        return cls(engine_for_size, backend, canonical, max_depth_m, device, precision, input_size, max_pixels,
                   builds_per_size=True)

    @classmethod
    def _from_onnx(cls, path: Path, backend: str, *, device: str, precision: str,
                   input_size: tuple[int, int] | None, cache: Path, num_threads: int | None,
                   canonical_focal_px: float | None, max_pixels: int | None) -> "DepthRuntime":
        meta = read_onnx_metadata(path)
        static = onnx_run_size(meta, input_size, path) if meta["height"] is not None else None
        network_size = static or input_size
        canonical = _canonical(meta, _train_size(meta, static), meta["max_depth"], False, canonical_focal_px)
        if meta["precision"] != "fp32":
            if precision not in ("fp32", meta["precision"]):  # fp32 is the default: "not asked"
                raise ValueError(f"{path} is a {meta['precision']} model; precision='{precision}' was asked "
                                 "(pass the FP32 export to run another precision)")
            precision = meta["precision"]
        if backend == "onnxruntime":
            path = _onnxruntime_model(path, meta["precision"], precision, cache, network_size or canonical.train_size)
            session = OnnxRuntimeBackend(path, device, precision, cache, num_threads)
            return cls(lambda size: session, backend, canonical, meta["max_depth"], device, precision,
                       network_size, max_pixels)

        def engine_for_size(size: tuple[int, int]) -> Backend:
            return TensorRTBackend(cached_engine_build(path, height=size[0], width=size[1], precision=precision,
                                                       max_depth=meta["max_depth"], cache_dir=cache))

        return cls(engine_for_size, backend, canonical, meta["max_depth"], device, precision, network_size,
                   max_pixels, builds_per_size=True)

    @classmethod
    def _from_engine(cls, path: Path, *, device: str, precision: str, input_size: tuple[int, int] | None,
                     canonical_focal_px: float | None, max_pixels: int | None, **_unused) -> "DepthRuntime":
        meta = read_engine_metadata(path)
        size = (int(meta["height"]), int(meta["width"]))
        if input_size is not None and input_size != size and not meta.get("dynamic"):
            raise ValueError(f"{path}: engine built for {size[0]}x{size[1]}, input_size={input_size} "
                             "was asked; build another engine")
        canonical = _canonical(meta, _train_size(meta, size), meta["max_depth"], False, canonical_focal_px)
        engine = TensorRTBackend(path)
        return cls(lambda _size: engine, "tensorrt", canonical, meta["max_depth"], device,
                   meta.get("precision", precision), input_size or size, max_pixels)

    # -- geometry -------------------------------------------------------------------------------

    def plan(self, frame_hw: tuple[int, int], intrinsics=None,
             stride: int | tuple[int, int] = DEFAULT_STRIDE) -> InputPlan:
        """The input plan for a frame size and camera (cached: a camera's plan is made once)."""
        k = None if intrinsics is None else np.asarray(intrinsics, dtype=np.float64)
        key = (tuple(frame_hw), None if k is None else k.tobytes(), stride)
        plan = self._plans.get(key)
        if plan is None:
            plan = plan_input(frame_hw, self.canonical, k, stride=stride, max_pixels=self.max_pixels,
                              network_hw=self.network_size)
            self._plans[key] = plan
            if len(self._plans) > MAX_CACHED_PLANS:
                self._plans.popitem(last=False)
        return plan

    def _engine(self, network_hw: tuple[int, int]) -> Backend:
        engine = self._engines.get(network_hw)
        if engine is None:
            engine = self._engine_for_size(network_hw)
            self._engines[network_hw] = engine
            if len(self._engines) > MAX_CACHED_ENGINES:  # a camera that keeps changing size must not leak models
                self._engines.popitem(last=False)
        else:
            self._engines.move_to_end(network_hw)
        return engine

    # -- inference --------------------------------------------------------------------------

    def preprocess(self, rgb_uint8_hwc: np.ndarray, intrinsics=None) -> tuple[np.ndarray, InputPlan]:
        """uint8 H×W×3 RGB → (normalised 1×3×h×w float32 network input, the plan that made it)."""
        _check_rgb(rgb_uint8_hwc)
        plan = self.plan(rgb_uint8_hwc.shape[:2], intrinsics)
        return normalize_rgb_array(plan.image_to_network(rgb_uint8_hwc))[None], plan

    def infer(self, rgb_uint8_hwc: np.ndarray, intrinsics=None, flip_tta: bool = False
              ) -> tuple[np.ndarray, np.ndarray]:
        """Depth and expected absolute error, both float32 metres on the input image's H×W grid.

        Args:
            intrinsics: the frame's 3×3 K (pixels of this image), or None for the fallback (the
                training images' field of view).
            flip_tta: also run the mirrored frame and blend both with the official test script's border
                blend; twice the network time.
        Raises:
            ValueError: not a uint8 RGB image, or intrinsics that cannot describe this frame.
        """
        _check_rgb(rgb_uint8_hwc)
        plan = self.plan(rgb_uint8_hwc.shape[:2], intrinsics)
        depth_m, uncertainty_m = self._infer_plan(rgb_uint8_hwc, plan)
        if flip_tta:
            width = rgb_uint8_hwc.shape[1]
            mirrored = self.plan(rgb_uint8_hwc.shape[:2], mirror_intrinsics(plan.intrinsics, width))
            depth_flip, uncertainty_flip = self._infer_plan(np.ascontiguousarray(rgb_uint8_hwc[:, ::-1]), mirrored)
            depth_m = flip_blend_array(depth_m, depth_flip)
            uncertainty_m = flip_blend_array(uncertainty_m, uncertainty_flip)
        return depth_m, uncertainty_m

    def _infer_plan(self, rgb_uint8_hwc: np.ndarray, plan: InputPlan) -> tuple[np.ndarray, np.ndarray]:
        """One network pass through ``plan``: depth and uncertainty in metres on the frame's grid."""
        engine = self._engine(plan.network_hw)
        if self._device_io is not None and hasattr(engine, "run_tensor"):
            return self._device_io.infer(engine.run_tensor, rgb_uint8_hwc, plan, self.max_depth)
        image = normalize_rgb_array(plan.image_to_network(rgb_uint8_hwc))[None]
        depth_m, uncertainty_m = engine.run(image)
        depth_m, uncertainty_m = plan.output_to_frame(depth_m), plan.output_to_frame(uncertainty_m)
        if plan.depth_scale > 1.0:  # the model's range is [0, max_depth]; scaled beyond it means "far"
            np.minimum(depth_m, self.max_depth, out=depth_m)
            np.minimum(uncertainty_m, self.max_depth, out=uncertainty_m)
        return depth_m, uncertainty_m

    def warmup(self, runs: int = 1) -> None:
        """Run a few frames so lazy initialisation (export, allocations, kernel selection) happens now.

        Not where the size follows the camera and every size is its own export or engine: which size
        the first camera needs is unknown until it arrives."""
        if self.network_size is None and self._builds_per_size:
            return
        height, width = self.network_size or self.input_size
        frame = np.zeros((height, width, 3), np.uint8)
        for _ in range(max(0, runs)):
            self.infer(frame)

    def __repr__(self) -> str:
        return (f"DepthRuntime(backend={self.backend!r}, device={self.device!r}, precision={self.precision!r}, "
                f"canonical_focal_px={self.canonical.focal_px:.1f}, input_size={self.input_size}, "
                f"network_size={self.network_size}, max_depth={self.max_depth})")


# ---------------------------------------------------------------------------------------------
# Helpers


def _check_rgb(rgb: np.ndarray) -> None:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        shape = getattr(rgb, "shape", None)
        dtype = getattr(rgb, "dtype", type(rgb).__name__)
        raise ValueError(f"infer() expects an RGB image as a uint8 numpy array H×W×3, got shape {shape} dtype {dtype}")


def _onnxruntime_model(onnx_path: Path, file_precision: str, precision: str, cache: Path,
                       size: tuple[int, int]) -> Path:
    """The ONNX onnxruntime runs for ``precision``: the file itself, or its cached FP16 conversion
    (verified at ``size``)."""
    if precision == file_precision:
        return onnx_path
    if precision == "fp16":
        return cached_converted_onnx(onnx_path, "fp16", cache, size)
    raise _int8_needs_calibration()


def _int8_needs_calibration() -> BackendUnavailableError:
    return BackendUnavailableError(
        "precision='int8' runs a Q/DQ ONNX calibrated on your camera's images: `python -m urcdc_model.export "
        "--checkpoint CKPT --format onnx --precision int8 --calib-images DIR --output model_int8.onnx`, then "
        "DepthRuntime.from_path('model_int8.onnx', backend='onnxruntime')")


def _train_size(meta: dict, fallback: tuple[int, int] | None) -> tuple[int, int] | None:
    """The training size recorded in an export's metadata, else ``fallback``."""
    if "train_height" in meta and "train_width" in meta:
        return int(meta["train_height"]), int(meta["train_width"])
    return fallback


def _canonical(meta: dict, train_size: tuple[int, int] | None, max_depth_m: float, official: bool,
               focal_override: float | None) -> CanonicalCamera:
    canonical = canonical_camera_from_meta(meta, train_size or FALLBACK_INPUT_SIZE, max_depth_m, official)
    if focal_override is not None:
        canonical = CanonicalCamera(float(focal_override), canonical.train_size)
    return canonical
