"""ONNX export: named static/dynamic graphs that onnxruntime runs like PyTorch; failing exports are refused."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from urcdc_model.deploy.graph import DeployModel
from urcdc_model.deploy.errors import ExportVerificationError
from urcdc_model.deploy.onnx_export import export_verified_onnx, max_relative_error, read_onnx_metadata
from urcdc_model.export import main
from urcdc_model.preprocessing import normalize_rgb

INPUT_HW = (64, 96)


def _kitti_rgb(shared_data: Path, height: int, width: int) -> np.ndarray:
    path = sorted((shared_data / "kitti_depth_annotated" / "rgb").glob("*.png"))[0]
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def _nano(max_depth: float = 80.0) -> tuple[nn.Module, object]:
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=False, max_depth=max_depth)
    return URCDCDepth(cfg).eval(), cfg


def _assert_parity(onnx_path: Path, deploy: DeployModel, rgb: np.ndarray) -> None:
    """onnxruntime vs PyTorch on one frame, independently of the exporter's own check."""
    image = normalize_rgb(rgb).unsqueeze(0)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    depth_o, unc_o = session.run(["depth", "uncertainty"], {"image": image.numpy()})
    with torch.inference_mode():
        depth_t, unc_t = (t.numpy() for t in deploy(image))
    assert depth_o.shape == (1, 1, *rgb.shape[:2])
    assert max_relative_error(depth_o, depth_t) <= 1e-3
    assert max_relative_error(unc_o, unc_t) <= 1e-3


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, str]:
    """The embedded default model when training has produced it, else a random nano saved the same way."""
    from urcdc_model.checkpoints import DEFAULT_CHECKPOINT, save_model

    if Path(DEFAULT_CHECKPOINT).is_file():
        return Path(DEFAULT_CHECKPOINT), "default"
    model, cfg = _nano()
    path = tmp_path_factory.mktemp("ckpt") / "nano.safetensors"
    save_model(path, model, cfg, meta={"input_height": INPUT_HW[0], "input_width": INPUT_HW[1]})
    return path, "nano (random init; default weights not produced yet)"


def test_cli_writes_a_verified_dynamic_onnx_that_runs_at_two_sizes(checkpoint, shared_data, tmp_path):
    """The CLI on the default model (or a nano stand-in): named graph, opset ≥ 17, symbolic H×W, parity.
    The static export (the default) is covered by test_runtime's on-demand export."""
    from urcdc_model.checkpoints import load_model

    path, _ = checkpoint
    out = tmp_path / "model.onnx"
    rc = main(["--checkpoint", str(path), "--format", "onnx", "--height", str(INPUT_HW[0]), "--width",
               str(INPUT_HW[1]), "--dynamic", "--verify-images", str(shared_data / "kitti_depth_annotated" / "rgb"),
               "--output", str(out)])
    assert rc == 0 and out.is_file()
    model = onnx.load(str(out), load_external_data=False)
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["depth", "uncertainty"]
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, "height", "width"]
    model_t, cfg, _ = load_model(path, with_cnn=False)
    meta = read_onnx_metadata(out)
    assert (meta["height"], meta["width"], meta["max_depth"]) == (None, None, cfg.max_depth)
    deploy = DeployModel(model_t, cfg.max_depth)
    # The export size, and one it was not checked at, not a multiple of the window (padded in-graph).
    for height, width in [INPUT_HW, (70, 100)]:
        _assert_parity(out, deploy, _kitti_rgb(shared_data, height, width))


def test_tiny07_exports_with_parity(tmp_path):
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_name("tiny07"), with_cnn=False)
    deploy = DeployModel(URCDCDepth(cfg).eval(), cfg.max_depth)
    out, results = export_verified_onnx(deploy, tmp_path / "tiny07.onnx", *INPUT_HW)
    assert out.is_file() and {r.input_name.split("@")[0] for r in results} == {"random", "rendered_street"}
    assert max(r.worst for r in results) <= 1e-3


class _TraceUnfriendly(nn.Module):
    """Branches on the data in Python: tracing freezes the branch taken for the all-zero example input,
    so the ONNX graph genuinely differs from PyTorch on real images."""

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        gray = image.mean(dim=1, keepdim=True)
        depth = torch.sigmoid(gray) * 10.0 if bool(image.min() < -1.0) else torch.sigmoid(-gray) * 10.0
        return {"depth": depth, "confidence": torch.sigmoid(gray)}


def test_a_model_that_disagrees_is_not_written(tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ExportVerificationError, match="not writing"):
        export_verified_onnx(DeployModel(_TraceUnfriendly(), 10.0), out, 32, 32)
    assert not out.exists() and not list(tmp_path.glob("*.onnx"))


def test_read_metadata_rejects_foreign_onnx(tmp_path):
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(nn.Conv2d(3, 1, 1), (torch.zeros(1, 3, 8, 8),), str(path), dynamo=False,
                      input_names=["image"], output_names=["depth"])
    with pytest.raises(ValueError, match="not exported by urcdc"):
        read_onnx_metadata(path)


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--precision int8 needs --calib-images"),
    (["--precision", "int8"], "--precision int8 needs --calib-images"),
    (["--precision", "fp16", "--calib-images", "x"], "--calib-images is for --precision int8"),
    (["--fp16", "--precision", "int8"], "give one precision"),
    (["--precision", "bf16"], "invalid choice: 'bf16'"),
    (["--height", "352"], "both --height and --width"),
])
def test_cli_rejects_inconsistent_options(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["--checkpoint", "x.safetensors", "--output", str(tmp_path / "x.onnx"), *argv])
    assert message in capsys.readouterr().err


