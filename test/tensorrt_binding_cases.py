"""The TensorRT build/run code against one version's REAL Python bindings, with no GPU.

Not collected by the normal run (the name does not start with ``test_``): test_tensorrt_bindings.py
runs this file in a subprocess per TensorRT version, with that version's binding wheel on
PYTHONPATH and stub native libraries on LD_LIBRARY_PATH. The bindings' classes and enums are the
real ones; every object TensorRT would create (Builder, network, config, parser, runtime, engine,
context) is a ``create_autospec(real_class, spec_set=True)`` instance, so touching an attribute,
method or enum member the version does not have raises AttributeError exactly as on a GPU machine.
CUDA is mocked where torch needs it; buffers live on the CPU and the "engine" computes with NumPy.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path
from unittest import mock

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

trt = pytest.importorskip("tensorrt")
if not os.environ.get("URCDC_TRT_BINDINGS_UNDER_TEST"):
    pytest.skip("run through test_tensorrt_bindings.py (stubbed native libraries)", allow_module_level=True)

from urcdc_model.deploy import tensorrt as trt_mod  # noqa: E402
from urcdc_model.deploy.errors import BackendUnavailableError  # noqa: E402
from urcdc_model.deploy.tensorrt_compat import TensorRTCapabilities, parse_version  # noqa: E402

VERSION = parse_version(trt.__version__)
STRONGLY_TYPED_EXPECTED = VERSION[:2] >= (10, 12)
H, W = 32, 48
GPU = "NVIDIA Test GPU"
MAX_DEPTH_M = 10.0


def _spec(cls):
    return mock.create_autospec(cls, spec_set=True, instance=True)


def _reference_depth(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What the tiny model computes: depth = 10·sigmoid(mean over channels), uncertainty = 0.1·depth."""
    depth = MAX_DEPTH_M / (1.0 + np.exp(-image.mean(axis=1, keepdims=True)))
    return depth.astype(np.float32), (0.1 * depth).astype(np.float32)


def _tiny_onnx(path: Path, precision: str, dynamic: bool = False) -> Path:
    """A real ONNX with our I/O names and metadata that onnxruntime runs (the FP32 reference)."""
    hw = ["height", "width"] if dynamic else [H, W]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, *hw])
    depth = helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 1, *hw])
    unc = helper.make_tensor_value_info("uncertainty", TensorProto.FLOAT, [1, 1, *hw])
    nodes = [helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1], keepdims=1),
             helper.make_node("Sigmoid", ["mean"], ["sig"]),
             helper.make_node("Mul", ["sig", "ten"], ["depth"]),
             helper.make_node("Mul", ["depth", "tenth"], ["uncertainty"])]
    inits = [helper.make_tensor("ten", TensorProto.FLOAT, [], [MAX_DEPTH_M]),
             helper.make_tensor("tenth", TensorProto.FLOAT, [], [0.1])]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [image], [depth, unc], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    props = {"urcdc.max_depth": str(MAX_DEPTH_M), "urcdc.precision": precision}
    if precision == "int8":
        props["urcdc.int8_target"] = "tensorrt"
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


