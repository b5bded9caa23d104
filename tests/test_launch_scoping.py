"""Scoping and parameter precedence mean what they mean in ros2 launch.

Every expectation here was first observed by running the same launch file with launch 3.7.1
/ launch_ros 0.28.0 from source (see docs/launch.md); where sern deliberately differs, the
test says so.
"""

from __future__ import annotations

import sys

import pytest
import yaml
from launch_helpers import Run, package_prefix, write_launch
from ros_helpers import fresh_domain

from sim_bridge.launch import LaunchDescription, LaunchError


def _echoes(path, arguments=None) -> dict[str, str]:
    """label base → the words its ``echo`` would print."""
    return {p.label.rsplit("-", 1)[0]: " ".join(p.cmd[1:]) for p in LaunchDescription(path).processes(arguments or {})}


def test_include_arguments_leak_groups_confine(tmp_path):
    include = write_launch(
        tmp_path / "inc_launch.yaml",
        [
            {"arg": {"name": "who", "default": "inc-default"}},
            {"arg": {"name": "shared", "default": "inc-shared-default"}},
            {"let": {"name": "from_inc", "value": "set-in-include"}},
            {"set_env": {"name": "INC_ENV", "value": "inc-env"}},
            {"executable": {"cmd": "echo who=$(var who) shared=$(var shared) outer=$(var outer NONE)", "name": "inc"}},
        ],
    )
    path = write_launch(
        tmp_path / "main_launch.yaml",
        [
            {"arg": {"name": "outer", "default": "outer-val"}},
            {"let": {"name": "shared", "value": "parent-shared"}},
            {"include": {"file": str(include), "arg": [{"name": "who", "value": "passed"}]}},
            {
                "executable": {
                    "cmd": "echo who=$(var who NONE) from_inc=$(var from_inc NONE) env=$(env INC_ENV NONE)",
                    "name": "after",
                }
            },
            {
                "group": {
                    "scoped": True,
                    "children": [
                        {"let": {"name": "in_scoped", "value": "x"}},
                        {"include": {"file": str(include), "arg": [{"name": "who", "value": "grouped"}]}},
                    ],
                }
            },
            {"executable": {"cmd": "echo in_scoped=$(var in_scoped NONE) who=$(var who NONE)", "name": "after2"}},
            {
                "group": {
                    "scoped": False,
                    "children": [
                        {"let": {"name": "in_unscoped", "value": "y"}},
                        {"arg": {"name": "declared_in_group", "default": "dg"}},
                    ],
                }
            },
            {
                "executable": {
                    "cmd": "echo in_unscoped=$(var in_unscoped NONE) dg=$(var declared_in_group NONE)",
                    "name": "after3",
                }
            },
            {"let": {"name": "keepme", "value": "k"}},
            {
                "group": {
                    "forwarding": False,
                    "keep": [
                        {"name": "keepme", "value": "$(var keepme)"},
                        {"name": "renamed", "value": "$(var outer)"},
                    ],
                    "children": [
                        {
                            "executable": {
                                "cmd": "echo outer=$(var outer NONE) keepme=$(var keepme NONE) "
                                "renamed=$(var renamed NONE) env=$(env INC_ENV NONE)",
                                "name": "nofwd",
                            }
                        }
                    ],
                }
            },
        ],
    )
    # what ros2 launch 3.7.1 printed for the same file
    assert _echoes(path) == {
        "inc": "who=grouped shared=parent-shared outer=outer-val",  # the second include's (first one's below)
        "after": "who=passed from_inc=set-in-include env=inc-env",  # an include is not a scope
        "after2": "in_scoped=NONE who=passed",  # a group is
        "after3": "in_unscoped=y dg=dg",  # unless scoped: false
        "nofwd": "outer=NONE keepme=k renamed=outer-val env=NONE",  # forwarding: false keeps only `keep`
    }
    first = LaunchDescription(path).processes({})[0]
    assert " ".join(first.cmd[1:]) == "who=passed shared=parent-shared outer=outer-val"


