"""Where derived models are cached, and the hash that keys them."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path


def default_cache_dir() -> Path:
    """Where exported ONNX models and TensorRT engines are cached ($URCDC_CACHE_DIR or ~/.cache/urcdc)."""
    env = os.environ.get("URCDC_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "urcdc"


def file_sha256(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file (the cache key of everything derived from a checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