class FakeGPU:
    """The TensorRT objects of one build/run, as strict autospecs of the real classes."""

    def __init__(self, engine_scale: float = 1.0):
        self.builder = _spec(trt.Builder)
        self.network = _spec(trt.INetworkDefinition)
        self.config = _spec(trt.IBuilderConfig)
        self.profile = _spec(trt.IOptimizationProfile)
        self.timing_cache = _spec(trt.ITimingCache)
        self.parser = _spec(trt.OnnxParser)
        self.runtime = _spec(trt.Runtime)
        self.engine = _spec(trt.ICudaEngine)
        self.context = _spec(trt.IExecutionContext)
        self.builder.create_network.return_value = self.network
        self.builder.create_builder_config.return_value = self.config
        self.builder.create_optimization_profile.return_value = self.profile
        self.builder.build_serialized_network.return_value = b"serialized-engine"
        self.config.create_timing_cache.return_value = self.timing_cache
        self.config.get_timing_cache.return_value = self.timing_cache
        self.timing_cache.serialize.return_value = b"timings"
        self.parser.parse_from_file.return_value = True
        self.runtime.deserialize_cuda_engine.return_value = self.engine
        self.engine.create_execution_context.return_value = self.context
        self.engine.get_tensor_dtype.return_value = trt.float32
        self.addresses: dict[str, int] = {}
        self.shapes: dict[str, tuple] = {}
        self.engine_scale = engine_scale
        self.context.set_input_shape.side_effect = lambda name, shape: self.shapes.__setitem__(name, tuple(shape))
        self.context.set_tensor_address.side_effect = lambda name, ptr: self.addresses.__setitem__(name, ptr)
        self.context.get_tensor_shape.side_effect = lambda name: trt.Dims((1, 1, *self.shapes["image"][2:]))
        self.context.execute_async_v3.side_effect = self._execute

    def _execute(self, stream_handle) -> bool:
        """The 'GPU': read the bound input buffer, write the outputs into the bound output buffers."""
        shape = self.shapes["image"]
        count = int(np.prod(shape))
        image = np.ctypeslib.as_array((ctypes.c_float * count).from_address(self.addresses["image"])).reshape(shape)
        for name, value in zip(("depth", "uncertainty"), _reference_depth(image)):
            out = np.ctypeslib.as_array((ctypes.c_float * value.size).from_address(self.addresses[name]))
            out[:] = (value * self.engine_scale).ravel()
        return True

    def patches(self):
        return [mock.patch.object(trt, "Builder", return_value=self.builder),
                mock.patch.object(trt, "OnnxParser", return_value=self.parser),
                mock.patch.object(trt, "Runtime", return_value=self.runtime),
                mock.patch.object(torch.cuda, "is_available", return_value=True),
                mock.patch.object(torch.cuda, "get_device_name", return_value=GPU),
                mock.patch.object(torch.cuda, "get_device_capability", return_value=(8, 7)),
                mock.patch.object(torch.cuda, "Stream"),
                mock.patch.object(torch.cuda, "current_stream"),
                # buffers on the CPU: the fake engine reads and writes them through their addresses
                mock.patch.object(trt_mod.TensorRTEngineRunner.__init__, "__defaults__", ("cpu",))]


@pytest.fixture
def gpu():
    fake = FakeGPU()
    patches = fake.patches()
    for p in patches:
        p.start()
    yield fake
    for p in reversed(patches):
        p.stop()


def _network_flags(fake: FakeGPU) -> int:
    (flags,), _ = fake.builder.create_network.call_args
    return flags


def _flag_bit(name: str) -> int:
    return 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))


def _set_flags(fake: FakeGPU) -> set:
    return {c.args[0] for c in fake.config.set_flag.call_args_list}


def _build(tmp_path: Path, precision: str, **options) -> Path:
    caps = TensorRTCapabilities.for_version(trt.__version__)
    from urcdc_model.deploy.tensorrt_compat import build_plan

    onnx_path = _tiny_onnx(tmp_path / f"model_{precision}.onnx", build_plan(caps, precision).onnx_precision,
                           dynamic=options.get("dynamic", False))
    return trt_mod.build_engine(onnx_path, tmp_path / f"m_{precision}.engine", H, W, precision, MAX_DEPTH_M,
                                timing_cache=tmp_path / "timing.cache", **options)


def test_fp32_build(gpu, tmp_path):
    engine = _build(tmp_path, "fp32")
    assert engine.read_bytes() == b"serialized-engine"
    assert (tmp_path / "timing.cache").read_bytes() == b"timings"
    flags = _network_flags(gpu)
    if VERSION[0] < 10:
        assert flags == _flag_bit("EXPLICIT_BATCH")
    elif VERSION[0] >= 11:
        assert flags == _flag_bit("STRONGLY_TYPED")  # weak typing is gone
    else:
        assert flags == 0
    assert _set_flags(gpu) == set()
    gpu.config.set_memory_pool_limit.assert_called_once_with(trt.MemoryPoolType.WORKSPACE, trt_mod.DEFAULT_WORKSPACE_BYTES)
    gpu.profile.set_shape.assert_called_once_with("image", (1, 3, H, W), (1, 3, H, W), (1, 3, H, W))
    meta = trt_mod.read_engine_metadata(engine)
    assert (meta["precision"], meta["tensorrt_version"], meta["gpu_name"]) == ("fp32", trt.__version__, GPU)


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_build(gpu, tmp_path, precision):
    """Strongly typed (the ONNX decides) from 10.12; BuilderFlag.FP16/INT8 before, where they exist."""
    _build(tmp_path, precision)
    flags = _network_flags(gpu)
    if STRONGLY_TYPED_EXPECTED:
        assert flags & _flag_bit("STRONGLY_TYPED")
        assert _set_flags(gpu) == set()
    else:
        assert _set_flags(gpu) == ({trt.BuilderFlag.FP16} if precision == "fp16"
                                   else {trt.BuilderFlag.INT8, trt.BuilderFlag.FP16})
    assert trt_mod.read_engine_metadata(tmp_path / f"m_{precision}.engine")["precision"] == precision


