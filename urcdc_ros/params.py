"""The depth node's parameters: declared once, with descriptions and ranges, validated in one place.

Defaults here equal config/depth.yaml (a test keeps them in step). Read-only parameters are fixed
at start (model, backend, QoS, transport); the rest can be changed with `ros2 param set`.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any, Union

from urcdc_ros.ros_compat import EXECUTORS

ParamValue = Union[bool, int, float, str]


class ParameterError(ValueError):
    """One or more parameter values are invalid; the message lists each with its reason."""


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: its default (which also fixes its type), description and allowed values."""

    name: str
    default: ParamValue
    description: str
    choices: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None
    read_only: bool = False


PARAM_SPECS: tuple[ParamSpec, ...] = (
    ParamSpec("model", "default", "Model to run: 'default' (the embedded model), a .safetensors/.ckpt "
              "checkpoint, an .onnx export or a TensorRT .engine", read_only=True),
    ParamSpec("backend", "auto", "Inference backend; 'auto' picks the fastest one installed",
              choices=("auto", "torch", "onnxruntime", "tensorrt"), read_only=True),
    ParamSpec("device", "cpu", "Where inference runs", choices=("cpu", "cuda"), read_only=True),
    ParamSpec("precision", "fp32", "Inference precision (fp16: cuda, or onnxruntime on cpu; int8: a Q/DQ .onnx "
              "from `export --precision int8` on onnxruntime or tensorrt)",
              choices=("fp32", "fp16", "int8"), read_only=True),
    ParamSpec("input_height", 0, "Network input height in px; 0 = the size the model was trained at "
              "(outputs are always at the camera's resolution)", min_value=0, max_value=4096, read_only=True),
    ParamSpec("input_width", 0, "Network input width in px; 0 = the size the model was trained at",
              min_value=0, max_value=8192, read_only=True),
    ParamSpec("num_threads", 0, "CPU threads for onnxruntime; 0 = all cores", min_value=0, max_value=256,
              read_only=True),
    ParamSpec("flip_tta", False, "Blend with the prediction on the mirrored, differently padded image "
              "(better depth, 2x the time)"),
    ParamSpec("max_depth_m", 0.0, "Depths beyond this are published as +Inf (REP 117 'too far') and left out "
              "of the cloud; 0 = no limit beyond the model's own", min_value=0.0, max_value=1000.0),
    ParamSpec("publish_depth", True, "Publish 'depth' (32FC1 metres) and 'depth/camera_info'"),
    ParamSpec("publish_uncertainty", True, "Publish 'depth/uncertainty' (32FC1, expected absolute error in m)"),
    ParamSpec("publish_points", True, "Publish 'points' (organized PointCloud2; needs camera_info)"),
    ParamSpec("publish_colored", True, "Publish 'depth/colored' (bgr8 colour map for viewing)"),
    ParamSpec("cloud_stride", 1, "Keep every n-th pixel in rows and columns of the cloud",
              min_value=1, max_value=16),
    ParamSpec("cloud_rgb", False, "Cloud fields x,y,z,rgb (32-byte points) instead of x,y,z (16-byte)"),
    ParamSpec("max_uncertainty_m", 0.0, "Cloud points with uncertainty above this many metres become NaN; 0 = off",
              min_value=0.0, max_value=1000.0),
    ParamSpec("max_relative_uncertainty", 0.0, "Cloud points with uncertainty / depth above this become NaN; "
              "0 = off", min_value=0.0, max_value=10.0),
    ParamSpec("input_qos", "sensor_data", "QoS of the image/camera_info subscriptions: 'sensor_data' (best "
              "effort; hears reliable publishers too) or 'reliable'", choices=("sensor_data", "reliable"),
              read_only=True),
    ParamSpec("output_qos", "reliable", "QoS of the outputs: 'reliable' (heard by every subscriber, RViz "
              "included) or 'sensor_data' (best effort)", choices=("reliable", "sensor_data"), read_only=True),
    ParamSpec("input_transport", "raw", "'raw' subscribes 'image' (sensor_msgs/Image); 'compressed' "
              "subscribes 'image/compressed' (jpeg/png)", choices=("raw", "compressed"), read_only=True),
    ParamSpec("frame_id", "", "Frame of the outputs; empty = the input image's frame (the optical frame)"),
    ParamSpec("executor", "auto", "Executor of the node process: 'auto' = the EventsExecutor where rclpy has it "
              "(Kilted, Jazzy from rclpy 7.1.4), else the SingleThreadedExecutor (Humble)",
              choices=EXECUTORS, read_only=True),
    ParamSpec("diagnostics_period_s", 1.0, "Period of the /diagnostics status", min_value=0.1, max_value=60.0,
              read_only=True),
)
SPECS_BY_NAME = {spec.name: spec for spec in PARAM_SPECS}


