"""Every bad model file ends in one line that names the file, says what it is not and what to pass instead:
at the loaders (ModelFileError), in every CLI (``error: ...``, non-zero exit) and in the node (one FATAL
line, exit 1). No traceback, no library's own advice (torch's "weights_only=False", protobuf's DecodeError).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT
from urcdc_model.checkpoints import load_model
from urcdc_model.deploy.errors import ModelFileError
from urcdc_model.deploy.runtime import DepthRuntime

# What must never reach a user, whatever the file.
LIBRARY_TEXT = ("Traceback", "weights_only", "torch.load", "DecodeError", "Error parsing message",
                "WeightsUnpickler", "pytorch.org")
# Every message ends with a way out: one of these.
FIXES = ("pass ", "re-export", "rebuild", "copy it again", "save only")


def _truncated_urcdc_onnx(path: Path) -> Path:
    """An ONNX that looks like ours (input 'image', urcdc metadata), cut in half as an interrupted copy would."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])
    depth = helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, 3, 32, 32])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [4096], np.ones(4096, np.float32).tolist())
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["depth"])], "g", [image], [depth],
                              initializer=[weights])
    model = helper.make_model(graph)
    entry = model.metadata_props.add()
    entry.key, entry.value = "urcdc.max_depth", "80.0"
    data = model.SerializeToString()
    onnx.load_from_string(data)  # the whole file is a valid model; only the cut makes it bad
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, nano_checkpoint) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    files = {}
    files["npy"] = root / "weights.npy"
    np.save(files["npy"], np.zeros((3, 4), np.float32))
    files["garbage_onnx"] = root / "garbage.onnx"
    files["garbage_onnx"].write_bytes(np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes())
    files["truncated_onnx"] = _truncated_urcdc_onnx(root / "truncated.onnx")
    data = Path(nano_checkpoint).read_bytes()
    files["truncated_safetensors"] = root / "truncated.safetensors"
    files["truncated_safetensors"].write_bytes(data[: len(data) // 2])
    files["text_ckpt"] = root / "not_a_checkpoint.ckpt"
    files["text_ckpt"].write_text("epoch: 12\nloss: 0.3\n")
    files["objects_ckpt"] = root / "objects.ckpt"
    torch.save({"model": {"w": torch.zeros(1)}, "args": argparse.Namespace(lr=1e-4)}, files["objects_ckpt"])
    truncated_torch = root / "truncated.pth"
    torch.save({"model": {"w": torch.zeros(1000)}}, truncated_torch)
    truncated_torch.write_bytes(truncated_torch.read_bytes()[:700])
    files["truncated_pth"] = truncated_torch
    return files


CHECKPOINT_CASES = ("npy", "truncated_safetensors", "text_ckpt", "objects_ckpt", "truncated_pth")
ONNX_CASES = ("garbage_onnx", "truncated_onnx")


def check_one_line(message: str, path: Path) -> None:
    """One line, naming the file, with a fix and without any library's own text."""
    assert "\n" not in message.strip(), message
    assert str(path) in message, message
    assert any(fix in message for fix in FIXES), message
    leaked = [text for text in LIBRARY_TEXT if text in message]
    assert not leaked, f"{leaked} in: {message}"


# --- where files are opened -------------------------------------------------------------------------


@pytest.mark.parametrize("case", CHECKPOINT_CASES + ONNX_CASES)
def test_runtime_raises_one_line_model_file_error(bad_files, case):
    with pytest.raises(ModelFileError) as raised:
        DepthRuntime.from_path(bad_files[case], backend="auto")
    check_one_line(str(raised.value), bad_files[case])


@pytest.mark.parametrize("case", CHECKPOINT_CASES + ONNX_CASES)
def test_checkpoint_loader_raises_one_line_model_file_error(bad_files, case):
    with pytest.raises(ModelFileError) as raised:
        load_model(bad_files[case])
    check_one_line(str(raised.value), bad_files[case])


def test_messages_say_what_the_file_is(bad_files):
    def message(case):
        with pytest.raises(ModelFileError) as raised:
            DepthRuntime.from_path(bad_files[case], backend="auto")
        return str(raised.value)

    assert "a NumPy .npy array, not a model checkpoint" in message("npy")
    assert "a text file, not a model checkpoint" in message("text_ckpt")
    assert "not a valid ONNX model (truncated or not ONNX)" in message("garbage_onnx")
    assert "re-export it with `python -m urcdc_model.export`" in message("truncated_onnx")
    assert "not a readable safetensors file (truncated or corrupt" in message("truncated_safetensors")
    assert "argparse.Namespace" in message("objects_ckpt") and "never unpickled" in message("objects_ckpt")
    assert "truncated or corrupt" in message("truncated_pth")
    with pytest.raises(ModelFileError, match="an exported ONNX model, not a checkpoint"):
        load_model(bad_files["garbage_onnx"])


def test_onnxruntime_session_on_a_bad_file_is_a_model_file_error(bad_files):
    import onnxruntime as ort

    from urcdc_model.deploy.backends import open_onnxruntime_session

    with pytest.raises(ModelFileError) as raised:
        open_onnxruntime_session(bad_files["garbage_onnx"], ort.SessionOptions(), ["CPUExecutionProvider"])
    check_one_line(str(raised.value), bad_files["garbage_onnx"])


def test_engine_sidecar_and_identity_problems_are_model_file_errors(tmp_path):
    from urcdc_model.deploy.tensorrt import BuildIdentity, check_engine_identity, read_engine_metadata

    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 64)
    sidecar = tmp_path / "m.engine.json"
    sidecar.write_text("{not json")
    with pytest.raises(ModelFileError, match=r"m.engine.json: not valid JSON .*rebuild it"):
        read_engine_metadata(engine)
    sidecar.write_text(json.dumps({"height": 96, "width": 320}))
    with pytest.raises(ModelFileError, match=r"m.engine.json: no max_depth field; rebuild it"):
        read_engine_metadata(engine)
    built = {"height": 96, "width": 320, "max_depth": 80.0, "gpu_name": "NVIDIA Jetson Orin",
             "compute_capability": "8.7", "tensorrt_version": "8.6.2"}
    here = BuildIdentity("NVIDIA H200", "9.0", "10.3.0")
    with pytest.raises(ModelFileError) as raised:
        check_engine_identity(engine, built, here)
    check_one_line(str(raised.value), engine)
    assert "built for NVIDIA Jetson Orin (sm 8.7, TensorRT 8.6.2), not for this NVIDIA H200" in str(raised.value)
    check_engine_identity(engine, built, BuildIdentity("NVIDIA Jetson Orin", "8.7", "8.6.2"))  # same: fine


# --- every CLI: one error line, non-zero exit ------------------------------------------------------------


def _cli_cases(tmp: Path, image: Path) -> dict:
    """CLI name -> (main function, argv builder for a model file)."""
    from urcdc_model import analysis, evaluate, export, predict, uncertainty_check
    from urcdc_model.deploy import bench

    return {
        "predict": (predict.main, lambda m: ["--checkpoint", str(m), "--image", str(image),
                                             "--output", str(tmp / "d.npy")]),
        "evaluate": (evaluate.main, lambda m: ["--checkpoint", str(m), "--dataset", "synthetic", "--frames", "1"]),
        "export": (export.main, lambda m: ["--checkpoint", str(m), "--output", str(tmp / "x.onnx")]),
        "bench": (bench.main, lambda m: ["--checkpoint", str(m), "--backends", "onnxruntime", "--runs", "1",
                                         "--input-sizes", "64x64"]),
        "analysis": (analysis.__main__.main, lambda m: ["--checkpoint", str(m), "--procedural", "1",
                                                        "--output", str(tmp / "analysis")]),
        "uncertainty_check": (uncertainty_check.main, lambda m: ["--checkpoint", str(m), "--frames", "1"]),
    }


RUNTIME_CLIS = ("bench", "uncertainty_check", "predict", "evaluate")  # through DepthRuntime: .onnx files reach it


@pytest.mark.parametrize("cli_name", ("predict", "evaluate", "export", "bench", "analysis", "uncertainty_check"))
def test_every_cli_reports_a_bad_model_file_in_one_line(bad_files, cli_name, tmp_path, capsys):
    import cv2

    import urcdc_model.analysis.__main__  # noqa: F401  (the analysis CLI module)

    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((64, 96, 3), np.uint8))
    main, argv = _cli_cases(tmp_path, image)[cli_name]
    cases = CHECKPOINT_CASES + (ONNX_CASES if cli_name in RUNTIME_CLIS else ("garbage_onnx",))
    for case in cases:
        code = main(argv(bad_files[case]))
        err = capsys.readouterr().err
        error_lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 1, f"{cli_name} {case}: exit {code}, not 1 (every CLI: 1 = failed, 2 = bad arguments)\n{err}"
        assert len(error_lines) == 1 and len(err.strip().splitlines()) == 1, f"{cli_name} {case}:\n{err}"
        check_one_line(error_lines[0], bad_files[case])