def test_dynamic_shape_profile(gpu, tmp_path):
    _build(tmp_path, "fp16", dynamic=True, min_size=(32, 32))
    gpu.profile.set_shape.assert_called_once_with("image", (1, 3, 32, 32), (1, 3, H, W), (1, 3, H, W))
    gpu.config.add_optimization_profile.assert_called_once_with(gpu.profile)
    assert trt_mod.read_engine_metadata(tmp_path / "m_fp16.engine")["dynamic"] is True


def test_wrong_onnx_precision_for_this_version_is_refused(gpu, tmp_path):
    onnx_path = _tiny_onnx(tmp_path / "m.onnx", "fp32")
    if not STRONGLY_TYPED_EXPECTED:
        pytest.skip("weakly typed TensorRT builds FP16 from the FP32 ONNX")
    with pytest.raises(ValueError, match=f"TensorRT {trt.__version__} builds fp16 engines from a fp16 ONNX"):
        trt_mod.build_engine(onnx_path, tmp_path / "m.engine", H, W, "fp16", MAX_DEPTH_M)


def test_int8_onnx_quantized_for_onnxruntime_is_refused(gpu, tmp_path):
    onnx_path = _tiny_onnx(tmp_path / "m.onnx", "int8")
    model = onnx.load(str(onnx_path))
    next(p for p in model.metadata_props if p.key == "urcdc.int8_target").value = "onnxruntime"
    onnx.save(model, str(onnx_path))
    with pytest.raises(ValueError, match="quantized for onnxruntime .INT32 biases"):
        trt_mod.build_engine(onnx_path, tmp_path / "m.engine", H, W, "int8", MAX_DEPTH_M)
    gpu.builder.create_network.assert_not_called()


def test_parser_error_is_one_line_naming_the_version(gpu, tmp_path):
    gpu.parser.parse_from_file.return_value = False
    type(gpu.parser).num_errors = mock.PropertyMock(return_value=1)
    gpu.parser.get_error.return_value = "No importer registered for op: LayerNormalization"
    with pytest.raises(BackendUnavailableError) as info:
        _build(tmp_path, "fp32")
    message = str(info.value)
    assert f"TensorRT {trt.__version__}" in message and "LayerNormalization" in message and "--opset" in message
    assert "\n" not in message and not list(tmp_path.glob("*.engine"))


def test_failed_build_names_version_gpu_and_precision(gpu, tmp_path):
    gpu.builder.build_serialized_network.return_value = None
    with pytest.raises(BackendUnavailableError, match=f"TensorRT {trt.__version__} on {GPU}.*fp16"):
        _build(tmp_path, "fp16")


def test_engine_runner_binds_buffers_and_returns_outputs(gpu, tmp_path):
    engine = _build(tmp_path, "fp32")
    runner = trt_mod.TensorRTEngineRunner(engine)
    image = torch.randn(1, 3, H, W)
    depth, unc = runner(image)
    expected_depth, expected_unc = _reference_depth(image.numpy())
    np.testing.assert_allclose(depth.numpy(), expected_depth, rtol=1e-6)
    np.testing.assert_allclose(unc.numpy(), expected_unc, rtol=1e-6)
    gpu.context.set_input_shape.assert_called_once_with("image", (1, 3, H, W))
    assert set(gpu.addresses) == {"image", "depth", "uncertainty"}


