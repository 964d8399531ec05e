"""Pipeline counters of the depth node and their /diagnostics status, without ROS state.

Callbacks and the worker thread update one ``PipelineStats``; a timer turns a ``snapshot`` into a
diagnostic_msgs/DiagnosticStatus (rates over the last period, latency percentiles, drop counts).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

import numpy as np

OK, WARN, ERROR = 0, 1, 2  # diagnostic_msgs/DiagnosticStatus levels
LATENCY_WINDOW = 100  # frames kept for the latency percentiles


@dataclass(frozen=True)
class StatsSnapshot:
    """Counts since start and rates/latencies over the last period."""

    input_rate_hz: float
    output_rate_hz: float
    latency_ms_mean: float
    latency_ms_p95: float
    inference_ms_mean: float
    frames_in: int
    frames_out: int
    dropped_stale: int
    rejected: int
    skipped_no_subscribers: int
    seconds_since_input: float


class PipelineStats:
    """Thread-safe counters: frames in/out, stale drops, rejected inputs, latencies."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frames_in = self.frames_out = self.dropped_stale = self.rejected = self.skipped = 0
        self._latency_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._inference_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)
        self._last_input_s = float("nan")
        self._period_start_s = time.monotonic()
        self._period_in = self._period_out = 0

    def frame_received(self, replaced_pending: bool) -> None:
        with self._lock:
            self.frames_in += 1
            self._period_in += 1
            self.dropped_stale += int(replaced_pending)
            self._last_input_s = time.monotonic()

    def frame_rejected(self) -> None:
        with self._lock:
            self.rejected += 1

    def frame_skipped(self) -> None:
        with self._lock:
            self.skipped += 1

    def frame_published(self, latency_ms: float, inference_ms: float) -> None:
        with self._lock:
            self.frames_out += 1
            self._period_out += 1
            self._latency_ms.append(latency_ms)
            self._inference_ms.append(inference_ms)

    def snapshot(self) -> StatsSnapshot:
        """Current counts; rates are over the time since the previous snapshot, which starts a new period."""
        with self._lock:
            now = time.monotonic()
            period_s = max(now - self._period_start_s, 1e-6)
            latency = np.asarray(self._latency_ms) if self._latency_ms else np.full(1, np.nan)
            inference = np.asarray(self._inference_ms) if self._inference_ms else np.full(1, np.nan)
            snap = StatsSnapshot(
                input_rate_hz=self._period_in / period_s,
                output_rate_hz=self._period_out / period_s,
                latency_ms_mean=float(latency.mean()),
                latency_ms_p95=float(np.percentile(latency, 95)),
                inference_ms_mean=float(inference.mean()),
                frames_in=self.frames_in,
                frames_out=self.frames_out,
                dropped_stale=self.dropped_stale,
                rejected=self.rejected,
                skipped_no_subscribers=self.skipped,
                seconds_since_input=now - self._last_input_s,
            )
            self._period_start_s, self._period_in, self._period_out = now, 0, 0
            return snap


def status_level(snap: StatsSnapshot, rejected_before: int, camera_info_problem: str | None) -> tuple[int, str]:
    """Level and one-line summary for a snapshot (``rejected_before``: the rejected count one period ago)."""
    if snap.frames_in == 0 or not snap.seconds_since_input < 5.0:
        return WARN, "no input images"
    if snap.rejected > rejected_before:
        return WARN, f"{snap.rejected - rejected_before} malformed input frame(s) dropped"
    if camera_info_problem:
        return WARN, camera_info_problem
    return OK, f"{snap.output_rate_hz:.1f} Hz out of {snap.input_rate_hz:.1f} Hz in"


def status_values(snap: StatsSnapshot) -> list[tuple[str, str]]:
    """Key/value pairs for diagnostic_msgs/KeyValue, units in the keys."""
    return [
        ("input_rate_hz", f"{snap.input_rate_hz:.2f}"),
        ("output_rate_hz", f"{snap.output_rate_hz:.2f}"),
        ("latency_ms_mean", f"{snap.latency_ms_mean:.1f}"),
        ("latency_ms_p95", f"{snap.latency_ms_p95:.1f}"),
        ("inference_ms_mean", f"{snap.inference_ms_mean:.1f}"),
        ("frames_in", str(snap.frames_in)),
        ("frames_out", str(snap.frames_out)),
        ("dropped_stale_frames", str(snap.dropped_stale)),
        ("rejected_frames", str(snap.rejected)),
        ("skipped_no_subscribers", str(snap.skipped_no_subscribers)),
    ]
