"""Launch the urcdc depth node (and optionally RViz).

    ros2 launch urcdc_ros depth.launch.py image:=/camera/image_raw
    ros2 launch urcdc_ros depth.launch.py image:=/kitti/camera_color_left/image_raw namespace:=front use_rviz:=true

Arguments: params_file, image, camera_info (default: camera_info beside image), namespace,
model, use_rviz, fixed_frame (RViz). The Fast DDS large-data profile is applied to every process
started here unless FASTDDS_DEFAULT_PROFILES_FILE is already set.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PACKAGE = "urcdc_ros"
# The topics config/depth.rviz shows, remapped into the namespace when one is given.
RVIZ_TOPICS = ("/depth", "/depth/uncertainty", "/depth/colored", "/points")


def camera_info_beside(image_topic: str) -> str:
    """image_transport's convention: .../image_raw -> .../camera_info."""
    parent = image_topic.rstrip("/").rpartition("/")[0]
    return f"{parent}/camera_info" if parent or image_topic.startswith("/") else "camera_info"


def launch_setup(context, *args, **kwargs):
    image = LaunchConfiguration("image").perform(context)
    camera_info = LaunchConfiguration("camera_info").perform(context) or camera_info_beside(image)
    namespace = LaunchConfiguration("namespace").perform(context).strip("/")
    model = LaunchConfiguration("model").perform(context)

    parameters = [LaunchConfiguration("params_file")]
    if model:
        parameters.append({"model": model})
    depth_node = Node(
        package=PACKAGE,
        executable="depth_node",
        name="depth_node",
        namespace=namespace,
        parameters=parameters,
        remappings=[("image", image), ("image/compressed", f"{image}/compressed"), ("camera_info", camera_info)],
        output="screen",
        emulate_tty=True,
    )
    prefix = f"/{namespace}" if namespace else ""
    rviz = Node(
        package="rviz2",
        executable="rviz2",
        name="rviz2",
        arguments=["-d", PathJoinSubstitution([FindPackageShare(PACKAGE), "config", "depth.rviz"]),
                   "-f", LaunchConfiguration("fixed_frame")],
        remappings=[(topic, prefix + topic) for topic in RVIZ_TOPICS] if prefix else [],
        condition=IfCondition(LaunchConfiguration("use_rviz")),
        output="screen",
    )
    return [depth_node, rviz]


def generate_launch_description():
    share = FindPackageShare(PACKAGE)
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=PathJoinSubstitution([share, "config", "depth.yaml"]),
                              description="Node parameters (YAML with a /** key)"),
        DeclareLaunchArgument("image", default_value="image",
                              description="Camera image topic (its /compressed sibling with "
                                          "input_transport: compressed)"),
        DeclareLaunchArgument("camera_info", default_value="",
                              description="CameraInfo topic; empty = camera_info beside the image topic"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="Namespace of the outputs (<namespace>/depth, <namespace>/points, ...)"),
        DeclareLaunchArgument("model", default_value="",
                              description="Model to run (checkpoint/.onnx/.engine); empty = the one in "
                                          "params_file (default: the embedded model)"),
        DeclareLaunchArgument("use_rviz", default_value="false", description="Start RViz with config/depth.rviz"),
        DeclareLaunchArgument("fixed_frame", default_value="camera_color_left_optical_frame",
                              description="RViz fixed frame: the camera's optical frame"),
        # Multi-MB images need the large shared-memory segment in every process (node, RViz) that uses them;
        # a profile the user already chose wins.
        SetEnvironmentVariable(
            "FASTDDS_DEFAULT_PROFILES_FILE",
            EnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE",
                                default_value=PathJoinSubstitution([share, "config", "fastdds_large_data.xml"]))),
        OpaqueFunction(function=launch_setup),
    ])
