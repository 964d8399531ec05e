"""Long steps say what they are doing: pip and setup steps in the Makefile, progress lines when stderr is
not a terminal, the first-use ONNX export line (also in the node's log), bag_bench's hint when no node
listens."""
from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from conftest import REPO_ROOT
from urcdc_model import cli


def test_makefile_setup_shows_each_step_and_pips_progress():
    text = (REPO_ROOT / "Makefile").read_text()
    pip_lines = [line for line in text.splitlines() if "pip install" in line]
    assert pip_lines and not any(re.search(r"\s-q\b", line) for line in pip_lines), pip_lines
    assert all("--progress-bar on" in line for line in pip_lines)
    assert len(re.findall(r'@echo "\[setup \d/\d\]', text)) == 3


def test_progress_prints_lines_when_stderr_is_not_a_terminal(capsys):
    assert list(cli.progress(range(20), total=20, desc="evaluate")) == list(range(20))
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "evaluate: 2/20 frames" and lines[-1] == "evaluate: 20/20 frames" and len(lines) == 10
    assert list(cli.progress(range(5), total=5, desc="quiet", enabled=False)) == list(range(5))
    assert list(cli.progress(range(5), total=5, desc="bar only", plain_lines=False)) == list(range(5))
    assert capsys.readouterr().err == ""


def test_first_use_export_announces_size_and_time(tmp_path, monkeypatch, caplog):
    import torch

    from urcdc_model.deploy import onnx_export

    def fake_export(deploy_model, path, height, width, **kwargs):  # the real one is covered by test_runtime
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(b"onnx")
        return path, []

    monkeypatch.setattr(onnx_export, "export_verified_onnx", fake_export)
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"weights")
    model = torch.nn.Linear(1000, 1000)  # 1.0 M parameters
    with caplog.at_level(logging.INFO, logger=onnx_export.LOG.name):
        onnx_export.cached_onnx_export(model, checkpoint, 96, 320, 80.0, tmp_path / "cache")
        first = caplog.text
        caplog.clear()
        onnx_export.cached_onnx_export(model, checkpoint, 96, 320, 80.0, tmp_path / "cache")
    assert "first use of model.safetensors at 96x320" in first and "1.0 M parameters" in first
    assert "up to a minute" in first
    assert caplog.text == ""  # cached: nothing to announce


def test_node_forwards_progress_lines_to_its_ros_log_while_attached():
    """Attached for the node's lifetime (a new camera size mid-stream exports a model: the user must see
    why that frame is late), removed with the node, and the logger's level restored."""
    from urcdc_ros.depth_node import ProgressForwarding

    class RosLogger:
        def __init__(self):
            self.lines = []

        def info(self, text):
            self.lines.append(("info", text))

        def warning(self, text):
            self.lines.append(("warning", text))

    ros = RosLogger()
    logger = logging.getLogger("urcdc_model.deploy.onnx_export")
    old_level = logger.level
    forwarding = ProgressForwarding(ros)
    forwarding.attach()
    try:
        logger.info("first use of %s", "x.safetensors")
        logger.warning("slow")
    finally:
        forwarding.detach()
    logger.warning("after the node is gone")
    assert ros.lines == [("info", "first use of x.safetensors"), ("warning", "slow")]
    assert logger.level == old_level


@pytest.mark.parametrize("launched, expected", [(False, "Add --launch-node"), (True, "node log: n.log")])
def test_bag_bench_says_what_it_waits_for(monkeypatch, capsys, launched, expected):
    import time

    from urcdc_ros import bag_bench

    class Launched:
        log_path = Path("n.log")

    hint = bag_bench._WaitingHint(Launched() if launched else None, "/")
    hint.maybe_say("/image", time.monotonic() + 30)
    assert capsys.readouterr().err == ""  # not in the first seconds
    monkeypatch.setattr(bag_bench._WaitingHint, "AFTER_S", 0.0)
    hint.maybe_say("/image", time.monotonic() + 30)
    hint.maybe_say("/image", time.monotonic() + 30)
    err = capsys.readouterr().err
    assert expected in err and len(err.splitlines()) == 1  # said once