@dataclass(frozen=True)
class DepthNodeParams:
    """Validated parameter values, one attribute per parameter."""

    model: str = "default"
    backend: str = "auto"
    device: str = "cpu"
    precision: str = "fp32"
    input_height: int = 0
    input_width: int = 0
    num_threads: int = 0
    flip_tta: bool = False
    max_depth_m: float = 0.0
    publish_depth: bool = True
    publish_uncertainty: bool = True
    publish_points: bool = True
    publish_colored: bool = True
    cloud_stride: int = 1
    cloud_rgb: bool = False
    max_uncertainty_m: float = 0.0
    max_relative_uncertainty: float = 0.0
    input_qos: str = "sensor_data"
    output_qos: str = "reliable"
    input_transport: str = "raw"
    frame_id: str = ""
    executor: str = "auto"
    diagnostics_period_s: float = 1.0

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> "DepthNodeParams":
        """Validate ``values`` (missing names take their defaults); raises ParameterError listing every problem."""
        merged = {spec.name: spec.default for spec in PARAM_SPECS}
        unknown = sorted(set(values) - set(merged))
        problems = [f"{name}: unknown parameter (known: {', '.join(merged)})" for name in unknown]
        merged.update({k: v for k, v in values.items() if k in merged})
        problems += [p for name, value in merged.items() if (p := check_value(name, value))]
        problems += check_combination(merged) if not problems else []
        if problems:
            raise ParameterError("; ".join(problems))
        spec_types = {spec.name: type(spec.default) for spec in PARAM_SPECS}
        return cls(**{name: spec_types[name](value) for name, value in merged.items()})

    def replace(self, **changes: Any) -> "DepthNodeParams":
        """A validated copy with ``changes`` applied."""
        return DepthNodeParams.from_values({**dataclasses.asdict(self), **changes})

    @property
    def input_size(self) -> tuple[int, int] | None:
        return (self.input_height, self.input_width) if self.input_height else None


def check_value(name: str, value: Any) -> str | None:
    """Why ``value`` is not valid for parameter ``name``, or None when it is."""
    spec = SPECS_BY_NAME.get(name)
    if spec is None:
        return f"{name}: unknown parameter"
    expected = type(spec.default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)  # 80 for 80.0 is what people write in YAML
    if type(value) is not expected:
        return f"{name}: expected {_TYPE_WORDS[expected]}, got {value!r}"
    if spec.choices and value not in spec.choices:
        return f"{name}: '{value}' is not one of {', '.join(spec.choices)}"
    if spec.min_value is not None and value < spec.min_value:
        return f"{name}: {value} is below the minimum {spec.min_value}"
    if spec.max_value is not None and value > spec.max_value:
        return f"{name}: {value} is above the maximum {spec.max_value}"
    if name == "model" and not str(value).strip():
        return "model: empty; use 'default' or a path to a checkpoint/.onnx/.engine"
    if name == "frame_id" and value.startswith("/"):
        return f"frame_id: '{value}' starts with '/', which tf2 rejects; drop the slash"
    return None


def check_combination(values: dict[str, Any]) -> list[str]:
    """Problems that involve more than one parameter."""
    problems = []
    height, width = values["input_height"], values["input_width"]
    if (height == 0) != (width == 0):
        problems.append(f"input_height={height}, input_width={width}: set both (>= 32) or both to 0")
    elif height and (height < 32 or width < 32):
        problems.append(f"input_height={height}, input_width={width}: the network needs at least 32x32")
    if values["precision"] == "fp16" and values["device"] != "cuda" and values["backend"] == "torch":
        problems.append("precision=fp16 with backend=torch needs device=cuda (on cpu: backend=onnxruntime)")
    if values["precision"] == "int8" and values["backend"] == "torch":
        problems.append("precision=int8 needs backend=onnxruntime or tensorrt (a Q/DQ .onnx from "
                        "`python -m urcdc_model.export --precision int8 --calib-images DIR`)")
    return problems


def parameter_descriptor(spec: ParamSpec) -> Any:
    """The rcl_interfaces ParameterDescriptor for ``spec`` (description, range, read-only)."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    description = spec.description + (f" ({' | '.join(spec.choices)})" if spec.choices else "")
    descriptor = ParameterDescriptor(name=spec.name, description=description, read_only=spec.read_only)
    if spec.min_value is not None and isinstance(spec.default, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(spec.min_value), to_value=float(spec.max_value), step=0.0)]
    elif spec.min_value is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(spec.min_value), to_value=int(spec.max_value), step=1)]
    if spec.choices:
        descriptor.additional_constraints = f"one of: {', '.join(spec.choices)}"
    return descriptor


def declare_parameters(node: Any) -> DepthNodeParams:
    """Declare every parameter on ``node`` and return the validated values; raises ParameterError."""
    from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

    values, problems = {}, []
    for spec in PARAM_SPECS:
        try:
            values[spec.name] = node.declare_parameter(spec.name, spec.default, parameter_descriptor(spec)).value
        except InvalidParameterTypeException as error:
            problems.append(type_problem(spec, error.args[0] if error.args else ""))
        except InvalidParameterValueException as error:
            problems.append(range_problem(spec, error.args[0] if error.args else ""))
    if problems:
        raise ParameterError("; ".join(problems))
    return DepthNodeParams.from_values(values)


# What to write for each parameter type, with its article (rclpy's own text says "expecting type 'DOUBLE'").
_TYPE_WORDS = {bool: "a bool (true or false)", int: "an integer", float: "a double (write 80.0, not 80)",
               str: "a string"}


def type_problem(spec: ParamSpec, rclpy_message: str) -> str:
    """'name: expected an integer, got 'abc' (a string)' from rclpy's InvalidParameterTypeException text
    ("Trying to set parameter 'x' to 'abc' of type 'STRING', expecting type 'INTEGER'")."""
    match = re.search(r"to '(.*)' of type '(\w+)'", rclpy_message)
    got = f", got '{match.group(1)}' (type {match.group(2).lower()})" if match else ""
    return f"{spec.name}: expected {_TYPE_WORDS[type(spec.default)]}{got}"


def range_problem(spec: ParamSpec, rclpy_message: str) -> str:
    """The same words check_value uses, from rclpy's InvalidParameterValueException text
    ("Invalid parameter value (40) for parameter. Reason: ... out of range ...")."""
    match = re.search(r"value \((.*?)\) for parameter", rclpy_message)
    if match:
        try:
            problem = check_value(spec.name, type(spec.default)(match.group(1)))
        except ValueError:
            problem = None
        if problem:
            return problem
    reason = rclpy_message.split("Reason: ", 1)[-1]
    return f"{spec.name}: {reason}"
