"""FP16 and INT8 ONNX: what the files contain, that onnxruntime CPU runs them within budget, refusal outside it.

The embedded default model (trained weights, so the budgets mean something) at a small 64×96 input.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from urcdc_model.data.synthetic import HELD_OUT_SEED, render_frame
from urcdc_model.deploy import precision as precision_mod
from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.precision import (BUDGETS, compare_to_reference, convert_verified, image_batches,
                                          prepare_image, quantize_int8, read_int8_target, read_precision,
                                          verification_batches)
from urcdc_model.deploy.runtime import DepthRuntime
from urcdc_model.export import main

INPUT_HW = (64, 96)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory) -> Path:
    """Camera frames for calibration: rendered street scenes from training seeds, at another size than
    the network's (so the calibration reader's resize is exercised), written as PNG like real frames."""
    root = tmp_path_factory.mktemp("calib")
    for seed in range(6):
        rgb = render_frame(seed, kind="street", height=96, width=240).rgb
        cv2.imwrite(str(root / f"{seed:04d}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return root


def _export(out: Path, *extra: str) -> int:
    return main(["--checkpoint", "default", "--format", "onnx", "--height", str(INPUT_HW[0]), "--width",
                 str(INPUT_HW[1]), "--output", str(out), *extra])


@pytest.fixture(scope="module")
def models(tmp_path_factory, calib_dir) -> dict[str, Path]:
    """FP32 from the CLI (traced once); FP16 and INT8 converted from it as the CLI does (the CLI's own
    FP16/INT8 path, aliases included, is test_outside_the_budget_nothing_is_written's)."""
    root = tmp_path_factory.mktemp("models")
    paths = {"fp32": root / "m_fp32.onnx", "fp16": root / "m_fp16.onnx", "int8": root / "m_int8.onnx"}
    assert _export(paths["fp32"]) == 0
    verify = verification_batches(*INPUT_HW)
    convert_verified(paths["fp32"], paths["fp16"], "fp16", verify=verify)
    calibration = image_batches(sorted(calib_dir.glob("*.png")), *INPUT_HW)
    convert_verified(paths["fp32"], paths["int8"], "int8", calibration=calibration, verify=verify)
    return paths


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def test_fp16_onnx_keeps_float32_io_and_normalisations(models):
    model = onnx.load(str(models["fp16"]))
    float32 = onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [float32]
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == [float32, float32]
    inits = _initializers(model)
    weighted = [n for n in model.graph.node if n.op_type in ("Gemm", "Conv", "MatMul")]
    weights = [inits[i] for n in weighted for i in n.input[1:2] if i in inits]
    assert weights and all(w.dtype == np.float16 for w in weights)  # compute in half
    norms = [n for n in model.graph.node if n.op_type == "LayerNormalization"]
    assert norms and all(inits[n.input[1]].dtype == np.float32 for n in norms)  # normalisation kept float32
    assert read_precision(models["fp16"]) == "fp16" and read_precision(models["fp32"]) == "fp32"


def _zero_points(model: onnx.ModelProto) -> list[np.ndarray]:
    inits = _initializers(model)
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    return [inits[n.input[2]] for n in qdq if len(n.input) > 2 and n.input[2] in inits]


def test_int8_onnx_is_symmetric_qdq_on_the_weighted_ops(models):
    """Explicit quantization: signed symmetric INT8 (zero points 0) feeding every Conv/Gemm; the onnxruntime
    flavour also has INT32 biases (so the CPU provider fuses integer kernels)."""
    model = onnx.load(str(models["int8"]))
    producers = {out: n.op_type for n in model.graph.node for out in n.output}
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            assert producers.get(node.input[0]) == "DequantizeLinear", node.name
            assert producers.get(node.input[1]) == "DequantizeLinear", node.name  # per-channel weights
    zero_points = _zero_points(model)
    assert zero_points and not any(z.any() for z in zero_points)
    assert {z.dtype for z in zero_points} == {np.dtype(np.int8), np.dtype(np.int32)}
    assert read_precision(models["int8"]) == "int8" and read_int8_target(models["int8"]) == "onnxruntime"


def test_int8_for_tensorrt_keeps_float_biases(models, calib_dir, tmp_path):
    """TensorRT's parser rejects an INT32 DequantizeLinear: its flavour has INT8 Q/DQ only."""
    calibration = image_batches(sorted(calib_dir.glob("*.png"))[:2], *INPUT_HW)
    path = quantize_int8(models["fp32"], tmp_path / "trt.onnx", calibration, target="tensorrt")
    zero_points = _zero_points(onnx.load(str(path)))
    assert zero_points and {z.dtype for z in zero_points} == {np.dtype(np.int8)} and not any(z.any() for z in zero_points)
    assert read_int8_target(path) == "tensorrt"


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precision_runs_on_onnxruntime_cpu_within_budget(models, precision, tmp_path):
    """DepthRuntime on onnxruntime's CPU provider runs the FP16 / Q/DQ INT8 file; on a held-out frame it
    stays within the precision's budget of the FP32 export (an independent check from the export's)."""
    fp32 = DepthRuntime.from_path(models["fp32"], backend="onnxruntime", device="cpu", cache_dir=tmp_path)
    reduced = DepthRuntime.from_path(models[precision], backend="onnxruntime", device="cpu", precision=precision,
                                     cache_dir=tmp_path)
    assert (reduced.backend, reduced.precision) == ("onnxruntime", precision)
    frame = render_frame(HELD_OUT_SEED + 7, kind="street", height=128, width=200).rgb
    error = compare_to_reference("held-out", reduced.infer(frame), fp32.infer(frame))
    assert error.within(BUDGETS[precision]), error.describe()
    assert error.depth_mean_rel > 0  # really another model, not the FP32 one again


def test_an_exported_precision_is_what_the_runtime_reports(models, tmp_path):
    runtime = DepthRuntime.from_path(models["int8"], backend="onnxruntime", cache_dir=tmp_path)
    assert runtime.precision == "int8"
    with pytest.raises(ValueError, match="is a int8 model; precision='fp16'"):
        DepthRuntime.from_path(models["int8"], backend="onnxruntime", precision="fp16", cache_dir=tmp_path)


def test_fp16_is_derived_from_an_fp32_export_and_cached(models, tmp_path):
    runtime = DepthRuntime.from_path(models["fp32"], backend="onnxruntime", precision="fp16", cache_dir=tmp_path)
    assert runtime.precision == "fp16"
    cached = list((tmp_path / "onnx").glob("*_fp16_*.onnx"))
    assert len(cached) == 1 and read_precision(cached[0]) == "fp16"


def test_int8_without_calibration_images_says_how(models, tmp_path):
    with pytest.raises(BackendUnavailableError, match="--precision int8 --calib-images"):
        DepthRuntime.from_path(models["fp32"], backend="onnxruntime", precision="int8", cache_dir=tmp_path)


def test_outside_the_budget_nothing_is_written(monkeypatch, calib_dir, tmp_path, capsys):
    """The CLI's INT8 path (old --int8 spelling, PNG calibration folder) against a budget it cannot meet:
    refused with one line naming the worst image, no file left behind."""
    monkeypatch.setitem(precision_mod.BUDGETS, "int8", precision_mod.ErrorBudget(1e-9, 1e-9, 1e-9))
    out = tmp_path / "out" / "refused.onnx"
    from urcdc_model import cli

    cli.show_progress_logs()  # as an earlier tool in the same process may have: --no-progress must still win
    rc = _export(out, "--int8", "--calib-images", str(calib_dir), "--no-progress")
    err = capsys.readouterr().err
    assert rc == 1 and "outside the int8 error budget" in err and "street_" in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists() and list(out.parent.iterdir()) == []


@pytest.mark.parametrize("frame_hw", [(375, 1242), (40, 60)])
def test_calibration_preprocessing_matches_the_runtime(models, frame_hw, tmp_path):
    runtime = DepthRuntime.from_path(models["fp32"], backend="onnxruntime", cache_dir=tmp_path, warmup_runs=0)
    frame = render_frame(3, kind="street", height=frame_hw[0], width=frame_hw[1]).rgb
    np.testing.assert_array_equal(prepare_image(frame, *INPUT_HW), runtime.preprocess(frame)[0])
