"""The house's layering, read from the source with ``ast`` (no imports run): no import cycles
between modules, dependencies pointing down the floors ``sern``/``ros_nodes`` → ``policies`` →
``sim_bridge`` → ``worlds``, and ROS (rclpy, message packages) only in ``ros_nodes`` and the
few commands listed in ``ROS_ALLOWED`` with their reason.

Every import statement counts, including those inside functions: a lazy import still ties
the two modules together (it only moves the failure to run time). Imports under
``if TYPE_CHECKING:`` do not count (they never run).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FLOORS = {"sern": 3, "ros_nodes": 3, "policies": 2, "sim_bridge": 1, "worlds": 0}
"""Each package's floor: a module may import its own package and packages on lower floors."""

SAME_FLOOR_ALLOWED = {("sern", "ros_nodes"): "the command line sits over the nodes it starts and reads"}
"""Imports between two packages on the same floor that are allowed, with the reason."""

ROS_ALLOWED = {
    "sern.link_cmd": "`sern link status` listens to /diagnostics on the ROS graph (DiagnosticArray)",
}
"""Modules outside ``ros_nodes`` that may import ROS, and why they must."""


def is_ros(module: str) -> bool:
    """rclpy and ROS interface packages (messages, services, rosidl runtimes): they need a ROS
    installation, which the core must not."""
    top = module.split(".")[0]
    return top in ("rclpy", "launch_ros", "tf2_ros", "rosidl_runtime_py") or top.endswith(("_msgs", "_srvs"))


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the imported name, resolved to a module of ours where it is one
    line: int

    def __str__(self) -> str:
        return f"{self.source} → {self.target} ({module_path(self.source)}:{self.line})"


def package_modules() -> dict[str, Path]:
    """Dotted module name → file, for every module of the five packages."""
    out = {}
    for package in FLOORS:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


MODULES = package_modules()


def module_path(module: str) -> str:
    return str(MODULES[module].relative_to(REPO)) if module in MODULES else module


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of nodes inside ``if TYPE_CHECKING:`` blocks."""
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
            if name == "TYPE_CHECKING":
                skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def _ours(name: str) -> str | None:
    """The module of ours that importing ``name`` runs (the longest known prefix), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> list[Import]:
    """Every import ``module`` makes: targets of ours resolved to modules, others as written."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_blocks(tree)
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package[: len(package) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            # ``from a import b`` runs a.b when b is a module, else a
            names = [_ours(f"{base}.{alias.name}") or base for alias in node.names]
        else:
            continue
        for name in names:
            target = _ours(name) or name
            if target != module:
                out.append(Import(module, target, node.lineno))
    return out


IMPORTS = {module: imports_of(module) for module in MODULES}


def cycles(imports: dict[str, list[Import]]) -> list[list[Import]]:
    """One cycle (as its imports) per strongly connected group of modules (Tarjan), in the
    graph of ``imports`` (module → its imports)."""
    graph = {m: sorted({i.target for i in imps if i.target in imports}) for m, imps in imports.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(v: str) -> None:  # recursion depth is bounded by the number of modules
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in graph:
        if v not in index:
            visit(v)
    return [_a_cycle_in(group, imports) for group in groups]


def _a_cycle_in(group: set[str], imports: dict[str, list[Import]]) -> list[Import]:
    """A shortest cycle through the group's first module, as the imports that make it."""
    start = min(group)
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:
        nxt = []
        for m in frontier:
            for imp in imports[m]:
                if imp.target == start:
                    return paths[m] + [imp]
                if imp.target in group and imp.target not in paths:
                    paths[imp.target] = paths[m] + [imp]
                    nxt.append(imp.target)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group always has one


def test_the_packages_parse_and_are_found():
    assert {m.split(".")[0] for m in MODULES} == set(FLOORS)
    assert "policies.mappo" in MODULES and "worlds.tasks.pursuit" in MODULES
    assert any(i.target == "policies.models" for i in IMPORTS["policies.checkpoint"])


def test_no_import_cycles_between_modules():
    found = cycles(IMPORTS)
    assert not found, "import cycles:\n" + "\n".join("  " + "  ·  ".join(map(str, c)) for c in found)


def upward(imports: list[Import]) -> list[Import]:
    """The imports that point up a floor (or across one, unless allowed)."""
    out = []
    for imp in imports:
        src, dst = imp.source.split(".")[0], imp.target.split(".")[0]
        if dst not in FLOORS or src == dst or FLOORS[dst] < FLOORS[src] or (src, dst) in SAME_FLOOR_ALLOWED:
            continue
        out.append(imp)
    return out


def ros_outside_nodes(imports: list[Import]) -> list[Import]:
    """The ROS imports of modules outside ``ros_nodes`` that are not in ``ROS_ALLOWED``."""
    return [
        imp
        for imp in imports
        if is_ros(imp.target) and imp.source.split(".")[0] != "ros_nodes" and imp.source not in ROS_ALLOWED
    ]


ALL_IMPORTS = [imp for imports in IMPORTS.values() for imp in imports]


def test_imports_point_down_the_floors():
    found = upward(ALL_IMPORTS)
    assert not found, "imports against the layering (sern/ros_nodes → policies → sim_bridge → worlds):\n  " + (
        "\n  ".join(map(str, found))
    )


def test_ros_is_imported_only_in_ros_nodes_and_the_commands_that_must():
    found = ros_outside_nodes(ALL_IMPORTS)
    assert not found, "ROS imported outside ros_nodes (the core must run without ROS):\n  " + "\n  ".join(
        map(str, found)
    )
    for module in ROS_ALLOWED:  # the allow-list names modules that exist and still need ROS
        assert any(is_ros(i.target) for i in IMPORTS.get(module, [])), f"{module} no longer imports ROS: drop it"


def test_the_checks_catch_what_they_are_for():
    """The detectors themselves, on made-up imports: a cycle, an upward import, ROS in the core."""
    a_b, b_a, b_c = Import("a", "b", 1), Import("b", "a", 2), Import("b", "c", 3)
    assert cycles({"a": [a_b], "b": [b_a, b_c], "c": []}) == [[a_b, b_a]]
    assert cycles({"a": [a_b], "b": [b_c], "c": []}) == []
    assert upward([Import("sim_bridge.env", "policies.registry", 1)])
    assert upward([Import("ros_nodes.sim_node", "sern.cli", 1)])  # across the top floor: not allowed
    assert not upward([Import("sern.cli", "ros_nodes.common", 1), Import("policies.base", "worlds.robots", 1)])
    assert ros_outside_nodes([Import("sim_bridge.link.codec", "sensor_msgs.msg", 1)])
    assert not ros_outside_nodes([Import("ros_nodes.sim_node", "rclpy.node", 1)])
    assert is_ros("rclpy.node") and is_ros("geometry_msgs.msg") and not is_ros("numpy")
    assert _ours("policies.models.MultiAgentActorCritic") == "policies.models"
    assert _ours("numpy.linalg") is None
