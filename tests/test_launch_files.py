"""Launch files: substitutions, the YAML frontend, and the shipped launch files."""

from __future__ import annotations

import copy
import os
import random
import re
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from sim_bridge.launch import LaunchDescription, LaunchError
from sim_bridge.launch.schema import ACTIONS
from sim_bridge.launch.substitutions import Context, expand, expand_command, safe_eval


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
    # as ros2 launch 3.7.1 evaluates them (checked by running it from source)
    assert expand("$(and yes on)", ctx) == "true"  # booleans are YAML booleans or 1/0
    assert expand("$(equals 1 true)", ctx) == "true"  # booleans compare by truth
    assert expand("$(equals 1.0 1)", ctx) == "true"  # numbers by value
    assert expand("$(not-equals navigation 'navigation')", ctx) == "false"
    assert expand("$(if $(equals $(var n) 3) three other)", ctx) == "three"
    assert expand("$(all true 1 yes)", ctx) == "true" and expand("$(any false 0 no)", ctx) == "false"
    assert expand("$(filename)", ctx) == "/a/b/x_launch.yaml"
    assert expand("$(eval 'math.pi > 3 and int(\"$(var n)\") + 1 == 4')", ctx) == "True"


def test_command_words_keep_substituted_values_whole():
    """ros2 launch splits ``cmd``/``args`` by shell rules in the literal text only: a
    substitution's value stays one word, spaces and all (launch 3.7.1 ``_parse_cmdline``)."""
    ctx = _ctx(world="my world", n="3")
    assert expand_command("run --world $(var world) -n$(var n) 'a b'", ctx) == [
        "run",
        "--world",
        "my world",
        "-n3",
        "a b",
    ]
    assert expand_command("$(var n) $(var n)", ctx) == ["3", "3"]
    assert expand_command("pre$(var n)post x", ctx) == ["pre3post", "x"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("$(var nope)", "launch argument 'nope' does not exist"),
        ("$(env NOPE)", "environment variable 'NOPE' does not exist"),
        ("$(frobnicate x)", "unknown substitution $(frobnicate)"),
        ("$(var a", "unclosed substitution"),
        ("$(eval '__import__(\"os\")')", "unknown name '__import__'"),
        ("$(and maybe no)", "expected a boolean (true, false, 1 or 0); got 'maybe'"),
        ("$(command 'ls')", "$(command) exists in ros2 launch but sern launch does not support it"),
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
                {"include": {"file": "$(dirname)/inc_launch.yaml", "arg": [{"name": "who", "value": "world"}]}},
            ]
        },
    )
    procs = LaunchDescription(path).processes({"rate": "60"})
    # labels: exec_name, else the node's name, else the executable's; and a running number
    assert [p.label for p in procs] == ["sim-1", "twin_bridge-2", "hi-3"]
    sim = procs[0]
    assert sim.namespace == "/site_sim/inner"
    assert sim.parameters == {"odom_rate_hz": 60, "world": "navigation", "nested.a": [1, 2]}
    assert sim.params_file_key == "/site_sim/inner/sim"  # launch_ros: the full name when name and ns are known
    assert "__node:=sim" in sim.cmd and "__ns:=/site_sim/inner" in sim.cmd
    assert "robot_0/odom:=/real/odom" in sim.cmd
    assert sim.cmd[0] == sys.executable or os.access(sim.cmd[0], os.X_OK)
    assert procs[2].cmd == ["echo", "world"]
    assert procs[1].params_file_key == "/**" and procs[1].output == "log"  # ros2 launch's default output


