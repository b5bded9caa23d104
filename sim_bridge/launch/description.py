"""Reading a ``*_launch.yaml`` file (the ROS 2 launch YAML frontend) into the processes it
starts: each node's command line (``--ros-args``, name, namespace, parameters file, remaps),
environment and label. Supports ``arg``, ``let``, ``set_env``, ``unset_env``, ``node``,
``executable``, ``group`` (list or ``children`` form, ``scoped``), ``push_ros_namespace``,
``include``, ``set_parameter``, ``set_remap``, and ``if``/``unless`` on every action.
Unknown actions and keys are errors, as in ``ros2 launch``.
"""

from __future__ import annotations

import copy
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim_bridge.launch.packages import find_executable, find_package_prefix, find_package_share
from sim_bridge.launch.substitutions import Context, LaunchError, expand


@dataclass
class ProcessSpec:
    """One process to start."""

    label: str
    cmd: list[str]
    env: dict[str, str]
    node_name: str | None = None
    namespace: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)  # written to a params file
    on_exit_shutdown: bool = False


@dataclass
class _Scope:
    namespace: str = ""
    global_params: dict[str, Any] = field(default_factory=dict)
    global_remaps: list[tuple[str, str]] = field(default_factory=list)


ACTION_KEYS: dict[str, set[str]] = {
    "arg": {"name", "default", "description", "choice"},
    "let": {"name", "value"},
    "set_env": {"name", "value"},
    "unset_env": {"name"},
    "node": {
        "pkg",
        "exec",
        "name",
        "namespace",
        "exec_name",
        "args",
        "ros_args",
        "param",
        "remap",
        "output",
        "respawn",
        "respawn_delay",
        "env",
        "on_exit",
        "cwd",
        "sigterm_timeout",
        "sigkill_timeout",
    },
    "executable": {"cmd", "name", "cwd", "env", "output", "shell", "on_exit"},
    "group": {"children", "scoped", "forwarding", "keep"},
    "push_ros_namespace": {"namespace"},
    "push-ros-namespace": {"namespace"},
    "include": {"file", "arg"},
    "set_parameter": {"name", "value"},
    "set_remap": {"from", "to"},
}


