"""What a model path names (checkpoint, ONNX, engine, or "default") and the size a model runs at."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from urcdc_model.deploy.errors import MODEL_FILE_HINT, ModelFileNotFoundError

LOG = logging.getLogger(__name__)

# The KITTI Eigen-crop size, used only when a checkpoint does not record its training size.
FALLBACK_INPUT_SIZE = (352, 1216)
ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".engine", ".plan", ".trt")


@dataclass(frozen=True)
class ModelSource:
    """What ``from_path`` was given, resolved to a file and its kind."""

    path: Path
    kind: str  # "checkpoint" | "onnx" | "engine"

    @classmethod
    def resolve(cls, path: str | Path) -> "ModelSource":
        if str(path) == "default":
            from urcdc_model.checkpoints import resolve_checkpoint

            return cls(resolve_checkpoint("default"), "checkpoint")
        resolved = Path(path).expanduser()
        if not resolved.is_file():
            raise ModelFileNotFoundError(f"{resolved}: model file not found; {MODEL_FILE_HINT}")
        suffix = resolved.suffix.lower()
        if suffix in ONNX_SUFFIXES:
            return cls(resolved, "onnx")
        if suffix in ENGINE_SUFFIXES:
            return cls(resolved, "engine")
        return cls(resolved, "checkpoint")


def checkpoint_input_size(meta: dict, path: Path) -> tuple[int, int]:
    """The training input size recorded in a checkpoint's metadata (or the KITTI size, with a warning)."""
    try:
        return check_input_size((int(meta["input_height"]), int(meta["input_width"])))
    except (KeyError, TypeError, ValueError):
        LOG.warning("%s: no input_height/input_width in the checkpoint metadata; running at %dx%d "
                    "(pass input_size=(h, w) to choose)", path, *FALLBACK_INPUT_SIZE)
        return FALLBACK_INPUT_SIZE


def onnx_run_size(meta: dict, input_size: tuple[int, int] | None, path: Path) -> tuple[int, int]:
    """The size to run an ONNX model at: its static size, or input_size for a dynamic export."""
    static = meta.get("height"), meta.get("width")
    if None not in static:
        if input_size is not None and tuple(input_size) != static:
            raise ValueError(f"{path}: exported for a fixed {static[0]}x{static[1]} input, input_size={input_size} "
                             "was asked; re-export with --dynamic or at that size")
        return int(static[0]), int(static[1])
    if input_size is not None:
        return input_size
    if "train_height" in meta and "train_width" in meta:
        return int(meta["train_height"]), int(meta["train_width"])
    return FALLBACK_INPUT_SIZE


def check_input_size(size) -> tuple[int, int]:
    height, width = int(size[0]), int(size[1])
    if height < 32 or width < 32:
        raise ValueError(f"input_size must be at least 32x32 pixels, got {height}x{width}")
    return height, width