@pytest.mark.parametrize(
    "launch, args, message",
    [
        ([{"arg": {"name": "world"}}], {}, "arg: missing required launch argument 'world'"),
        (
            [{"arg": {"name": "w", "default": "a"}}],
            {"wrold": "b"},
            "unknown launch argument(s) wrold; this file takes: w",
        ),
        ([{"nodes": {"pkg": "sern"}}], {}, "unknown action 'nodes'"),
        ([{"timer": {"period": 1.0}}], {}, "'timer' (delayed actions) is a ros2 launch action that sern launch"),
        (
            [{"node": {"pkg": "sern", "exec": "sim_node", "nmae": "x"}}],
            {},
            "node: unexpected key 'nmae'; 'node' takes:",
        ),
        (
            [{"node": {"pkg": "sern", "exec": "sim_node", "param": [{"name": "a", "value": "1", "type": "int"}]}}],
            {},
            "'type' (typed parameters",
        ),
        (
            [{"node": {"pkg": "sern", "exec": "no_such_exec"}}],
            {},
            "executable 'no_such_exec' not found in package 'sern'",
        ),
        ([{"arg": {"name": "m", "default": "x", "choice": [{"value": "a"}]}}], {}, "the default 'x' of 'm' is not one"),
        (
            [{"arg": {"name": "m", "default": "a", "choice": [{"value": "a"}, {"value": "c"}]}}],
            {"m": "b"},
            "argument 'm' is 'b'; valid choices: a, c",
        ),
        ([{"node": {"pkg": "sern", "exec": "sim_node", "if": "yes"}}], {}, "expected true, 1, false or 0"),
        ([{"node": {"pkg": "sern", "exec": "sim_node", "respawn": True}}], {}, "'node.respawn' must be a string"),
        ([{"executable": {"cmd": "true", "sigterm_timeout": 1}}], {}, "refuses 1); write 1.0"),
        ([{"executable": {"cmd": "true", "shell": "true"}}], {}, "'executable.shell' must be an unquoted true"),
        ([{"group": {"scoped": "false", "children": []}}], {}, "'group.scoped' must be an unquoted true or false"),
        ([{"executable": {"cmd": "true", "output": "screan"}}], {}, "output 'screan' is not one of screen, log"),
        ([{"executable": {"cmd": "true", "on_exit": "restart"}}], {}, "only 'shutdown' is supported"),
        ([{"executable": {"cmd": "true", "cwd": "/no/such/dir"}}], {}, "cwd '/no/such/dir' is not a directory"),
        ([{"executable": {"cmd": "true", "respawn": "maybe"}}], {}, "'respawn': expected a boolean"),
        ([{"executable": {"cmd": "true", "respawn_delay": -1.0}}], {}, "must be zero or more"),
        (
            [{"let": {"name": "sigterm_timeout", "value": "soon"}}, {"executable": {"cmd": "true"}}],
            {},
            "launch configuration sigterm_timeout='soon' is not a number",
        ),
        (
            [{"node": {"pkg": "sern", "exec": "sim_node", "param": [{"from": "/no/such.yaml"}]}}],
            {},
            "parameter file '/no/such.yaml' does not exist",
        ),
        ([{"node": {"pkg": "sern", "exec": "sim_node", "name": "my-node"}}], {}, "'my-node' is not a valid ROS name"),
        ([{"include": {"file": "/no/such_launch.yaml"}}], {}, "cannot include: /no/such_launch.yaml: no such launch"),
        ([{"executable": {"cmd": "echo $(eval '1/0')"}}], {}, "$(eval '1/0'): division by zero"),
    ],
)
def test_launch_file_errors(tmp_path, launch, args, message):
    path = _write(tmp_path, {"launch": launch})
    with pytest.raises(LaunchError) as info:
        LaunchDescription(path).processes(args)
    assert message in str(info.value)
    assert re.match(rf"{re.escape(str(path))}(:\d+)?: ", str(info.value)), "every error names the file (and line)"


