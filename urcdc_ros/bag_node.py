"""The depth node under test, for the bag tools: its config files, its process, its parameters and
its model timed alone.

``NodeProcess`` runs ``python -m urcdc_ros.depth_node`` with the Fast DDS large-data profile;
``model_only_latency`` times the node's own inference call in this process, the baseline for
end-to-end latency.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from urcdc_ros.bag_frames import BagFrame

PACKAGE = "urcdc_ros"
FASTDDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"


def package_config_file(name: str) -> Path | None:
    """A file of ``config/`` from the source checkout, else from the installed share folder."""
    candidates = [Path(__file__).resolve().parents[1] / "config" / name,
                  Path(sys.prefix) / "share" / PACKAGE / "config" / name]
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory(PACKAGE)) / "config" / name)
    except Exception:  # not in a ROS workspace: the other places are enough
        pass
    return next((p for p in candidates if p.is_file()), None)


def apply_fastdds_profile(env: dict[str, str] | os._Environ = os.environ) -> str | None:
    """Point Fast DDS at the large-data profile unless the user chose one; returns the profile in use."""
    if env.get(FASTDDS_PROFILE_ENV):
        return env[FASTDDS_PROFILE_ENV]
    profile = package_config_file("fastdds_large_data.xml")
    if profile is not None:
        env[FASTDDS_PROFILE_ENV] = str(profile)
        return str(profile)
    return None


# ---------------------------------------------------------------------------------------------
# Model-only baseline: the same inference call the node makes, in this process, without ROS


def node_parameters(params_file: Path | None = None, node_params: Sequence[str] = ()):
    """The depth node's validated parameters from a params file and ``name:=value`` overrides."""
    import yaml

    from urcdc_ros.params import DepthNodeParams

    values: dict = {}
    params_file = params_file or package_config_file("depth.yaml")
    if params_file is not None:
        for section in (yaml.safe_load(Path(params_file).read_text()) or {}).values():
            if isinstance(section, dict) and isinstance(section.get("ros__parameters"), dict):
                values.update(section["ros__parameters"])
    for assignment in node_params:
        name, sep, text = assignment.partition(":=")
        if not sep:
            raise ValueError(f"--node-param '{assignment}': write NAME:=VALUE")
        values[name.strip()] = yaml.safe_load(text)  # ROS reads -p values as YAML too
    return DepthNodeParams.from_values(values)


class ModelBaseline:
    """The node's own inference call (``infer_depth``) on a bag's frames, in this process, timed alone.

    Each frame gets the K the node would take from its camera_info (or the fallback without one).
    Construction makes one untimed call per frame size and camera (a new camera plans its input,
    and may export a network of that size, once). The process is configured as the node's
    (``allocator.keep_large_buffers``) and every call runs on a worker thread, as the node's
    depth_worker: on the main thread torch's pre-processing once contended with onnxruntime's
    thread pool (3x slower on 2 cores), which the node never sees.
    """

    def __init__(self, frames: Sequence[BagFrame], params):
        from urcdc_model.deploy.runtime import DepthRuntime
        from urcdc_ros.allocator import keep_large_buffers
        from urcdc_ros.camera import frame_camera

        keep_large_buffers()
        self.params = params
        self.runtime = DepthRuntime.from_path(params.model, backend=params.backend, device=params.device,
                                              precision=params.precision, input_size=params.input_size,
                                              num_threads=params.num_threads or None)
        self.images = [frame.rgb() for frame in frames]
        self.cameras = [frame_camera(frame.camera_info, frame.width, frame.height, "camera_info",
                                     check_k=lambda k, frame_hw: self.runtime.plan(frame_hw, k)).k
                        for frame in frames]
        seen = set()
        for index, (rgb, k) in enumerate(zip(self.images, self.cameras)):
            key = (rgb.shape, None if k is None else k.tobytes())
            if key not in seen:
                seen.add(key)
                self.time_frame(index)

    def time_frame(self, index: int) -> tuple[float, float]:
        """(wall ms, CPU ms of this process) of the node's inference call on frame ``index``."""
        from urcdc_ros.depth_node import infer_depth

        result: list[float] = []

        def run() -> None:
            start_s, start_cpu_s = time.perf_counter(), time.process_time()
            infer_depth(self.runtime, self.images[index], self.cameras[index], self.params.flip_tta)
            result.extend(((time.perf_counter() - start_s) * 1e3, (time.process_time() - start_cpu_s) * 1e3))

        worker = threading.Thread(target=run, name="baseline_worker")
        worker.start()
        worker.join()
        return result[0], result[1]

    def summary(self, times_ms: Sequence[float], cpu_ms: Sequence[float] = ()) -> dict:
        return {"median": float(np.median(times_ms)), "p90": float(np.percentile(times_ms, 90)),
                "frames": len(times_ms), "cpu_ms_mean": float(np.mean(cpu_ms)) if len(cpu_ms) else None,
                "model": str(self.params.model), "backend": str(self.runtime.backend)}


def model_only_latency(frames: Sequence[BagFrame], params, runs: int = 10) -> dict:
    """Median/p90 ms of the node's inference call, ``runs`` calls cycling through the bag's first frames.

    Node latency over this is what ROS adds: decode, publish, DDS transport both ways, scheduling.
    """
    baseline = ModelBaseline(frames[:runs], params)
    timed = [baseline.time_frame(run % len(baseline.images)) for run in range(runs)]
    return baseline.summary([wall for wall, _ in timed], [cpu for _, cpu in timed])


# ---------------------------------------------------------------------------------------------
# The node under test, when we start it


class NodeProcess:
    """``python -m urcdc_ros.depth_node`` in a namespace, with its log in a file; stopped with SIGINT."""

    def __init__(self, namespace: str, log_path: Path, params_file: Path | None = None,
                 node_params: Sequence[str] = (), module: str = "urcdc_ros.depth_node"):
        self.log_path = log_path
        params_file = params_file or package_config_file("depth.yaml")
        command = [sys.executable, "-m", module, "--ros-args", "-r", f"__ns:={namespace}"]
        if params_file is not None:
            command += ["--params-file", str(params_file)]
        for assignment in node_params:
            command += ["-p", assignment]
        self.command = command
        env = dict(os.environ)
        apply_fastdds_profile(env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def cpu_seconds(self) -> float | None:
        """CPU time the node process has used so far (user + system), or None where /proc cannot tell."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return None

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is None:
            return
        fatal = self.fatal_message()
        if fatal:  # the node said why in one line: pass that on, not its whole log
            raise RuntimeError(f"the depth node did not start: {fatal} (log: {self.log_path})")
        raise RuntimeError(f"the depth node exited with code {code} before answering; its log "
                           f"({self.log_path}) ends with:\n{self.log_tail()}")

    def fatal_message(self) -> str | None:
        """The text of the node's last FATAL log line (rclpy's "[FATAL] [stamp] [name]: text"), if any."""
        self._log.flush()
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines() if "[FATAL]" in line]
        if not lines:
            return None
        return lines[-1].split("]: ", 1)[-1].strip()

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> "NodeProcess":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
