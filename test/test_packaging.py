"""The package installs as a ROS 2 user gets it: `colcon build` of this ament_python package."""
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import REPO_ROOT

COLCON = Path(sys.executable).parent / "colcon"


def test_package_xml_is_format3_ament_python_with_runtime_deps():
    root = ET.parse(REPO_ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "urcdc_ros"
    assert root.find("export/build_type").text == "ament_python"
    exec_deps = {e.text for e in root.findall("exec_depend")}
    assert {"rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "diagnostic_msgs", "launch_ros"} <= exec_deps


@pytest.mark.slow
def test_colcon_build_installs_node_launch_config_and_weights(tmp_path):
    if not COLCON.exists():
        pytest.fail(f"colcon not found next to {sys.executable}: install the package's [dev] extra")
    # Build from a copy so the checkout stays clean (setuptools writes egg-info next to the sources).
    src = tmp_path / "src" / "urcdc_ros"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    for rel in tracked.stdout.split():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / rel, src / rel)
    result = subprocess.run(
        [str(COLCON), "build", "--base-paths", str(tmp_path / "src"),
         "--build-base", str(tmp_path / "build"), "--install-base", str(tmp_path / "install")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    prefix = tmp_path / "install" / "urcdc_ros"
    node = prefix / "lib" / "urcdc_ros" / "depth_node"
    assert node.is_file() and node.stat().st_mode & 0o111
    share = prefix / "share" / "urcdc_ros"
    for rel in ["package.xml", "launch/depth.launch.py", "config/depth.yaml", "config/depth.rviz",
                "config/fastdds_large_data.xml"]:
        assert (share / rel).is_file(), f"{rel} not installed under share/urcdc_ros"
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "urcdc_ros").is_file()
    weights = list(prefix.glob("lib/python*/site-packages/urcdc_model/weights/default.safetensors"))
    assert weights, "embedded default model not installed with the package"