def test_unknown_package_is_an_error_even_when_the_executable_exists_elsewhere(tmp_path, monkeypatch):
    """An unknown ``pkg`` is refused for what it is, even where a program called ``exec``
    exists (here ``python``, in this venv's scripts folder and on PATH). ros2 launch 3.7.1:
    "package 'nopkg' not found, searching: [...]"; and an executable must be in the package's
    ``lib/<pkg>``: "executable 'x' not found on the libexec directory"."""
    assert (Path(sys.executable).parent / "python").exists()
    cases = [
        ({"pkg": "nopkg", "exec": "python"}, "package 'nopkg' not found"),
        # sern exists, but python is not one of its executables (not in lib/sern, not its console script)
        ({"pkg": "sern", "exec": "python"}, "executable 'python' not found in package 'sern'"),
        ({"pkg": "sern", "exec": "../bin/python"}, "give the executable's name, not a path"),
    ]
    for node, message in cases:
        path = _write(tmp_path, {"launch": [{"node": node}]})
        with pytest.raises(LaunchError) as info:
            LaunchDescription(path).processes({})
        assert message in str(info.value), node
    # a package of another prefix: its executables live in lib/<pkg> only, not on PATH
    prefix = tmp_path / "prefix"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (prefix / "share" / "ament_index" / "resource_index" / "packages" / "demo_pkg").touch()
    (prefix / "lib" / "demo_pkg").mkdir(parents=True)
    talker = prefix / "lib" / "demo_pkg" / "talker"
    talker.write_text("#!/bin/sh\necho hi\n")
    talker.chmod(0o755)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))
    path = _write(tmp_path, {"launch": [{"node": {"pkg": "demo_pkg", "exec": "talker"}}]})
    assert LaunchDescription(path).processes({})[0].cmd[0] == str(talker)
    path = _write(tmp_path, {"launch": [{"node": {"pkg": "demo_pkg", "exec": "python"}}]})
    with pytest.raises(LaunchError, match=r"executable 'python' not found in package 'demo_pkg' .*it has: talker"):
        LaunchDescription(path).processes({})


def test_every_action_in_the_vocabulary_has_a_handler():
    from sim_bridge.launch import description, schema

    missing = [k for k in schema.ACTIONS if not hasattr(description._Walker, "do_" + k.replace("-", "_"))]
    assert missing == []
    assert not set(schema.ACTIONS) & set(schema.ROS2_ONLY_ACTIONS)


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


def test_mutated_shipped_launch_files_give_launch_errors_only(tmp_path):
    """A few hundred seeded mutations of the shipped launch files (wrong types, missing
    and unknown keys, broken substitutions, bad actions): each one expands or is refused
    with a LaunchError naming the file; never another exception (a traceback for the user)."""
    rng = random.Random(16)
    junk = [
        None,
        5,
        1.5,
        True,
        "",
        "$(",
        "$(var nope)",
        "$(eval '1/0')",
        "$(eval '9**9**9')",
        [],
        {},
        [1, "a"],
        {"a": 1},
    ]
    originals = {p.name: yaml.safe_load(p.read_text()) for p in sorted((REPO / "launch").glob("*_launch.yaml"))}
    outcomes = {"ok": 0, "refused": 0}
    for case in range(400):
        name = rng.choice(sorted(originals))
        tree = copy.deepcopy(originals[name])
        actions = tree["launch"]
        i = rng.randrange(len(actions))
        ((_kind, body),) = actions[i].items()
        move = rng.randrange(6)
        if move == 0 and body:
            body.pop(rng.choice(sorted(body)))
        elif move == 1 and body:
            body[rng.choice(sorted(body))] = rng.choice(junk)
        elif move == 2:
            body[rng.choice(["nmae", "if", "unless", "respawn", "output", "shell", "param"])] = rng.choice(junk)
        elif move == 3:
            actions[i] = {rng.choice([*sorted(ACTIONS), "nodes", "timer"]): body}
        elif move == 4 and isinstance(body.get("param"), list) and body["param"]:
            body["param"][rng.randrange(len(body["param"]))] = rng.choice([{"name": "x"}, {"from": 5}, {"value": 1}, 7])
        else:
            actions.insert(
                i, rng.choice([{"arg": {"name": "site", "default": "x"}}, {"group": junk[:3]}, 5, {"a": 1, "b": 2}])
            )
        path = tmp_path / f"case{case}_launch.yaml"
        path.write_text(yaml.dump(tree, Dumper=yaml.CSafeDumper, sort_keys=False))
        try:
            LaunchDescription(path).processes({"site": "robot"} if name == "site_link_launch.yaml" else {})
            outcomes["ok"] += 1
        except LaunchError as err:
            assert str(err).startswith(str(path)), err
            outcomes["refused"] += 1
    assert outcomes["ok"] > 20 and outcomes["refused"] > 100, outcomes
