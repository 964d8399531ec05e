"""urcdc_ros: one ament_python package holding the model (urcdc_model) and the ROS 2 side (urcdc_ros).

Works with `colcon build` in a ROS 2 workspace and with `pip install -e .` on pip-only machines.
ROS wheels stay out of install_requires: on a real ROS install rclpy comes from apt; the `ros`
extra pulls the PyPI builds for machines without one.
"""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "urcdc_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    description="URCDC-Depth monocular depth: model, export and ROS 2 node",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["urcdc_model", "urcdc_model.*", "urcdc_ros", "urcdc_ros.*"]),
    package_data={"urcdc_model": ["weights/*.safetensors", "weights/*.json", "weights/*.md"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz") + glob("config/*.xml")),
        (f"share/{PACKAGE}/config/model", glob("config/model/*.yaml")),
    ],
    install_requires=[
        "numpy>=1.24",
        "torch>=2.1",
        "safetensors>=0.4",
        "opencv-python-headless>=4.8",
        "pyyaml>=6",
        "tqdm>=4.60",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "rosbags>=0.10",
        "matplotlib>=3.7",
        "tensorboard>=2.14",
        "scipy>=1.10",
    ],
    extras_require={
        # The CPU development setup; GPU and Jetson installs bring their own torch build.
        "cpu": ["torch==2.13.0"],
        "ros": [
            "ros-rclpy[fastrtps]",
            "ros-sensor-msgs",
            "ros-std-msgs",
            "ros-geometry-msgs",
            "ros-diagnostic-msgs",
        ],
        "export": ["onnxscript>=0.1"],
        "dev": [
            "pytest>=7",
            "pytest-timeout>=2",
            "pot>=0.9",
            "onnxscript>=0.1",
            # test/test_packaging.py builds the package with colcon as a ROS 2 workspace would
            "colcon-common-extensions",
            # test/test_ros_compat.py: no syntax or standard library newer than Humble's Python 3.10
            "vermin>=1.6",
            # profiling the node process (docs/BENCHMARKS.md, node overhead)
            "py-spy>=0.3",
        ],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "depth_node = urcdc_ros.depth_node:main",
            "urcdc-kitti2bag = urcdc_ros.kitti_to_bag:main",
            "urcdc-bag-bench = urcdc_ros.bag_bench:main",
            "urcdc-demo = urcdc_ros.demo:main",
        ],
    },
)
