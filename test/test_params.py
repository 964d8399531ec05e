"""Parameter declaration and validation (urcdc_ros/params.py) and config/depth.yaml, without a ROS graph."""
import dataclasses

import pytest
import rclpy
import yaml
from rclpy.context import Context
from rclpy.node import Node

from urcdc_ros.params import (
    PARAM_SPECS,
    DepthNodeParams,
    ParameterError,
    declare_parameters,
    parameter_descriptor,
)
from conftest import REPO_ROOT

DEPTH_YAML = REPO_ROOT / "config" / "depth.yaml"


def test_yaml_defaults_equal_the_declared_defaults():
    document = yaml.safe_load(DEPTH_YAML.read_text())
    assert list(document) == ["/**"], "use the /** wildcard so namespaced or renamed nodes get the values"
    values = document["/**"]["ros__parameters"]
    assert values == {spec.name: spec.default for spec in PARAM_SPECS}
    for spec in PARAM_SPECS:
        assert type(values[spec.name]) is type(spec.default), f"{spec.name}: YAML type differs from the default"
    # The dataclass mirrors the specs, so code and YAML cannot drift apart silently.
    assert dataclasses.asdict(DepthNodeParams()) == values


@pytest.mark.parametrize(("changes", "message"), [
    ({"backend": "tflite"}, "backend: 'tflite' is not one of"),
    ({"cloud_stride": 0}, "cloud_stride: 0 is below the minimum"),
    ({"max_relative_uncertainty": 11.0}, "above the maximum"),
    ({"publish_points": "yes"}, "publish_points: expected a bool"),
    ({"input_height": 352}, "set both"),
    ({"input_height": 16, "input_width": 16}, "at least 32x32"),
    ({"precision": "fp16", "backend": "torch"}, "fp16 with backend=torch needs device=cuda"),
    ({"precision": "int8", "backend": "torch"}, "int8 needs backend=onnxruntime or tensorrt"),
    ({"frame_id": "/camera"}, "drop the slash"),
    ({"model": " "}, "model: empty"),
    ({"colour": True}, "colour: unknown parameter"),
])
def test_invalid_values_are_rejected_with_the_reason(changes, message):
    with pytest.raises(ParameterError, match=message):
        DepthNodeParams.from_values(changes)


def test_valid_values_and_int_for_double():
    params = DepthNodeParams.from_values({"max_depth_m": 80, "input_height": 352, "input_width": 1216})
    assert params.max_depth_m == 80.0 and isinstance(params.max_depth_m, float)
    assert params.input_size == (352, 1216)
    assert DepthNodeParams().input_size is None
    assert params.replace(cloud_stride=4).cloud_stride == 4
    with pytest.raises(ParameterError, match="cloud_stride"):
        params.replace(cloud_stride=99)


def test_descriptors_carry_description_range_and_read_only():
    by_name = {spec.name: parameter_descriptor(spec) for spec in PARAM_SPECS}
    assert all(d.description for d in by_name.values())
    assert by_name["model"].read_only and not by_name["max_depth_m"].read_only
    stride_range = by_name["cloud_stride"].integer_range[0]
    assert (stride_range.from_value, stride_range.to_value) == (1, 16)
    assert by_name["max_uncertainty_m"].floating_point_range[0].to_value == 1000.0
    assert "onnxruntime" in by_name["backend"].description


def _declare(overrides: list[str]):
    context = Context()
    args = ["--ros-args"] + [item for o in overrides for item in ("-p", o)]
    rclpy.init(args=args, context=context)
    try:
        node = Node("params_probe", context=context)
        try:
            return declare_parameters(node)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def test_declare_on_a_real_node_with_yaml_file():
    context = Context()
    rclpy.init(args=["--ros-args", "--params-file", str(DEPTH_YAML), "-p", "cloud_stride:=2"], context=context)
    try:
        node = Node("renamed_node", namespace="/robot1/front", context=context)
        params = declare_parameters(node)
        assert params == DepthNodeParams(cloud_stride=2)
        assert node.describe_parameter("cloud_stride").description.startswith("Keep every n-th pixel")
        node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


@pytest.mark.parametrize(("override", "message"), [
    ("cloud_stride:=40", "cloud_stride: 40 is above the maximum 16"),
    ("cloud_stride:=abc", "cloud_stride: expected an integer, got 'abc' (type string)"),
    ("max_depth_m:=abc", "max_depth_m: expected a double (write 80.0, not 80), got 'abc'"),
    ("flip_tta:=3", "flip_tta: expected a bool (true or false), got '3'"),
    ("device:=tpu", "device: 'tpu' is not one of"),
])
def test_declare_rejects_bad_overrides_at_start(override, message):
    with pytest.raises(ParameterError) as raised:
        _declare([override])
    text = str(raised.value)
    name = override.split(":=")[0]
    assert text.startswith(message), text
    assert not text.endswith(f": {name}"), f"rclpy's trailing parameter name leaked: {text}"
    assert "expected a integer" not in text and "Trying to set" not in text
