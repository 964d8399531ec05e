"""ONNX export of the deployed network, verified against PyTorch with onnxruntime before it is written.

    python -m urcdc_model.export --checkpoint default --format onnx --input-size 352x1216 \
        --output urcdc_352x1216.onnx
    python -m urcdc_model.export --checkpoint CKPT --format onnx --precision int8 --calib-images frames/ \
        --output urcdc_int8.onnx     # FP16/INT8: urcdc_model.deploy.precision

The ONNX graph is ``image`` (1×3×H×W, ImageNet-normalised RGB) → ``depth`` (1×1×H×W metres) and
``uncertainty`` (1×1×H×W, expected absolute depth error in metres, see urcdc_model.deploy.uncertainty).
Static H×W by default, constant-folded (:func:`fold_constants`); ``--dynamic`` makes H and W symbolic.
Every ONNX file is checked with onnxruntime against PyTorch on a random and a real image before it
is written; a model that disagrees beyond the tolerance is not written.
"""
from __future__ import annotations

import io
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from urcdc_model.deploy.errors import REEXPORT_HINT, ExportVerificationError, ModelFileError
from urcdc_model.deploy.files import file_sha256
from urcdc_model.deploy.graph import INPUT_NAME, OUTPUT_NAMES, DeployModel
from urcdc_model.preprocessing import normalize_rgb

LOG = logging.getLogger(__name__)

ONNX_OPSET = 17
# Max relative error allowed between onnxruntime and PyTorch, per output (see max_relative_error).
PARITY_TOLERANCE = 1e-3
EXPORT_FORMAT_VERSION = "2"  # 2: static exports constant-folded. Bump when the exported graph changes meaning; part of the cache key
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


# ---------------------------------------------------------------------------------------------
# ONNX


