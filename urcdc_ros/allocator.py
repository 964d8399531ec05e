"""Keep freed multi-MB buffers in the process instead of returning them to the kernel (glibc only).

Every published or received image allocates a few buffers of 1.4–15 MB (the C message, the CDR
payload, Python's copy). glibc serves blocks that large with fresh ``mmap`` pages, or trims the
heap when they are freed, so each frame pays a page fault per 4 KiB touched: serialising one
1242×375 32FC1 image took 17 ms instead of 0.7 ms on the development VM. Raising the mmap and trim
thresholds lets freed blocks be reused; the process keeps at most its peak working set.

Process-wide, so only process entry points call it (the node's ``main``, the bag tools).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1  # glibc mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20  # glibc's maximum on 64-bit: larger blocks are always mmap'ed
TRIM_THRESHOLD_BYTES = 256 << 20  # free memory beyond this at the heap's top is still returned


def keep_large_buffers() -> bool:
    """Set glibc's mmap/trim thresholds for large per-frame buffers; False where not glibc (no change)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(mallopt(M_TRIM_THRESHOLD,
                                                                                   TRIM_THRESHOLD_BYTES))
