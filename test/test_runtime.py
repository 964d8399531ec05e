"""DepthRuntime: backends agree, ONNX cache, clear errors; uncertainty maths; TensorRT cache keys; bench output."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch

from urcdc_model.deploy import onnx_export as export_mod
from urcdc_model.deploy.bench import BenchRow, format_table, write_benchmarks_md
from urcdc_model.deploy.tensorrt import BuildIdentity, engine_cache_key, timing_cache_path
from urcdc_model.deploy.backends import cuda_available, tensorrt_available
from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.runtime import DepthRuntime
from urcdc_model.deploy.uncertainty import (
    MIN_INFORMATIVE_CONFIDENCE,
    confidence_to_uncertainty_m,
    target_confidence,
    uncertainty_m_to_confidence,
)

INPUT_HW = (64, 96)  # small network input keeps the tests fast; the frames themselves are full size


@pytest.fixture(scope="module")
def nano_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised nano model saved like a trained one (training size in the metadata)."""
    from urcdc_model.checkpoints import save_model
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=False, max_depth=80.0)
    path = tmp_path_factory.mktemp("ckpt") / "nano.safetensors"
    save_model(path, URCDCDepth(cfg).eval(), cfg, meta={"input_height": INPUT_HW[0], "input_width": INPUT_HW[1]})
    return path


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("urcdc_cache")


@pytest.fixture(scope="module")
def frame(shared_data) -> np.ndarray:
    """A real KITTI frame (1242×375), RGB uint8."""
    path = sorted((shared_data / "kitti_depth_annotated" / "rgb").glob("*.png"))[0]
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def _rel_err(actual: np.ndarray, expected: np.ndarray) -> float:
    return export_mod.max_relative_error(actual, expected)


# --- backends agree ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch_runtime(nano_checkpoint) -> DepthRuntime:
    return DepthRuntime.from_path(nano_checkpoint, backend="torch")


@pytest.fixture(scope="module")
def ort_runtime(nano_checkpoint, cache_dir) -> DepthRuntime:
    return DepthRuntime.from_path(nano_checkpoint, backend="onnxruntime", cache_dir=cache_dir)


def test_torch_runtime_reports_size_depth_and_backend(torch_runtime, frame):
    assert torch_runtime.backend == "torch"
    assert torch_runtime.input_size == INPUT_HW
    assert torch_runtime.max_depth == 80.0
    depth_m, uncertainty_m = torch_runtime.infer(frame)
    assert depth_m.shape == uncertainty_m.shape == frame.shape[:2]
    assert depth_m.dtype == uncertainty_m.dtype == np.float32
    assert np.isfinite(depth_m).all() and (depth_m > 0).all() and (depth_m <= 80.0 + 1e-3).all()
    assert (uncertainty_m >= 0).all() and (uncertainty_m <= 80.0 + 1e-3).all()


