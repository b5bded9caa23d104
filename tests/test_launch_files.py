"""Launch files: substitutions, the YAML frontend, and the shipped launch files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from sim_bridge.launch import LaunchDescription, LaunchError
from sim_bridge.launch.substitutions import Context, expand, safe_eval


def _ctx(**conf):
    return Context(configurations=conf, environment={"HOME_X": "/home/x"}, current_file=Path("/a/b/x_launch.yaml"))


def test_substitutions():
    ctx = _ctx(world="navigation", n="3")
    assert expand("$(var world)", ctx) == "navigation"
    assert expand("w_$(var world)_$(var n)", ctx) == "w_navigation_3"
    assert expand("$(var missing fallback)", ctx) == "fallback"
    assert expand("$(env HOME_X)/$(env NOPE '')", ctx) == "/home/x/"
    assert expand("$(dirname)", ctx) == "/a/b"
    assert expand("$(eval '$(var n) > 2')", ctx) == "True"
    assert expand('$(eval \'"$(var world)" != "none"\')', ctx) == "True"
    assert expand("$(not $(eval '1 == 1'))", ctx) == "false"
    assert expand("$(and true 0)", ctx) == "false" and expand("$(or false 1)", ctx) == "true"
    assert expand("$(equals a a)", ctx) == "true"
    assert expand(r"cost \$(not a sub)", ctx) == "cost $(not a sub)"
    assert expand("$(eval 'ceil(2.1) * 2')", ctx) == "6"


@pytest.mark.parametrize(
    "text, message",
    [
        ("$(var nope)", "launch argument 'nope' does not exist"),
        ("$(env NOPE)", "environment variable 'NOPE' does not exist"),
        ("$(frobnicate x)", "unknown substitution $(frobnicate)"),
        ("$(var a", "unclosed substitution"),
        ("$(eval '__import__(\"os\")')", "only literals"),
        ("$(and yes no)", "expected one of true, 1, false, 0"),
    ],
)
def test_substitution_errors(text, message):
    with pytest.raises(LaunchError) as info:
        expand(text, _ctx())
    assert message in str(info.value)


def test_safe_eval_refuses_code():
    assert safe_eval("1 + 2 * 3 == 7 and not False")
    for bad in ("open('/etc/passwd')", "(lambda: 1)()", "x.y", "[i for i in (1, 2)]"):
        with pytest.raises(LaunchError):
            safe_eval(bad)


def _write(tmp_path, data, name="t_launch.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_nodes_namespaces_params_remaps_conditions(tmp_path):
    (tmp_path / "inc_launch.yaml").write_text(
        yaml.safe_dump({"launch": [{"arg": {"name": "who"}}, {"executable": {"cmd": "echo $(var who)", "name": "hi"}}]})
    )
    path = _write(
        tmp_path,
        {
            "launch": [
                {"arg": {"name": "rate", "default": "5"}},
                {"arg": {"name": "mode", "default": "sim", "choice": [{"value": "sim"}, {"value": "twin"}]}},
                {"let": {"name": "ns", "value": "site_$(var mode)"}},
                {
                    "group": [
                        {"push-ros-namespace": {"namespace": "$(var ns)"}},
                        {
                            "node": {
                                "pkg": "sern",
                                "exec": "sim_node",
                                "name": "sim",
                                "namespace": "inner",
                                "param": [
                                    {"name": "odom_rate_hz", "value": "$(var rate)"},
                                    {"name": "world", "value": "navigation"},
                                    {"name": "nested", "param": [{"name": "a", "value": [1, 2]}]},
                                ],
                                "remap": [{"from": "robot_0/odom", "to": "/real/odom"}],
                            }
                        },
                    ]
                },
                {"node": {"pkg": "sern", "exec": "policy_node", "if": '$(eval \'"$(var mode)" == "twin"\')'}},
                {"node": {"pkg": "sern", "exec": "twin_bridge", "unless": '$(eval \'"$(var mode)" == "twin"\')'}},
                {"include": {"file": "inc_launch.yaml", "arg": [{"name": "who", "value": "world"}]}},
            ]
        },
    )
    procs = LaunchDescription(path).processes({"rate": "60"})
    assert [p.label.split("-")[0] for p in procs] == ["sim", "twin_bridge", "hi"]
    sim = procs[0]
    assert sim.namespace == "/site_sim/inner"
    assert sim.parameters == {"odom_rate_hz": 60, "world": "navigation", "nested.a": [1, 2]}
    assert "__node:=sim" in sim.cmd and "__ns:=/site_sim/inner" in sim.cmd
    assert "robot_0/odom:=/real/odom" in sim.cmd
    assert sim.cmd[0] == sys.executable or os.access(sim.cmd[0], os.X_OK)
    assert procs[2].cmd == ["echo", "world"]


@pytest.mark.parametrize(
    "launch, args, message",
    [
        ([{"arg": {"name": "world"}}], {}, "missing required launch argument 'world'"),
        (
            [{"arg": {"name": "w", "default": "a"}}],
            {"wrold": "b"},
            "unknown launch argument(s) wrold; this file takes: w",
        ),
        ([{"nodes": {"pkg": "sern"}}], {}, "unknown action 'nodes'"),
        ([{"node": {"pkg": "sern", "exec": "sim_node", "nmae": "x"}}], {}, "unexpected key(s) in 'node': nmae"),
        (
            [{"node": {"pkg": "sern", "exec": "no_such_exec"}}],
            {},
            "executable 'no_such_exec' of package 'sern' not found",
        ),
        ([{"node": {"pkg": "nopkg", "exec": "x"}}], {}, "not found"),
        ([{"arg": {"name": "m", "default": "x", "choice": [{"value": "a"}]}}], {}, "valid options: a"),
        ([{"node": {"pkg": "sern", "exec": "sim_node", "if": "yes"}}], {}, "expected true, 1, false or 0"),
    ],
)
def test_launch_file_errors(tmp_path, launch, args, message):
    path = _write(tmp_path, {"launch": launch})
    with pytest.raises(LaunchError) as info:
        LaunchDescription(path).processes(args)
    assert message in str(info.value)


def test_not_a_launch_file(tmp_path):
    path = tmp_path / "bad_launch.yaml"
    path.write_text("nodes: []\n")
    with pytest.raises(LaunchError, match="exactly one root key, 'launch'"):
        LaunchDescription(path)
    path.write_text("launch: [\n")
    with pytest.raises(LaunchError, match="invalid YAML"):
        LaunchDescription(path)


def test_shipped_launch_files_expand_with_their_defaults():
    expected = {
        "sim_launch.yaml": ["sim_node", "policy_node"],
        "twin_launch.yaml": ["robot_stand_in", "twin_bridge", "twin_sim", "policy_node"],
        "hil_launch.yaml": ["twin_bridge", "twin_sim", "policy_node"],
        "site_link_launch.yaml": ["site_link"],
    }
    shipped = {p.name for p in (REPO / "launch").glob("*_launch.yaml")}
    assert shipped == set(expected)
    required = {"site_link_launch.yaml": {"site": "robot"}}
    for name, nodes in expected.items():
        procs = LaunchDescription(REPO / "launch" / name).processes(required.get(name, {}))
        assert [p.node_name for p in procs] == nodes, name
        for p in procs:
            assert p.parameters.get("world", "navigation") == "navigation"
    sim = LaunchDescription(REPO / "launch" / "sim_launch.yaml").processes({"policy": "none", "record": "/tmp/x.mcap"})
    assert [p.node_name for p in sim] == ["sim_node", "recorder"]
    hil = LaunchDescription(REPO / "launch" / "hil_launch.yaml").processes({"odom_topic": "/husky/odom"})
    assert "robot_0/odom:=/husky/odom" in hil[0].cmd
    assert all("robot_stand_in" not in " ".join(p.cmd) for p in hil)


def test_launch_files_quote_every_non_parameter_scalar():
    # ros2 launch rejects unquoted YAML booleans/numbers where it expects strings (ros2/launch#955)
    for path in (REPO / "launch").glob("*_launch.yaml"):
        text = yaml.safe_load(path.read_text())
        for item in text["launch"]:
            ((kind, body),) = item.items()
            for key, value in body.items():
                if key in ("param", "remap", "env", "choice", "children", "arg"):
                    continue
                assert isinstance(value, str), f"{path.name}: {kind}.{key} = {value!r} must be a string"
