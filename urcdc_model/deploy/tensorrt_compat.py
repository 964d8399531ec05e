"""What each TensorRT version can do, decided in one place: network flags, precision flags, ONNX opset.

TensorRT's Python API changed under our feet three times:

- < 10: explicit batch must be requested (``NetworkDefinitionCreationFlag.EXPLICIT_BATCH``); from 10
  it is the only mode and the flag is deprecated; TensorRT 11 removed it.
- ≥ 10.12: weak typing (``BuilderFlag.FP16``/``INT8`` letting the builder pick per-layer precisions)
  is deprecated in favour of **strongly typed** networks: the ONNX's own tensor types decide the
  precision (an FP16 ONNX runs in FP16, Q/DQ pairs decide INT8). TensorRT 11 removed
  ``BuilderFlag.FP16``/``INT8``, implicit INT8 calibration (``IInt8EntropyCalibrator2``,
  ``config.int8_calibrator``) and ``Builder.platform_has_fast_fp16``.
- < 8.6: the ONNX parser has no ``LayerNormalization`` (JetPack 5 ships 8.5): export at opset 16, where
  layer norms are decomposed into elementwise ops.

INT8 always comes from an explicit Q/DQ ONNX (``urcdc_model.deploy.precision``): TensorRT supports
explicit quantization from 8.0 on, so implicit calibration (deprecated since 10.1, gone in 11) is
never used.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MIN_VERSION = (8, 5)  # JetPack 5.1; older parsers miss ops the Swin graph needs
OPSET_WITH_LAYERNORM = 17
OPSET_WITHOUT_LAYERNORM = 16


def parse_version(text: str) -> tuple[int, int, int]:
    """'10.16.1.11' → (10, 16, 1)."""
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(text))
    if not match:
        raise ValueError(f"not a TensorRT version: '{text}'")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


@dataclass(frozen=True)
class TensorRTCapabilities:
    """The API surface of one TensorRT version, as far as building and running our engines needs it."""

    version: str
    explicit_batch_flag: bool      # create_network needs EXPLICIT_BATCH (< 10)
    builder_precision_flags: bool  # BuilderFlag.FP16 / INT8 exist (< 11)
    strongly_typed: bool           # build FP16/INT8 as strongly typed networks (≥ 10.12; the only way on 11)
    weak_typing: bool              # networks without STRONGLY_TYPED are allowed (< 11)
    has_fast_fp16_query: bool      # Builder.platform_has_fast_fp16 exists (< 11)
    onnx_opset: int                # the opset to export for this parser

    @classmethod
    def for_version(cls, version: str) -> "TensorRTCapabilities":
        major, minor, _ = parse_version(version)
        return cls(
            version=str(version),
            explicit_batch_flag=major < 10,
            builder_precision_flags=major < 11,
            strongly_typed=(major, minor) >= (10, 12),
            weak_typing=major < 11,
            has_fast_fp16_query=major < 11,
            onnx_opset=OPSET_WITHOUT_LAYERNORM if (major, minor) < (8, 6) else OPSET_WITH_LAYERNORM,
        )

    @property
    def supported(self) -> bool:
        return parse_version(self.version)[:2] >= MIN_VERSION


@dataclass(frozen=True)
class BuildPlan:
    """How to build one precision on one TensorRT version."""

    onnx_precision: str                 # the ONNX the parser must get: "fp32" | "fp16" | "int8" (Q/DQ)
    network_flags: tuple[str, ...]      # NetworkDefinitionCreationFlag names
    builder_flags: tuple[str, ...]      # BuilderFlag names


def build_plan(caps: TensorRTCapabilities, precision: str) -> BuildPlan:
    """The ONNX precision and flags for ``precision`` ("fp32" | "fp16" | "int8") on this TensorRT."""
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"precision must be fp32, fp16 or int8; got '{precision}'")
    network = ("EXPLICIT_BATCH",) if caps.explicit_batch_flag else ()
    if precision == "fp32":
        # Weakly typed FP32 is still fine where it exists; on 11 every network is strongly typed.
        return BuildPlan("fp32", network + (() if caps.weak_typing else ("STRONGLY_TYPED",)), ())
    if caps.strongly_typed:
        return BuildPlan(precision, network + ("STRONGLY_TYPED",), ())
    if precision == "fp16":
        # Weak typing: the FP32 ONNX with FP16 kernels allowed; the builder keeps FP32 where it must.
        return BuildPlan("fp32", network, ("FP16",))
    # Explicit quantization in a weakly typed network: INT8 where the Q/DQ pairs say, FP16 allowed elsewhere.
    return BuildPlan("int8", network, ("INT8", "FP16"))
