"""gpu_check: one line and exit 0 without CUDA; its per-path bookkeeping (skip, failure, budget, parity) on CPU."""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from urcdc_model.deploy.errors import BackendUnavailableError
from urcdc_model.deploy.gpu_check import NO_GPU_LINE, CheckRow, check_path, format_table, main

FRAME = np.zeros((8, 12, 3), np.uint8)
DEPTH_M = np.linspace(1.0, 50.0, 96, dtype=np.float32).reshape(8, 12)
REFERENCE = (DEPTH_M, 0.1 * DEPTH_M)


def _later() -> float:
    return time.monotonic() + 600


def test_without_cuda_one_line_and_exit_0(capsys):
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the check would run")
    assert main([]) == 0
    assert capsys.readouterr().out.strip().splitlines() == [NO_GPU_LINE]


def test_bad_model_name_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        main(["--models", "default,huge"])
    assert "unknown model(s) huge" in capsys.readouterr().err


def test_a_path_within_budget_is_timed():
    row, runner = check_path(CheckRow("m", "fake", "fp16"), lambda: (lambda rgb: (DEPTH_M * 1.001, REFERENCE[1])),
                             FRAME, REFERENCE, runs=3, warmup=1, deadline=_later())
    assert row.status == "ok" and runner is not None
    assert row.within_budget is True and row.parity == pytest.approx(1e-3, rel=1e-3)
    assert row.median_ms >= 0 and row.p90_ms >= row.median_ms and row.fps > 0


def test_a_path_outside_its_precision_budget_fails():
    """3 % deeper is fine for INT8 but not for FP16."""
    wrong = lambda: (lambda rgb: (DEPTH_M * 1.03, REFERENCE[1]))  # noqa: E731
    fp16, _ = check_path(CheckRow("m", "fake", "fp16"), wrong, FRAME, REFERENCE, 2, 0, _later())
    int8, _ = check_path(CheckRow("m", "fake", "int8"), wrong, FRAME, REFERENCE, 2, 0, _later())
    assert fp16.status.startswith("FAILED: outside") and fp16.within_budget is False
    assert int8.status == "ok" and int8.within_budget is True


def test_unavailable_failing_and_late_paths_are_reported_not_raised():
    def unavailable():
        raise BackendUnavailableError("TensorRT is not installed: pip install tensorrt\nsecond line")

    def broken():
        raise RuntimeError("CUDA error: an illegal memory access")

    skipped, _ = check_path(CheckRow("m", "TensorRT", "fp32"), unavailable, FRAME, REFERENCE, 2, 0, _later())
    failed, _ = check_path(CheckRow("m", "torch eager", "fp32"), broken, FRAME, REFERENCE, 2, 0, _later())
    late, _ = check_path(CheckRow("m", "TensorRT", "int8"), lambda: None, FRAME, REFERENCE, 2, 0, time.monotonic())
    assert skipped.status == "skipped: TensorRT is not installed: pip install tensorrt"
    assert failed.status == "FAILED: RuntimeError: CUDA error: an illegal memory access"
    assert late.status == "not run: time budget spent"
    table = format_table([skipped, failed, late])
    assert table.count("\n") == 4 and "| m | TensorRT | int8 | — |" in table