def test_flip_tta_blends_a_mirrored_pass_with_the_mirrored_camera(nano_checkpoint, frame, monkeypatch):
    """The mirrored frame runs through the plan of the mirrored K and is blended back on the frame's grid."""
    from urcdc_model.deploy.geometry import mirror_intrinsics
    from urcdc_model.inference import flip_blend_array

    runtime = DepthRuntime.from_path(nano_checkpoint, backend="torch", warmup_runs=0)
    frame = np.ascontiguousarray(frame[:, 450:750])
    height, width = frame.shape[:2]
    k = np.array([[700.0, 0.0, 130.0], [0.0, 700.0, 180.0], [0.0, 0.0, 1.0]])     # off-centre
    sizes = []
    engine = runtime._engine
    monkeypatch.setattr(runtime, "_engine", lambda hw: sizes.append(hw) or engine(hw))
    depth, uncertainty = runtime.infer(frame, k, flip_tta=True)
    assert sizes == [runtime.plan(frame.shape[:2], k).network_hw] * 2
    # the same blend from two public single passes: the frame with K, the mirrored frame with its K
    one, one_u = runtime.infer(frame, k)
    other, other_u = runtime.infer(np.ascontiguousarray(frame[:, ::-1]), mirror_intrinsics(k, width))
    np.testing.assert_allclose(depth, flip_blend_array(one, other), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(uncertainty, flip_blend_array(one_u, other_u), rtol=1e-5, atol=1e-5)
    assert not np.allclose(depth, one, rtol=1e-3)


def test_onnxruntime_agrees_with_torch_on_a_real_frame(torch_runtime, ort_runtime, frame):
    assert ort_runtime.backend == "onnxruntime"
    depth_t, unc_t = torch_runtime.infer(frame)
    depth_o, unc_o = ort_runtime.infer(frame)
    assert depth_o.shape == frame.shape[:2]
    assert _rel_err(depth_o, depth_t) < 1e-3
    assert _rel_err(unc_o, unc_t) < 1e-3


def test_onnxruntime_path_never_calls_torch(ort_runtime, frame, monkeypatch):
    """Preprocessing stays in NumPy off the torch backend: torch's thread pool would compete with
    onnxruntime's on a small CPU (measured 116 ms instead of 2.5 ms per frame on 2 cores)."""
    import torch

    def no_torch(*args, **kwargs):
        raise AssertionError("torch was called on the onnxruntime path")

    for name in ("from_numpy", "tensor", "as_tensor"):
        monkeypatch.setattr(torch, name, no_torch)
    image, plan = ort_runtime.preprocess(frame)
    assert isinstance(image, np.ndarray) and image.dtype == np.float32 and image.shape == (1, 3, *plan.network_hw)
    depth, uncertainty = ort_runtime.infer(frame)
    assert depth.shape == uncertainty.shape == frame.shape[:2] and np.isfinite(depth).all()


def test_onnx_export_is_cached_per_checkpoint_and_network_size(nano_checkpoint, cache_dir, ort_runtime, frame,
                                                                monkeypatch):
    """Static exports, one per network size the cameras need, made once and reused."""
    network_hw = ort_runtime.plan(frame.shape[:2]).network_hw
    ort_runtime.infer(frame)
    cached = {p.name.split("_")[1]: p for p in (cache_dir / "onnx").glob("*.onnx")}
    assert set(cached) == {f"{network_hw[0]}x{network_hw[1]}"}
    camera_export = cached[f"{network_hw[0]}x{network_hw[1]}"]
    graph = onnx.load(str(camera_export), load_external_data=False).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [1, 3, *network_hw]  # static
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["depth", "uncertainty"]

    def no_export(*args, **kwargs):
        raise AssertionError("the cached ONNX should have been reused")

    monkeypatch.setattr(export_mod, "export_verified_onnx", no_export)
    again = DepthRuntime.from_path(nano_checkpoint, backend="onnxruntime", cache_dir=cache_dir)
    again.infer(frame)
    assert again.input_size == INPUT_HW and again.network_size is None
    # An exported .onnx also loads directly, with its size, max depth and canonical camera read from the file.
    direct = DepthRuntime.from_path(camera_export, backend="auto", warmup_runs=0)
    assert (direct.backend, direct.network_size, direct.max_depth) == ("onnxruntime", network_hw, 80.0)
    assert direct.canonical == ort_runtime.canonical
    depth_direct, _ = direct.infer(frame)  # fitted into the static size, still metric
    assert depth_direct.shape == frame.shape[:2] and np.isfinite(depth_direct).all()


def test_loading_for_per_size_exports_exports_nothing_until_a_camera_arrives(nano_checkpoint, tmp_path, frame):
    """The load-time warm-up would have to guess the size, and a wrong guess is an export no camera uses."""
    runtime = DepthRuntime.from_path(nano_checkpoint, backend="onnxruntime", cache_dir=tmp_path, warmup_runs=1)
    assert not list(tmp_path.rglob("*.onnx"))
    runtime.infer(frame)
    camera_size = "%dx%d" % runtime.plan(frame.shape[:2]).network_hw
    assert [p.name.split("_")[1] for p in tmp_path.rglob("*.onnx")] == [camera_size]
    pinned = DepthRuntime.from_path(nano_checkpoint, backend="onnxruntime", cache_dir=tmp_path / "pinned",
                                    input_size=INPUT_HW, warmup_runs=1)        # a fixed size is warmed at load
    assert [p.name.split("_")[1] for p in (tmp_path / "pinned").rglob("*.onnx")] == ["%dx%d" % INPUT_HW]
    assert pinned.network_size == INPUT_HW


def test_auto_picks_onnxruntime_on_cpu(nano_checkpoint, cache_dir):
    rt = DepthRuntime.from_path(nano_checkpoint, backend="auto", device="cpu", cache_dir=cache_dir, warmup_runs=0)
    assert rt.backend == "onnxruntime"


def test_max_depth_override_rescales_depth(nano_checkpoint, torch_runtime, frame):
    near = DepthRuntime.from_path(nano_checkpoint, backend="torch", max_depth=10.0, warmup_runs=0)
    assert near.max_depth == 10.0
    depth_far, _ = torch_runtime.infer(frame)
    depth_near, _ = near.infer(frame)
    np.testing.assert_allclose(depth_near, depth_far * (10.0 / 80.0), rtol=1e-4)


def test_default_model_runs_when_present(frame):
    from urcdc_model.checkpoints import DEFAULT_CHECKPOINT

    if not Path(DEFAULT_CHECKPOINT).is_file():
        pytest.skip(f"{DEFAULT_CHECKPOINT} not produced yet (training)")
    rt = DepthRuntime.from_path("default", backend="torch")
    depth_m, uncertainty_m = rt.infer(frame)
    assert depth_m.shape == frame.shape[:2]
    assert np.isfinite(depth_m).all() and (depth_m > 0).all() and np.isfinite(uncertainty_m).all()


# --- clear errors --------------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        DepthRuntime.from_path(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("kwargs, message", [
    ({"backend": "bogus"}, "backend must be one of"),
    ({"precision": "fp8"}, "precision must be one of"),
    ({"device": "tpu"}, "device must be one of"),
])
def test_bad_arguments_are_named(nano_checkpoint, kwargs, message):
    with pytest.raises(ValueError, match=message):
        DepthRuntime.from_path(nano_checkpoint, **kwargs)