def test_verified_engine_is_kept(gpu, tmp_path):
    onnx_fp32 = _tiny_onnx(tmp_path / "ref.onnx", "fp32")
    batches = {f"img{i}": np.random.default_rng(i).normal(size=(1, 3, H, W)).astype(np.float32) for i in range(2)}
    engine, errors = trt_mod.build_verified_engine(onnx_fp32, tmp_path / "ok.engine", H, W, "fp32", MAX_DEPTH_M,
                                                   reference_onnx=onnx_fp32, verify=batches)
    assert engine.is_file() and len(errors) == 2 and max(e.depth_mean_rel for e in errors) < 1e-5


def test_wrong_engine_is_deleted_with_version_gpu_and_precision(gpu, tmp_path):
    """An engine that builds but computes 3 % too deep (the 'unstable scale' reports) is not kept."""
    gpu.engine_scale = 1.03
    onnx_fp32 = _tiny_onnx(tmp_path / "ref.onnx", "fp32")
    batches = {"img": np.random.default_rng(0).normal(size=(1, 3, H, W)).astype(np.float32)}
    with pytest.raises(trt_mod.EngineVerificationError) as info:
        trt_mod.build_verified_engine(onnx_fp32, tmp_path / "bad.engine", H, W, "fp32", MAX_DEPTH_M,
                                      reference_onnx=onnx_fp32, verify=batches)
    message = str(info.value)
    assert f"TensorRT {trt.__version__} on {GPU}" in message and "(fp32)" in message and "deleted bad.engine" in message
    assert isinstance(info.value, BackendUnavailableError)
    assert not (tmp_path / "bad.engine").exists() and not (tmp_path / "bad.engine.json").exists()


def test_cached_build_derives_fp16_and_refuses_int8_without_calibration(gpu, tmp_path, monkeypatch):
    onnx_fp32 = _tiny_onnx(tmp_path / "ref.onnx", "fp32")
    batches = {"img": np.random.default_rng(0).normal(size=(1, 3, H, W)).astype(np.float32)}
    from urcdc_model.deploy import precision as precision_mod

    for module in (trt_mod, precision_mod):  # the tiny model needs no street scenes
        monkeypatch.setattr(module, "rendered_batches", lambda h, w: batches)
    engine = trt_mod.cached_engine_build(onnx_fp32, H, W, "fp16", MAX_DEPTH_M, tmp_path / "cache")
    assert engine.is_file() and trt_mod.read_engine_metadata(engine)["precision"] == "fp16"
    derived = list((tmp_path / "cache" / "onnx").glob("*_fp16_*.onnx"))
    assert len(derived) == (1 if STRONGLY_TYPED_EXPECTED else 0)
    assert trt_mod.cached_engine_build(onnx_fp32, H, W, "fp16", MAX_DEPTH_M, tmp_path / "cache") == engine
    assert gpu.builder.build_serialized_network.call_count == 1  # reused, not rebuilt
    with pytest.raises(BackendUnavailableError, match="--precision int8 --calib-images"):
        trt_mod.cached_engine_build(onnx_fp32, H, W, "int8", MAX_DEPTH_M, tmp_path / "cache")


def test_an_api_this_version_lacks_becomes_one_line(gpu, tmp_path, monkeypatch):
    """If the version table were wrong (weak-typing flags on a version without them), the user gets one
    line naming the version, not a traceback from inside the bindings."""
    from urcdc_model.deploy import tensorrt_compat

    lying = tensorrt_compat.BuildPlan("fp32", (), ("FP16", "NO_SUCH_FLAG"))
    monkeypatch.setattr(trt_mod, "build_plan", lambda caps, precision: lying)
    with pytest.raises(BackendUnavailableError, match=f"TensorRT {trt.__version__}: this version lacks an API"):
        _build(tmp_path, "fp32")


def test_no_gpu_is_one_line(tmp_path):
    """The real Builder with the stub libraries returns nullptr, as libnvinfer does when CUDA cannot start."""
    onnx_path = _tiny_onnx(tmp_path / "m.onnx", "fp32")
    with mock.patch.object(torch.cuda, "is_available", return_value=True), \
            mock.patch.object(torch.cuda, "get_device_name", return_value=GPU), \
            mock.patch.object(torch.cuda, "get_device_capability", return_value=(8, 7)):
        with pytest.raises(BackendUnavailableError, match="could not initialise CUDA"):
            trt_mod.build_engine(onnx_path, tmp_path / "m.engine", H, W, "fp32", MAX_DEPTH_M)