def export_onnx(deploy_model: DeployModel, output_path: str | Path, height: int, width: int,
                dynamic: bool = False, opset: int = ONNX_OPSET, metadata: dict[str, str] | None = None) -> Path:
    """Trace ``deploy_model`` at H×W to an ONNX file (unverified; see :func:`export_verified_onnx`).

    Uses the TorchScript-based exporter (``dynamo=False``): it traces the windowed attention's
    shape arithmetic into plain ONNX ops reliably and fast on CPU, where torch 2.13's default
    dynamo exporter needs an export-clean graph and is several times slower.
    """
    import onnx

    output_path = Path(output_path)
    deploy_model = deploy_model.eval().float().cpu()
    example = torch.zeros(1, 3, height, width)
    dynamic_axes = None
    if dynamic:
        dynamic_axes = {INPUT_NAME: {2: "height", 3: "width"}}
        dynamic_axes.update({name: {2: "height", 3: "width"} for name in OUTPUT_NAMES})
    buffer = io.BytesIO()  # traced in memory so the file is written once, with our metadata
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.onnx.export(deploy_model, (example,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES), dynamic_axes=dynamic_axes,
                          do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    del buffer
    props = {"urcdc.max_depth": str(deploy_model.max_depth), "urcdc.outputs": "depth_m,uncertainty_m",
             "urcdc.export_format": EXPORT_FORMAT_VERSION, **(metadata or {})}
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    model.producer_name = "urcdc"
    onnx.checker.check_model(model)
    onnx.save(model, str(output_path))
    return output_path


def fold_constants(onnx_path: str | Path, output_path: str | Path) -> Path:
    """Constant-fold a static-shape export with onnxruntime's offline *basic* optimisation.

    The traced Swin graph computes its window shapes at run time (Shape → Gather → Concat → Reshape,
    Mod/Range/ConstantOfShape masks): 7 398 nodes, 410 of them Shape ops, for the default model at any
    static size. With the shape known, all of it is constant: 1 000 nodes remain, none of them shape
    arithmetic, which is what TensorRT's parser and the quantizer handle best. The basic level only
    folds constants, drops redundant nodes and applies fusions into standard ONNX ops (e.g. MatMul +
    Add → Gemm), so the file stays portable; the contrib-op fusions of the higher levels are left to
    each runtime. Unused opset imports that onnxruntime adds are removed again.
    """
    import onnx
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(output_path)
    ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    model = onnx.load(str(output_path))
    used = {node.domain or "" for node in model.graph.node}
    keep = [op for op in model.opset_import if (op.domain or "") in used or op.domain in ("", "ai.onnx")]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    onnx.checker.check_model(model)
    onnx.save(model, str(output_path))
    return Path(output_path)


def count_nodes(onnx_path: str | Path) -> dict[str, int]:
    """Node count per op type (and ``"total"``), to show what folding removed."""
    import collections

    import onnx

    nodes = onnx.load(str(onnx_path), load_external_data=False).graph.node
    counts = collections.Counter(node.op_type for node in nodes)
    return {"total": len(nodes), **dict(counts.most_common())}


def read_onnx_metadata(path: str | Path) -> dict:
    """Static input size (None when dynamic), max depth and training size stored in an exported model.

    Raises ModelFileError (one line: the file, what it is not, the fix) for anything that is not an
    ONNX model exported by urcdc.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not an ONNX model at all
        raise ModelFileError(f"{path}: not a valid ONNX model (truncated or not ONNX); {REEXPORT_HINT}") from exc
    props = {p.key: p.value for p in model.metadata_props}
    if "urcdc.max_depth" not in props:
        raise ModelFileError(f"{path}: no urcdc.max_depth metadata (truncated, or not exported by urcdc); "
                             f"{REEXPORT_HINT}")
    inputs = {i.name: i for i in model.graph.input}
    if INPUT_NAME not in inputs:
        raise ModelFileError(f"{path}: no input named '{INPUT_NAME}' (not exported by urcdc); {REEXPORT_HINT}")
    dims = inputs[INPUT_NAME].type.tensor_type.shape.dim
    if len(dims) != 4:
        raise ModelFileError(f"{path}: input '{INPUT_NAME}' has {len(dims)} dimensions, not 4 (N, 3, H, W); "
                             f"{REEXPORT_HINT}")
    height = dims[2].dim_value or None
    width = dims[3].dim_value or None
    try:
        meta = {"height": height, "width": width, "max_depth": float(props["urcdc.max_depth"])}
        for key in ("train_height", "train_width"):
            if f"urcdc.{key}" in props:
                meta[key] = int(props[f"urcdc.{key}"])
        if "urcdc.canonical_focal_px" in props:
            meta["canonical_focal_px"] = float(props["urcdc.canonical_focal_px"])
    except ValueError as exc:
        raise ModelFileError(f"{path}: unreadable urcdc metadata ({exc}); {REEXPORT_HINT}") from exc
    meta["checkpoint_sha256"] = props.get("urcdc.checkpoint_sha256")
    meta["precision"] = props.get("urcdc.precision", "fp32")
    return meta


def max_relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    """max |a − e| / max(|e|, 1e-3 · max|e|): relative per pixel, with a floor so values near zero
    (uncertainty where the model is sure) are compared at 0.1 % of the map's scale instead of exploding."""
    expected = expected.astype(np.float64)
    scale = np.maximum(np.abs(expected), 1e-3 * max(float(np.abs(expected).max()), 1e-12))
    return float((np.abs(actual.astype(np.float64) - expected) / scale).max())


@dataclass
class ParityResult:
    """onnxruntime vs PyTorch on one input: max relative error per output."""

    input_name: str
    errors: dict[str, float]

    @property
    def worst(self) -> float:
        return max(self.errors.values())


def check_onnx_parity(onnx_path: str | Path, deploy_model: DeployModel,
                      images: dict[str, torch.Tensor]) -> list[ParityResult]:
    """Run each normalised 1×3×H×W image through onnxruntime (CPU, full graph optimisation, as the
    runtime runs it) and PyTorch and compare the outputs. Images may differ in size (dynamic exports)."""
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ExportVerificationError("verifying an ONNX export needs onnxruntime: `pip install onnxruntime` "
                                      "(CPU is enough; on Jetson too)") from error

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"])
    deploy_model = deploy_model.eval().float().cpu()
    results = []
    for name, image in images.items():
        with torch.inference_mode():
            expected = [t.numpy() for t in deploy_model(image)]
        actual = session.run(list(OUTPUT_NAMES), {INPUT_NAME: image.numpy()})
        errors = {out: max_relative_error(a, e) for out, a, e in zip(OUTPUT_NAMES, actual, expected)}
        results.append(ParityResult(name, errors))
    return results


def verification_images(height: int, width: int, image_paths: list[Path] | None = None,
                        seed: int = 0) -> dict[str, torch.Tensor]:
    """A random image plus real ones (resized to H×W), normalised like the runtime does.

    Without real image files a procedurally rendered street frame stands in, so the check always
    covers a structured scene and not only noise.
    """
    rng = np.random.default_rng(seed)
    rgbs = {"random": rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)}
    for path in image_paths or []:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ValueError(f"{path}: not a readable image")
        rgbs[path.name] = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height),
                                     interpolation=cv2.INTER_AREA)
    if not image_paths:
        from urcdc_model.data.synthetic import render_frame

        rgbs["rendered_street"] = render_frame(seed, kind="street", height=height, width=width).rgb
    return {name: normalize_rgb(np.ascontiguousarray(rgb)).unsqueeze(0) for name, rgb in rgbs.items()}


