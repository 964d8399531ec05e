"""Static checks of launch/depth.launch.py and config/depth.rviz (launch/launch_ros are not installable here).

The launch file is parsed, not run: every name it imports must be public launch / launch_ros API,
every LaunchConfiguration must be declared, the executables and files it references must be
installed by setup.py.
"""
import ast
import re

import yaml

from conftest import REPO_ROOT

LAUNCH_FILE = REPO_ROOT / "launch" / "depth.launch.py"
RVIZ_FILE = REPO_ROOT / "config" / "depth.rviz"
# Public names per module, from the launch / launch_ros API documentation (Humble through Kilted).
DOCUMENTED_API = {
    "launch": {"LaunchDescription", "LaunchContext"},
    "launch.actions": {"DeclareLaunchArgument", "OpaqueFunction", "SetEnvironmentVariable", "GroupAction",
                       "IncludeLaunchDescription", "ExecuteProcess", "LogInfo", "TimerAction"},
    "launch.conditions": {"IfCondition", "UnlessCondition", "LaunchConfigurationEquals"},
    "launch.substitutions": {"EnvironmentVariable", "LaunchConfiguration", "PathJoinSubstitution",
                             "PythonExpression", "TextSubstitution"},
    "launch_ros.actions": {"Node", "PushRosNamespace", "SetRemap", "SetParameter"},
    "launch_ros.substitutions": {"FindPackageShare"},
}
EXPECTED_ARGUMENTS = {"params_file", "image", "camera_info", "namespace", "model", "use_rviz", "fixed_frame"}


def _tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == name]


def _keyword(call: ast.Call, name: str):
    return next((k.value for k in call.keywords if k.arg == name), None)


def test_imports_only_documented_launch_api():
    imported = {}
    for node in ast.walk(_tree()):
        if isinstance(node, ast.ImportFrom):
            imported.setdefault(node.module, set()).update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            raise AssertionError(f"plain `import {node.names[0].name}`: use the documented from-imports")
    assert imported, "no imports?"
    for module, names in imported.items():
        assert module in DOCUMENTED_API, f"{module} is not a launch/launch_ros module"
        assert names <= DOCUMENTED_API[module], f"{module}: {names - DOCUMENTED_API[module]} not documented API"
    functions = {n.name for n in ast.walk(_tree()) if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


def test_arguments_declared_and_every_configuration_declared():
    tree = _tree()
    declared = {call.args[0].value for call in _calls(tree, "DeclareLaunchArgument")}
    assert declared == EXPECTED_ARGUMENTS
    for call in _calls(tree, "DeclareLaunchArgument"):
        assert _keyword(call, "description") is not None, f"{call.args[0].value}: no description"
        assert _keyword(call, "default_value") is not None, f"{call.args[0].value}: no default"
    used = {call.args[0].value for call in _calls(tree, "LaunchConfiguration")}
    assert used == declared, f"used but not declared: {used - declared}; declared but unused: {declared - used}"


def test_fastdds_profile_set_unless_the_user_has_one():
    (call,) = _calls(_tree(), "SetEnvironmentVariable")
    assert call.args[0].value == "FASTDDS_DEFAULT_PROFILES_FILE"
    value = call.args[1]
    assert isinstance(value, ast.Call) and value.func.id == "EnvironmentVariable"
    assert value.args[0].value == "FASTDDS_DEFAULT_PROFILES_FILE", "the user's own setting must win"
    assert "fastdds_large_data.xml" in ast.unparse(_keyword(value, "default_value"))


def test_nodes_reference_installed_executables_and_files():
    tree = _tree()
    setup_py = (REPO_ROOT / "setup.py").read_text()
    nodes = {_keyword(call, "executable").value: call for call in _calls(tree, "Node")}
    assert set(nodes) == {"depth_node", "rviz2"}
    assert re.search(r'"depth_node = urcdc_ros\.depth_node:main"', setup_py)
    depth_node = nodes["depth_node"]
    assert _keyword(depth_node, "package").id == "PACKAGE"
    remapped = {ast.literal_eval(pair.elts[0]) for pair in _keyword(depth_node, "remappings").elts}
    assert remapped == {"image", "image/compressed", "camera_info"}
    assert _keyword(depth_node, "namespace").id == "namespace"
    assert _keyword(nodes["rviz2"], "condition") is not None
    # Files joined under config/ exist and are installed by setup.py's data_files globs.
    for call in _calls(tree, "PathJoinSubstitution"):
        parts = [e.value for e in call.args[0].elts if isinstance(e, ast.Constant)]
        if parts and parts[0] == "config":
            path = REPO_ROOT.joinpath(*parts)
            assert path.is_file(), path
            assert f'glob("config/*{path.suffix}")' in setup_py, f"{path.name} not installed"
    assert 'glob("launch/*.launch.py")' in setup_py
    assert re.search(r'PACKAGE = "urcdc_ros"', LAUNCH_FILE.read_text())


def test_camera_info_default_sits_beside_the_image():
    source = LAUNCH_FILE.read_text()
    tree = _tree()
    (function,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "camera_info_beside"]
    namespace = {}
    exec(compile(ast.Module(body=[function], type_ignores=[]), str(LAUNCH_FILE), "exec"), namespace)
    camera_info_beside = namespace["camera_info_beside"]
    assert camera_info_beside("/camera/image_raw") == "/camera/camera_info"
    assert camera_info_beside("/kitti/camera_color_left/image_raw") == "/kitti/camera_color_left/camera_info"
    assert camera_info_beside("image") == "camera_info"
    assert camera_info_beside("/image") == "/camera_info"
    assert camera_info_beside("front/image_rect") == "front/camera_info"
    assert "camera_info_beside(image)" in source


def test_rviz_config_shows_depth_uncertainty_and_cloud():
    config = yaml.safe_load(RVIZ_FILE.read_text())
    manager = config["Visualization Manager"]
    displays = {(d["Class"], d.get("Topic", {}).get("Value")) for d in manager["Displays"]}
    assert ("rviz_default_plugins/Image", "/depth") in displays
    assert ("rviz_default_plugins/Image", "/depth/uncertainty") in displays
    assert ("rviz_default_plugins/PointCloud2", "/points") in displays
    # Every topic RViz shows is remapped into the namespace by the launch file.
    launch_topics = ast.literal_eval(re.search(r"RVIZ_TOPICS = (\(.*?\))", LAUNCH_FILE.read_text()).group(1))
    assert {topic for _, topic in displays if topic} == set(launch_topics)
    # Fixed frame: the camera's optical frame, the same default the launch file passes with -f.
    fixed_frame = manager["Global Options"]["Fixed Frame"]
    (call,) = [c for c in _calls(_tree(), "DeclareLaunchArgument") if c.args[0].value == "fixed_frame"]
    assert _keyword(call, "default_value").value == fixed_frame
    assert fixed_frame.endswith("_optical_frame")