def test_arg_in_groups(tmp_path):
    """An ``arg``'s default set inside a scoped group ends with it; a value given on the
    command line is there before and after; ``scoped: false`` ignores ``forwarding`` and
    just sets its ``keep`` values (ros2 launch 3.7.1)."""
    path = write_launch(
        tmp_path / "groups_launch.yaml",
        [
            {
                "group": [
                    {"arg": {"name": "inner", "default": "d"}},
                    {"executable": {"cmd": "echo inner=$(var inner)", "name": "a"}},
                ]
            },
            {"executable": {"cmd": "echo inner=$(var inner NONE)", "name": "b"}},
            {
                "group": {
                    "scoped": False,
                    "forwarding": False,
                    "keep": [{"name": "k", "value": "v"}],
                    "children": [{"executable": {"cmd": "echo k=$(var k NONE) inner=$(var inner NONE)", "name": "c"}}],
                }
            },
            {"executable": {"cmd": "echo k=$(var k NONE)", "name": "d"}},
        ],
    )
    assert _echoes(path) == {"a": "inner=d", "b": "inner=NONE", "c": "k=v inner=NONE", "d": "k=v"}
    assert _echoes(path, {"inner": "x"}) == {"a": "inner=x", "b": "inner=x", "c": "k=v inner=x", "d": "k=v"}


def test_namespace_global_parameters_and_remaps_in_scope(tmp_path, monkeypatch):
    prefix = package_prefix(tmp_path / "prefix", "demo_pkg", {"show": "print('hi')\n"})
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    include = write_launch(
        tmp_path / "inc_launch.yaml",
        [{"push_ros_namespace": {"namespace": "from_inc"}}, {"set_parameter": {"name": "from_inc", "value": "4"}}],
    )

    def node(name):
        return {"node": {"pkg": "demo_pkg", "exec": "show", "name": name}}

    path = write_launch(
        tmp_path / "scope_launch.yaml",
        [
            {"push_ros_namespace": {"namespace": "outer_ns"}},
            {"set_remap": {"from": "a", "to": "b"}},
            {
                "group": [
                    {"set_parameter": {"name": "in_group", "value": "1"}},
                    {"set_remap": {"from": "c", "to": "d"}},
                    node("n1"),
                ]
            },
            node("n2"),
            {"set_parameter": {"name": "top", "value": "2"}},
            {"group": [{"set_parameter": {"name": "in_group2", "value": "3"}}]},
            node("n3"),
            {"group": {"forwarding": False, "children": [node("n4")]}},
            {"include": {"file": str(include)}},
            node("n5"),
        ],
    )
    procs = {p.node_name: p for p in LaunchDescription(path).processes({})}

    def ros_args(name):
        cmd = procs[name].command(tmp_path)
        return cmd[cmd.index("--ros-args") + 1 :]

    # ros2 launch 3.7.1 gives the same, except that it also passes c:=d to n2 and
    # in_group2:=3 to n3: its scoped groups copy the configuration dict but share the
    # remap and global-parameter lists, so a set_remap/set_parameter in a group leaks out
    # whenever one was set before the group. sern confines them, as a scope should.
    assert ros_args("n1") == [
        "-r",
        "__node:=n1",
        "-r",
        "__ns:=/outer_ns",
        "-p",
        "in_group:=1",
        "-r",
        "a:=b",
        "-r",
        "c:=d",
    ]
    assert ros_args("n2") == ["-r", "__node:=n2", "-r", "__ns:=/outer_ns", "-r", "a:=b"]
    assert ros_args("n3") == ["-r", "__node:=n3", "-r", "__ns:=/outer_ns", "-p", "top:=2", "-r", "a:=b"]
    assert ros_args("n4") == ["-r", "__node:=n4"]  # forwarding: false drops namespace, parameters, remaps
    assert ros_args("n5") == [  # include leaks its namespace and parameters
        "-r",
        "__node:=n5",
        "-r",
        "__ns:=/outer_ns/from_inc",
        "-p",
        "top:=2",
        "-p",
        "from_inc:=4",
        "-r",
        "a:=b",
    ]


def test_relative_include_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    """ros2 launch 3.7.1 opens a relative include path from the working directory
    ("FileNotFoundError: 'inc_launch.yaml'" when run elsewhere)."""
    (tmp_path / "sub").mkdir()
    write_launch(tmp_path / "sub" / "inc_launch.yaml", [{"executable": {"cmd": "echo included", "name": "inc"}}])
    main = write_launch(tmp_path / "sub" / "main_launch.yaml", [{"include": {"file": "inc_launch.yaml"}}])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        LaunchError, match=r"main_launch.yaml:\d+: include: no launch file 'inc_launch.yaml' in the working"
    ):
        LaunchDescription(main).processes({})
    monkeypatch.chdir(tmp_path / "sub")
    assert _echoes(main) == {"inc": "included"}
    beside = write_launch(tmp_path / "beside_launch.yaml", [{"include": {"file": "$(dirname)/sub/inc_launch.yaml"}}])
    assert _echoes(beside) == {"inc": "included"}


