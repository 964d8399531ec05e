"""Errors every deploy path raises, in one place so no module needs another just for its exception."""
from __future__ import annotations


class BackendUnavailableError(RuntimeError):
    """The requested backend, device or precision cannot run on this machine (the message says why and
    what to do instead)."""


class ExportVerificationError(RuntimeError):
    """An exported model does not reproduce its reference within tolerance; nothing was written."""