class LaunchDescription:
    """A parsed launch file, ready to be expanded with arguments into processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entities = _load(self.path)

    def declared_arguments(self) -> list[dict[str, Any]]:
        """The top-level ``arg`` declarations (name, default, description)."""
        return [body for kind, body in self.entities if kind == "arg"]

    def processes(self, arguments: dict[str, str], environment: dict[str, str] | None = None) -> list[ProcessSpec]:
        declared = {a.get("name") for a in self.declared_arguments()}
        unknown = sorted(set(arguments) - declared)
        if unknown:
            raise LaunchError(
                f"{self.path}: unknown launch argument(s) {', '.join(unknown)}; "
                f"this file takes: {', '.join(sorted(d for d in declared if d)) or 'none'}"
            )
        ctx = Context(
            configurations=dict(arguments),
            environment=dict(os.environ if environment is None else environment),
            current_file=self.path,
            find_package_share=find_package_share,
            find_package_prefix=find_package_prefix,
        )
        out: list[ProcessSpec] = []
        _Walker(ctx, out).run(self.entities, _Scope(), self.path)
        return out


def _load(path: Path) -> list[tuple[str, Any]]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LaunchError(f"{path}: no such launch file") from None
    except OSError as err:
        raise LaunchError(f"{path}: cannot read it ({err.strerror})") from None
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f":{mark.line + 1}" if mark else ""
        raise LaunchError(f"{path}{where}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(tree, dict) or list(tree) != ["launch"]:
        raise LaunchError(f"{path}: a launch file has exactly one root key, 'launch'")
    return _entities(tree["launch"], path, "launch")


def _entities(items: Any, path: Path, where: str) -> list[tuple[str, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise LaunchError(f"{path}: '{where}' must be a list of actions")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or len(item) != 1:
            raise LaunchError(f"{path}: {where}[{i}]: each action is a mapping with one key (its type)")
        ((kind, body),) = item.items()
        if kind not in ACTION_KEYS:
            raise LaunchError(f"{path}: {where}[{i}]: unknown action '{kind}'; supported: {', '.join(ACTION_KEYS)}")
        if kind == "group" and isinstance(body, list):
            body = {"children": body}
        if not isinstance(body, dict):
            raise LaunchError(f"{path}: {where}[{i}] ({kind}): expected a mapping of keys")
        unexpected = set(body) - ACTION_KEYS[kind] - {"if", "unless"}
        if unexpected:
            raise LaunchError(f"{path}: {where}[{i}]: unexpected key(s) in '{kind}': {', '.join(sorted(unexpected))}")
        if "if" in body and "unless" in body:
            raise LaunchError(f"{path}: {where}[{i}] ({kind}): 'if' and 'unless' cannot be used together")
        if kind == "group":
            body = {**body, "children": _entities(body.get("children"), path, f"{where}[{i}].group")}
        out.append((kind, body))
    return out


class _Walker:
    def __init__(self, ctx: Context, out: list[ProcessSpec]):
        self.ctx = ctx
        self.out = out

    def s(self, value: Any) -> str:
        """Expand a string attribute (non-strings are used as their text)."""
        return expand(value if isinstance(value, str) else str(value), self.ctx)

    def condition(self, body: dict) -> bool:
        for key, want in (("if", True), ("unless", False)):
            if key in body:
                value = self.s(body[key]).strip().lower()
                if value not in ("true", "1", "false", "0"):
                    raise LaunchError(f"'{key}: {body[key]}' expanded to {value!r}; expected true, 1, false or 0")
                return (value in ("true", "1")) == want
        return True

    def run(self, entities, scope: _Scope, path: Path) -> None:
        for kind, body in entities:
            if not self.condition(body):
                continue
            getattr(self, "do_" + kind.replace("-", "_"))(body, scope, path)

    # ---- actions -----------------------------------------------------------------------
    def do_arg(self, body, scope, path):
        name = self.s(body.get("name", ""))
        if not name:
            raise LaunchError(f"{path}: an 'arg' needs a name")
        if name not in self.ctx.configurations:
            if "default" not in body:
                raise LaunchError(
                    f"{path}: missing required launch argument '{name}' "
                    f"({body.get('description', 'no description given')}); pass {name}:=VALUE"
                )
            self.ctx.configurations[name] = self.s(body["default"])
        choices = [self.s(c["value"]) for c in body.get("choice", []) or []]
        if choices and self.ctx.configurations[name] not in choices:
            raise LaunchError(
                f"{path}: argument '{name}' is {self.ctx.configurations[name]!r}; valid options: {', '.join(choices)}"
            )

    def do_let(self, body, scope, path):
        self.ctx.configurations[self.s(body["name"])] = self.s(body["value"])

    def do_set_env(self, body, scope, path):
        self.ctx.environment[self.s(body["name"])] = self.s(body["value"])

    def do_unset_env(self, body, scope, path):
        self.ctx.environment.pop(self.s(body["name"]), None)

    def do_set_parameter(self, body, scope, path):
        scope.global_params[self.s(body["name"])] = self.param_value(body["value"])

    def do_set_remap(self, body, scope, path):
        scope.global_remaps.append((self.s(body["from"]), self.s(body["to"])))

    def do_push_ros_namespace(self, body, scope, path):
        scope.namespace = _join_namespace(scope.namespace, self.s(body["namespace"]))

    def do_group(self, body, scope, path):
        scoped = body.get("scoped", True)
        if scoped:
            saved_conf, saved_env = dict(self.ctx.configurations), dict(self.ctx.environment)
            inner = copy.deepcopy(scope)
            self.run(body["children"], inner, path)
            self.ctx.configurations, self.ctx.environment = saved_conf, saved_env
        else:
            self.run(body["children"], scope, path)

    def do_include(self, body, scope, path):
        file = Path(self.s(body["file"]))
        if not file.is_absolute():
            file = path.parent / file
        for a in body.get("arg", []) or []:
            self.ctx.configurations[self.s(a["name"])] = self.s(a["value"])
        entities = _load(file)
        saved_file = self.ctx.current_file
        self.ctx.current_file = file
        self.run(entities, scope, file)
        self.ctx.current_file = saved_file

    def do_executable(self, body, scope, path):
        cmd = shlex.split(self.s(body["cmd"]))
        label = self.label(self.s(body.get("name", Path(cmd[0]).name)))
        env = self.environment(body)
        self.out.append(ProcessSpec(label, cmd, env, on_exit_shutdown=self.s(body.get("on_exit", "")) == "shutdown"))

    def do_node(self, body, scope, path):
        pkg = self.s(body["pkg"]) if "pkg" in body else None
        exe = self.s(body["exec"])
        program = find_executable(pkg, exe) if pkg else Path(exe)
        cmd = _interpreter_for(program) + [str(program)]
        if "args" in body:
            cmd += shlex.split(self.s(body["args"]))
        if "ros_args" in body:
            cmd += ["--ros-args", *shlex.split(self.s(body["ros_args"]))]
        cmd.append("--ros-args")
        name = self.s(body["name"]) if "name" in body else None
        ns = scope.namespace
        if "namespace" in body:
            own = self.s(body["namespace"])
            ns = own if own.startswith("/") else _join_namespace(ns, own)
        ns = ns.rstrip("/") or None
        if name:
            cmd += ["-r", f"__node:={name}"]
        if ns:
            cmd += ["-r", f"__ns:={ns}"]
        params = dict(scope.global_params)
        files: list[str] = []
        for item in body.get("param", []) or []:
            if "from" in item:
                files.append(self.s(item["from"]))
            else:
                params.update(self.flatten_param(item, ""))
        for f in files:
            cmd += ["--params-file", f]
        for src, dst in [*scope.global_remaps, *[(self.s(r["from"]), self.s(r["to"])) for r in body.get("remap", [])]]:
            cmd += ["-r", f"{src}:={dst}"]
        label = self.label(self.s(body.get("exec_name", name or exe)))
        self.out.append(
            ProcessSpec(
                label,
                cmd,
                self.environment(body),
                node_name=name,
                namespace=ns,
                parameters=params,
                on_exit_shutdown=self.s(body.get("on_exit", "")) == "shutdown",
            )
        )

    # ---- helpers -----------------------------------------------------------------------
    def flatten_param(self, item: dict, prefix: str) -> dict[str, Any]:
        if "name" not in item:
            raise LaunchError(f"a 'param' needs 'name' (or 'from'): {item}")
        name = prefix + self.s(item["name"])
        if "param" in item:
            if "value" in item:
                raise LaunchError(f"param '{name}': give 'value' or nested 'param', not both")
            out: dict[str, Any] = {}
            for sub in item["param"]:
                out.update(self.flatten_param(sub, name + "."))
            return out
        if "value" not in item:
            raise LaunchError(f"param '{name}' has no 'value'")
        return {name: self.param_value(item["value"])}

    def param_value(self, value: Any) -> Any:
        """YAML-typed values stay as they are; strings with substitutions are expanded and
        read as YAML (so '$(var rate)' with rate=5 is the int 5), as ros2 launch does."""
        if isinstance(value, list):
            return [self.param_value(v) for v in value]
        if isinstance(value, str) and "$(" in value:
            text = expand(value, self.ctx)
            try:
                return yaml.safe_load(text) if text != "" else ""
            except yaml.YAMLError:
                return text
        return value

    def environment(self, body: dict) -> dict[str, str]:
        env = dict(self.ctx.environment)
        for item in body.get("env", []) or []:
            env[self.s(item["name"])] = self.s(item["value"])
        return env

    def label(self, base: str) -> str:
        return f"{base}-{len(self.out) + 1}"


def _join_namespace(outer: str, inner: str) -> str:
    if inner.startswith("/"):
        return inner.rstrip("/")
    joined = f"{outer.rstrip('/')}/{inner}" if inner else outer
    return "/" + joined.strip("/") if joined.strip("/") else ""


def _interpreter_for(program: Path) -> list[str]:
    """Run Python console scripts with this interpreter (their shebang may point elsewhere)."""
    try:
        with open(program, "rb") as f:
            head = f.readline(200)
    except OSError:
        return []
    if head.startswith(b"#!") and b"python" in head:
        return [sys.executable]
    return []