def list_images(directory: str | Path, limit: int | None = None) -> list[Path]:
    """Image files in a folder (recursively, sorted); a clear error when there are none."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"image folder not found: {directory}")
    paths = sorted(p for p in directory.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise FileNotFoundError(f"{directory}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return paths[:limit] if limit else paths


def export_verified_onnx(deploy_model: DeployModel, output_path: str | Path, height: int, width: int,
                         dynamic: bool = False, real_images: list[Path] | None = None,
                         metadata: dict[str, str] | None = None, tolerance: float = PARITY_TOLERANCE,
                         check_sizes: list[tuple[int, int]] | None = None,
                         opset: int = ONNX_OPSET) -> tuple[Path, list[ParityResult]]:
    """Export, check parity with onnxruntime, and only then move the file to ``output_path``.

    Args:
        check_sizes: extra (H, W) sizes to verify at (dynamic exports only; default: H×W and a
            smaller size so the symbolic shapes are exercised).
    Raises:
        ExportVerificationError: an output differs by more than ``tolerance``; no file is written.
    """
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(suffix=".onnx", dir=output_path.parent, prefix=f".{output_path.stem}.")
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        LOG.info("tracing the network to ONNX at %dx%d%s (opset %d)", height, width, ", dynamic H×W" if dynamic else "",
                 opset)
        export_onnx(deploy_model, tmp_path, height, width, dynamic=dynamic, opset=opset, metadata=metadata)
        if not dynamic:  # the parity check below then covers the folded graph that is written
            fold_constants(tmp_path, tmp_path)
        sizes = [(height, width)]
        if dynamic:
            sizes += check_sizes or [(max(64, height // 2 // 32 * 32), max(64, width // 2 // 32 * 32))]
        images = {f"{name}@{h}x{w}": image for h, w in sizes
                  for name, image in verification_images(h, w, real_images).items()}
        LOG.info("verifying the ONNX against PyTorch on %d image(s) with onnxruntime", len(images))
        results = check_onnx_parity(tmp_path, deploy_model, images)
        failed = [r for r in results if r.worst > tolerance]
        if failed:
            detail = "; ".join(f"{r.input_name}: " + ", ".join(f"{k} {v:.2e}" for k, v in r.errors.items())
                               for r in failed)
            raise ExportVerificationError(f"onnxruntime disagrees with PyTorch beyond {tolerance:g} "
                                          f"(max relative error) — not writing {output_path}: {detail}")
        os.replace(tmp_path, output_path)
        return output_path, results
    finally:
        tmp_path.unlink(missing_ok=True)


def onnx_cache_path(cache_dir: Path, checkpoint_sha256: str, height: int, width: int, max_depth: float,
                    opset: int = ONNX_OPSET) -> Path:
    """Cache location of the ONNX export of one checkpoint at one size."""
    name = f"{checkpoint_sha256[:16]}_{height}x{width}_max{max_depth:g}m_op{opset}_v{EXPORT_FORMAT_VERSION}.onnx"
    return cache_dir / "onnx" / name


def cached_onnx_export(deploy_model: DeployModel, checkpoint_path: Path, height: int, width: int,
                       max_depth: float, cache_dir: Path, metadata: dict | None = None,
                       opset: int = ONNX_OPSET) -> Path:
    """The verified ONNX for a checkpoint at H×W, exported on first use and reused afterwards.

    ``metadata``: extra ``urcdc.*`` properties (training size, canonical focal length) stored in the file.
    ``opset``: 17 by default; the TensorRT path passes what the installed parser takes
    (``tensorrt_compat``: 16 below TensorRT 8.6).
    """
    sha = file_sha256(checkpoint_path)
    path = onnx_cache_path(Path(cache_dir), sha, height, width, max_depth, opset=opset)
    if path.is_file():
        return path
    # WARNING so any caller shows it without configuring logging: a first use pauses for seconds to a minute
    params_m = sum(p.numel() for p in deploy_model.parameters()) / 1e6
    LOG.warning("first use of %s at %dx%d (usually a new camera): exporting it to ONNX and verifying it "
                "(%.1f M parameters; up to a minute on a CPU), cached afterwards in %s", checkpoint_path.name,
                height, width, params_m, path.parent)
    export_verified_onnx(deploy_model, path, height, width, opset=opset,
                         metadata={"urcdc.checkpoint_sha256": sha, "urcdc.train_height": height,
                                   "urcdc.train_width": width, **(metadata or {})})
    return path