def test_fp16_and_int8_on_cpu_are_refused_clearly(nano_checkpoint):
    with pytest.raises(BackendUnavailableError, match="fp16.*device='cuda'"):
        DepthRuntime.from_path(nano_checkpoint, backend="torch", precision="fp16")
    with pytest.raises(BackendUnavailableError, match="int8.*tensorrt"):
        DepthRuntime.from_path(nano_checkpoint, backend="torch", precision="int8")


@pytest.mark.skipif(cuda_available(), reason="this machine has a GPU")
def test_cuda_without_gpu_is_refused_clearly(nano_checkpoint):
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        DepthRuntime.from_path(nano_checkpoint, backend="torch", device="cuda")


def test_infer_rejects_non_uint8_rgb(torch_runtime):
    with pytest.raises(ValueError, match="uint8 numpy array"):
        torch_runtime.infer(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(ValueError, match="H×W×3"):
        torch_runtime.infer(np.zeros((10, 10), np.uint8))


def test_onnx_file_cannot_run_on_torch_backend(ort_runtime, cache_dir):
    onnx_path = next((cache_dir / "onnx").glob("*.onnx"))
    with pytest.raises(BackendUnavailableError, match="backend='torch' cannot run an ONNX model"):
        DepthRuntime.from_path(onnx_path, backend="torch")


def test_tensorrt_runs_or_says_why_not(nano_checkpoint, torch_runtime, frame, cache_dir):
    if tensorrt_available() and cuda_available():
        rt = DepthRuntime.from_path(nano_checkpoint, backend="tensorrt", device="cuda", cache_dir=cache_dir)
        depth_trt, _ = rt.infer(frame)
        depth_t, _ = torch_runtime.infer(frame)
        assert _rel_err(depth_trt, depth_t) < 1e-2  # TF32/kernel choice allows more drift than onnxruntime
        return
    expected = "TensorRT Python package" if not tensorrt_available() else "no CUDA GPU"
    with pytest.raises(BackendUnavailableError, match=expected):
        DepthRuntime.from_path(nano_checkpoint, backend="tensorrt", device="cuda", cache_dir=cache_dir)


# --- uncertainty in metres -----------------------------------------------------------------------


def test_uncertainty_inverts_the_training_target():
    rng = np.random.default_rng(0)
    depth_true = rng.uniform(1.0, 80.0, 5000)
    depth_pred = rng.uniform(1.0, 80.0, 5000)
    c = target_confidence(depth_true, depth_pred).astype(np.float64)
    r = -np.log(c) / 5.0
    under, over = 2 * depth_pred * r / (1 - r), 2 * depth_pred * r / (1 + r)  # the two sign cases
    error = np.abs(depth_true - depth_pred)
    # The true error is exactly one of the two cases, and the expected error is their mean.
    assert np.minimum(np.abs(under - error), np.abs(over - error)).max() < 1e-3 * error.max()
    u = confidence_to_uncertainty_m(c.astype(np.float32), depth_pred.astype(np.float32))
    np.testing.assert_allclose(u, (under + over) / 2, rtol=2e-3)


def test_uncertainty_is_zero_when_sure_grows_with_doubt_and_is_capped():
    depth_m = np.full(5, 20.0, np.float32)
    c = np.array([1.0, 0.9, 0.5, 0.1, MIN_INFORMATIVE_CONFIDENCE], np.float32)
    u = confidence_to_uncertainty_m(c, depth_m, max_error_m=80.0)
    assert u[0] == 0.0
    assert np.all(np.diff(u) > 0)
    assert u[-1] == pytest.approx(80.0)
    # For small doubts E|e| ≈ 2·d̂·r: c = 0.9 at 20 m ≈ 0.84 m.
    assert u[1] == pytest.approx(2 * 20.0 * (-np.log(0.9) / 5), rel=1e-3)


def test_uncertainty_torch_and_numpy_agree_and_round_trip():
    rng = np.random.default_rng(1)
    c = rng.uniform(0.05, 1.0, 1000).astype(np.float32)
    d = rng.uniform(0.5, 80.0, 1000).astype(np.float32)
    u_np = confidence_to_uncertainty_m(c, d)
    u_t = confidence_to_uncertainty_m(torch.from_numpy(c), torch.from_numpy(d)).numpy()
    np.testing.assert_allclose(u_t, u_np, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(uncertainty_m_to_confidence(u_np, d), c, rtol=1e-4)


# --- TensorRT engine cache keys ------------------------------------------------------------------

SHA = "0123456789abcdef" * 4
GPU = BuildIdentity("NVIDIA GeForce RTX 3080", "8.6", "10.3.0")


def test_engine_cache_key_names_every_component():
    key = engine_cache_key(SHA, 352, 1216, "fp16", GPU)
    assert key == "0123456789abcdef_352x1216_fp16_nvidia-geforce-rtx-3080_sm86_trt10.3.0"
    assert "/" not in key and " " not in key


@pytest.mark.parametrize("change", [
    dict(model_sha256="f" * 64), dict(height=384), dict(width=1280), dict(precision="int8"), dict(dynamic=True),
    dict(identity=BuildIdentity("Orin", "8.7", "10.3.0")),
    dict(identity=BuildIdentity("NVIDIA GeForce RTX 3080", "8.6", "10.4.0")),
])
def test_any_change_gives_a_new_engine(change):
    base = dict(model_sha256=SHA, height=352, width=1216, precision="fp16", identity=GPU, dynamic=False)
    assert engine_cache_key(**{**base, **change}) != engine_cache_key(**base)


def test_engine_cache_key_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="precision"):
        engine_cache_key(SHA, 352, 1216, "fp64", GPU)
    with pytest.raises(ValueError, match="hex digest"):
        engine_cache_key("../../etc", 352, 1216, "fp16", GPU)
    assert timing_cache_path(tmp_path, GPU).name == "nvidia-geforce-rtx-3080_sm86_trt10.3.0.cache"


# --- bench output --------------------------------------------------------------------------------


def test_bench_table_and_benchmarks_md_section(tmp_path):
    rows = [BenchRow("torch", (352, 1216), [100.0, 110.0, 120.0], [90.0] * 3, [200.0] * 3),
            BenchRow("onnxruntime", (352, 1216), [50.0, 55.0, 60.0], [45.0] * 3, [100.0] * 3)]
    table = format_table(rows, {(352, 1216): rows[0].median_ms})
    assert "| 352×1216 | onnxruntime | 55.0 | 59.0 | 45.0 | 100 | 18.18 | 2.00 |" in table
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## Training\n\nkeep me\n\n## Replay\n\nkeep me too\n")
    write_benchmarks_md(md, "CPU", "first run")
    write_benchmarks_md(md, "GPU", "no GPU here")
    write_benchmarks_md(md, "CPU", "second run")
    text = md.read_text()
    assert text.count("## Export and runtime") == 1 and text.count("### CPU") == 1
    assert "second run" in text and "first run" not in text and "no GPU here" in text
    assert "keep me\n" in text and "keep me too" in text


# --- small pure helpers --------------------------------------------------------------------------


def test_onnx_run_size_static_dynamic_and_mismatch(tmp_path):
    from urcdc_model.deploy.sources import onnx_run_size

    static = {"height": 352, "width": 1216, "max_depth": 80.0}
    assert onnx_run_size(static, None, tmp_path) == (352, 1216)
    with pytest.raises(ValueError, match="re-export with --dynamic"):
        onnx_run_size(static, (192, 640), tmp_path)
    dynamic = {"height": None, "width": None, "max_depth": 80.0, "train_height": 352, "train_width": 1216}
    assert onnx_run_size(dynamic, None, tmp_path) == (352, 1216)
    assert onnx_run_size(dynamic, (192, 640), tmp_path) == (192, 640)


def test_onnxruntime_providers_per_device(tmp_path):
    """The CPU provider runs every precision (FP16/Q/DQ graphs carry their types); CUDA needs a GPU provider."""
    import onnxruntime as ort

    from urcdc_model.deploy.backends import onnxruntime_providers

    for precision in ("fp32", "fp16", "int8"):
        assert onnxruntime_providers("cpu", precision, tmp_path) == ["CPUExecutionProvider"]
    if not {"CUDAExecutionProvider", "TensorrtExecutionProvider"} & set(ort.get_available_providers()):
        with pytest.raises(BackendUnavailableError, match="install onnxruntime-gpu"):
            onnxruntime_providers("cuda", "fp16", tmp_path)


def test_uncertainty_calibration_table_on_rendered_frames(torch_runtime):
    from urcdc_model.uncertainty_check import calibration_table, format_calibration

    bins, rho = calibration_table(torch_runtime, frames=2, num_bins=3)
    assert 1 <= len(bins) <= 3 and sum(b.pixels for b in bins) > 0
    assert all(b.uncertainty_lo_m <= b.mean_uncertainty_m <= b.uncertainty_hi_m + 1e-9 for b in bins)
    assert -1.0 <= rho <= 1.0
    assert "Spearman" in format_calibration(bins, rho)
