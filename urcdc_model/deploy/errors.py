"""Errors every deploy path raises, in one place so no module needs another just for its exception."""
from __future__ import annotations

# What to pass instead of a model file that cannot be used; every ModelFileError ends with it or a narrower fix.
MODEL_FILE_HINT = ("pass a .safetensors/.ckpt checkpoint, an .onnx from `python -m urcdc_model.export`, "
                   "a TensorRT .engine, or 'default'")
REEXPORT_HINT = "re-export it with `python -m urcdc_model.export`"


class ModelFileError(ValueError):
    """A model file that cannot be used. The message is one line: the file, what it is not, and what to
    pass instead; CLIs print it as is and the node logs it as its one FATAL line."""


class ModelFileNotFoundError(ModelFileError, FileNotFoundError):
    """A model path that names no file (also a FileNotFoundError, for callers that catch that)."""


class BackendUnavailableError(RuntimeError):
    """The requested backend, device or precision cannot run on this machine (the message says why and
    what to do instead)."""


class ExportVerificationError(RuntimeError):
    """An exported model does not reproduce its reference within tolerance; nothing was written."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """An unexpected library error as one short line (its first line, whitespace collapsed): never a
    multi-paragraph message with the library's own advice."""
    first = next((line for line in str(error).splitlines() if line.strip()), "")
    text = " ".join(first.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
