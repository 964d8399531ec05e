"""The deploy layer has no import cycle, and dependencies point one way (CLIs → deploy → models/data).

Every import counts, the lazy ones inside functions too: a cycle hidden behind a function-level
import is still a cycle for the next engineer reading the code.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def import_graph(package: str) -> dict[str, set[str]]:
    """module → the modules of ``package`` it imports (anywhere in its body)."""
    modules = {_module_name(p): p for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            for target in targets:
                if target in modules and target != name:
                    graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_urcdc_model_has_no_import_cycle():
    graph = import_graph("urcdc_model")
    graph.pop("urcdc_model", None)  # the package __init__ imports nothing of ours
    assert find_cycle({k: v - {"urcdc_model"} for k, v in graph.items()}) is None


def test_deploy_does_not_import_the_clis():
    graph = import_graph("urcdc_model")
    clis = {"urcdc_model.export", "urcdc_model.predict", "urcdc_model.bench", "urcdc_model.evaluate",
            "urcdc_model.train", "urcdc_model.uncertainty_check"}
    for module, imports in graph.items():
        if module.startswith("urcdc_model.deploy"):
            assert not imports & clis, f"{module} imports a CLI: {imports & clis}"
        if module.startswith("urcdc_model.models"):
            assert not any(i.startswith("urcdc_model.deploy") for i in imports), f"{module} imports deploy"
        if module.startswith(("urcdc_model.data", "urcdc_model.training")):
            # training applies the camera geometry of inference (one code path); nothing else of deploy
            deploy = {i for i in imports if i.startswith("urcdc_model.deploy")}
            assert deploy <= {"urcdc_model.deploy", "urcdc_model.deploy.geometry"}, f"{module} imports {deploy}"