@pytest.mark.slow
def test_bag_bench_launching_the_node_passes_on_its_one_line(bad_files, tmp_path, capsys):
    from test_bag_bench import write_bag
    from urcdc_ros import bag_bench

    write_bag(tmp_path / "bag", num_frames=1)
    code = bag_bench.main(["--bag", str(tmp_path / "bag"), "--output", str(tmp_path / "report"), "--launch-node",
                           "--max-rate", "--node-param", f"model:={bad_files['npy']}", "--node-param",
                           "backend:=torch", "--startup-timeout", "60"])
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(error_lines) == 1, err
    check_one_line(error_lines[0], bad_files["npy"])
    assert "the depth node did not start" in error_lines[0]


def test_demo_with_a_bad_model_is_one_line(bad_files, tmp_path, capsys):
    from urcdc_ros import demo

    code = demo.main(["--output", str(tmp_path / "demo"), "--frames", "2", "--samples", str(tmp_path / "none"),
                      "--node-param", f"model:={bad_files['garbage_onnx']}"])
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(error_lines) == 1, err
    check_one_line(error_lines[0], bad_files["garbage_onnx"])


# --- the node: exit 1, one FATAL line ----------------------------------------------------------------------


@pytest.mark.slow
def test_node_ends_with_one_fatal_line_per_bad_file(bad_files):
    cases = ("npy", "garbage_onnx", "truncated_onnx", "truncated_safetensors", "text_ckpt")
    running = {}
    for index, case in enumerate(cases):  # started together: their start-ups overlap
        command = [sys.executable, "-m", "urcdc_ros.depth_node", "--ros-args", "-r", f"__ns:=/bad{index}",
                   "--params-file", str(REPO_ROOT / "config" / "depth.yaml"),
                   "-p", f"model:={bad_files[case]}", "-p", "num_threads:=1"]
        running[case] = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for case, process in running.items():
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 1, f"{case}: exit {process.returncode}\n{output}"
        fatal = [line for line in output.splitlines() if "[FATAL]" in line]
        assert len(fatal) == 1 and len(output.strip().splitlines()) == 1, f"{case}:\n{output}"
        check_one_line(fatal[0], bad_files[case])