def test_tensorrt_export_says_why_not_without_tensorrt(checkpoint, tmp_path, capsys):
    from urcdc_model.deploy.backends import cuda_available, tensorrt_available

    if tensorrt_available() and cuda_available():
        pytest.skip("TensorRT and a GPU are present: the engine build is covered by test_runtime")
    path, _ = checkpoint
    rc = main(["--checkpoint", str(path), "--format", "tensorrt", "--precision", "fp16", "--height", str(INPUT_HW[0]),
               "--width", str(INPUT_HW[1]), "--output", str(tmp_path / "m.engine")])
    expected = "TensorRT is not installed" if not tensorrt_available() else "no CUDA GPU|needs an NVIDIA GPU"
    err = capsys.readouterr().err
    assert rc == 1 and re.search(expected, err) and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())  # failed before exporting anything


def test_static_export_is_constant_folded(tmp_path):
    """The static graph's shape arithmetic folds away (TensorRT's parser and the quantizer get plain ops),
    the folded graph computes the same, and no onnxruntime-only opset is left behind."""
    from urcdc_model.deploy.onnx_export import count_nodes, export_onnx, fold_constants

    model, cfg = _nano()
    raw = export_onnx(DeployModel(model, cfg.max_depth), tmp_path / "raw.onnx", *INPUT_HW)
    folded = fold_constants(raw, tmp_path / "folded.onnx")
    before, after = count_nodes(raw), count_nodes(folded)
    assert before.get("Shape", 0) > 100 and "Shape" not in after and "ConstantOfShape" not in after
    assert after["total"] < before["total"] / 4
    image = np.random.default_rng(0).normal(size=(1, 3, *INPUT_HW)).astype(np.float32)
    outputs = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"image": image})
               for p in (raw, folded)]
    for folded_out, raw_out in zip(outputs[1], outputs[0]):
        assert max_relative_error(folded_out, raw_out) <= 1e-5
    domains = {op.domain for op in onnx.load(str(folded)).opset_import}
    assert domains <= {"", "ai.onnx"}, f"unused opset imports left by onnxruntime: {domains}"


def test_cli_missing_checkpoint_is_one_clear_line(tmp_path, capsys):
    rc = main(["--checkpoint", str(tmp_path / "missing.safetensors"), "--output", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 1 and "missing.safetensors" in err and "Traceback" not in err


def test_mask_upsampling_position_and_ray_embeddings_and_padding_mask_export_with_parity(tmp_path):
    from urcdc_model.models import ModelConfig, URCDCDepth

    torch.manual_seed(0)
    cfg = dataclasses.replace(ModelConfig.from_name("nano"), with_cnn=False, up_mode="mask", ape_grid=(8, 10),
                              ray_focal_px=50.0, mask_window_padding=True)
    model = URCDCDepth(cfg).eval()
    torch.nn.init.normal_(model.backbone.ray_embed.weight, std=0.5)       # a trained embedding is not zero
    deploy = DeployModel(model, cfg.max_depth)
    _, results = export_verified_onnx(deploy, tmp_path / "mask.onnx", *INPUT_HW, dynamic=True)
    assert len({r.input_name for r in results}) >= 2       # checked at more than one input size
    assert max(r.worst for r in results) <= 1e-3


class _BrokenTorchTensorRT:
    """A meta-path finder whose torch_tensorrt import fails the way a real one does without libnvinfer."""

    def __init__(self, error: BaseException):
        self.error = error

    def find_spec(self, name, path=None, target=None):
        if name != "torch_tensorrt":
            return None
        import importlib.machinery

        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise self.error


@pytest.mark.parametrize("error", [OSError("libnvinfer.so.11: cannot open shared object file: No such file"),
                                   RuntimeError("Torch-TensorRT needs a CUDA build of torch\nsecond line")])
def test_torch_tensorrt_that_cannot_load_is_one_line(monkeypatch, error):
    """torch_tensorrt's import raises OSError/RuntimeError, not ImportError, when its libraries or torch
    do not fit: that must reach the user as BackendUnavailableError, not a traceback."""
    import sys

    from urcdc_model.deploy.errors import BackendUnavailableError
    from urcdc_model.deploy.torch_tensorrt import import_torch_tensorrt

    monkeypatch.delitem(sys.modules, "torch_tensorrt", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenTorchTensorRT(error), *sys.meta_path])
    with pytest.raises(BackendUnavailableError) as info:
        import_torch_tensorrt()
    message = str(info.value)
    assert "torch-tensorrt is installed but cannot be loaded" in message and type(error).__name__ in message
    assert str(error).splitlines()[0] in message and "\n" not in message


def test_torch_tensorrt_int8_points_to_the_onnx_route(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--format", "torch-tensorrt", "--precision", "int8", "--calib-images", str(tmp_path),
              "--output", str(tmp_path / "m.ep")])
    assert info.value.code == 2 and "use --format tensorrt --precision int8" in capsys.readouterr().err