_PARAMS_NODE = f"""#!{sys.executable}
import sys
import rclpy
from rclpy.node import Node

rclpy.init(args=sys.argv)
node = Node("params_node", automatically_declare_parameters_from_overrides=True)
try:
    for name in sorted(node._parameters):
        p = node.get_parameter(name)
        print("param", name, repr(p.value), p.type_.name, flush=True)
finally:
    node.destroy_node()
    rclpy.shutdown()
"""


def _precedence_launch(tmp_path):
    (tmp_path / "f1.yaml").write_text(yaml.safe_dump({"/**": {"ros__parameters": {k: "from-f1" for k in "abc"}}}))
    (tmp_path / "f2.yaml").write_text(
        yaml.safe_dump({"/params_node": {"ros__parameters": {"b": "from-f2-named", "d": "from-f2-named"}}})
    )
    return write_launch(
        tmp_path / "params_launch.yaml",
        [
            {"arg": {"name": "n", "default": "5"}},
            {"set_parameter": {"name": "g", "value": "global"}},
            {"set_parameter": {"name": "a", "value": "global-a"}},
            {
                "node": {
                    "pkg": "demo_pkg",
                    "exec": "params",
                    "output": "screen",
                    "param": [
                        {"name": "a", "value": "inline-a-before"},
                        {"name": "plain_num", "value": "5"},
                        {"name": "subst_num", "value": "$(var n)"},
                        {"name": "yaml_int", "value": 7},
                        {"name": "quoted", "value": "'$(var n)'"},
                        {"from": str(tmp_path / "f1.yaml")},
                        {"name": "c", "value": "inline-c-after"},
                        {"from": str(tmp_path / "f2.yaml")},
                        {"name": "nested", "param": [{"name": "x", "value": 1.5}]},
                    ],
                }
            },
        ],
    )


def test_parameter_precedence_in_a_real_node(tmp_path, monkeypatch):
    """set_parameter rules first, then the node's param items in the order written, a later
    one winning; inline strings are YAML only when they hold a substitution. The node's
    parameters below are exactly what the same file gave under ros2 launch 3.7.1."""
    prefix = tmp_path / "prefix"
    package_prefix(prefix, "demo_pkg", {})
    (prefix / "lib" / "demo_pkg" / "params").write_text(_PARAMS_NODE)
    (prefix / "lib" / "demo_pkg" / "params").chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    monkeypatch.setenv("ROS_DOMAIN_ID", str(fresh_domain()))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    run = Run(_precedence_launch(tmp_path), tmp_path / "log")
    assert run.code == 0, run.screen
    params = {line.split()[1]: " ".join(line.split()[2:]) for line in run.lines("params") if line.startswith("param ")}
    params.pop("start_type_description_service", None)
    assert params == {
        "a": "'from-f1' STRING",  # f1 comes after both the global rule and the inline value
        "b": "'from-f2-named' STRING",
        "c": "'inline-c-after' STRING",  # written after f1
        "d": "'from-f2-named' STRING",
        "g": "'global' STRING",
        "nested.x": "1.5 DOUBLE",
        "plain_num": "'5' STRING",  # no substitution: stays a string
        "quoted": "'5' STRING",
        "subst_num": "5 INTEGER",  # a substitution: read as YAML
        "use_sim_time": "False BOOL",
        "yaml_int": "7 INTEGER",
    }


def test_arguments_declared_in_an_include_are_known(tmp_path):
    """ros2 launch lists an included file's arguments as the launch's own (``--show-args``);
    sern accepts them on the command line, and still refuses one declared nowhere."""
    include = write_launch(
        tmp_path / "inc_launch.yaml",
        [{"arg": {"name": "rate", "default": "1"}}, {"executable": {"cmd": "echo rate=$(var rate)", "name": "inc"}}],
    )
    main = write_launch(tmp_path / "main_launch.yaml", [{"include": {"file": str(include)}}])
    assert _echoes(main, {"rate": "5"}) == {"inc": "rate=5"}
    with pytest.raises(LaunchError, match=r"unknown launch argument\(s\) rtae; this file takes: rate"):
        LaunchDescription(main).processes({"rtae": "5"})
