"""What a ``*_launch.yaml`` file starts, worked out as ros2 launch works it out.

The file is checked (``schema``), then walked in order with the launch arguments: ``arg``,
``let``, environment actions, ``group``, ``include``, ``push_ros_namespace``,
``set_parameter``, ``set_parameters_from_file``, ``set_remap``, ``log``, ``if``/``unless``,
and ``node``/``executable`` become ``ProcessSpec``s. Scoping is ros2 launch's (checked against
launch 3.7.1 / launch_ros 0.28.0 run from source):

- ``include`` is not a scope: the arguments passed to it, and whatever the included file
  declares, ``let``s, pushes or sets, stay visible after it. Wrap it in a ``group`` to confine it.
- ``group`` (``scoped`` defaults to true) restores configurations, environment, namespace,
  global parameters and remaps when it ends; ``scoped: false`` lets them through.
  ``forwarding: false`` starts the group from nothing: no configurations but its ``keep``
  list, no pushed namespace, parameters or remaps, the launch's starting environment.
- A relative ``include`` file is relative to the working directory (write
  ``$(dirname)/other_launch.yaml`` for one beside the including file).
- Node parameters apply in the order written: ``set_parameter`` ones first (as ``-p``
  rules), then each ``param`` item, inline values and ``from:`` files interleaved; a later
  one overrides an earlier one. An inline value is read as YAML only when it holds a
  substitution (``"5"`` stays a string, ``"$(var n)"`` with n=5 becomes the integer 5).
- ``pkg`` must be a ROS package (ament index, or the source tree sern runs from) and
  ``exec`` an executable in its ``lib/<pkg>``; a pip-installed package's own console
  scripts (``importlib.metadata`` entry points) count too. Nothing is looked up on PATH.

Where ``sern launch`` is stricter than ros2 launch it says so in the error: launch arguments
that no ``arg`` declares, a missing ``from:`` parameter file or ``cwd``, and quoted booleans
in ``scoped``/``forwarding``/``shell`` are errors here. Two ros2 launch 3.7.1 quirks are not
copied: ``set_parameter``/``set_remap`` in a scoped group stay in it (ros2 launch leaks them
when one was set before the group), and ``$(dirname)`` names the file it is written in.
docs/launch.md has the whole comparison.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim_bridge.launch import schema
from sim_bridge.launch.errors import LaunchError, located
from sim_bridge.launch.packages import find_executable, find_package_prefix, find_package_share
from sim_bridge.launch.process import (
    DEFAULT_TIMEOUT_S,
    ParameterRule,
    ParameterSource,
    ParameterText,
    ProcessSpec,
)
from sim_bridge.launch.substitutions import Context, expand, expand_command, expand_tracking, yaml_bool

OUTPUTS = ("screen", "log", "both", "own_log", "full")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class _Scope:
    """The launch configurations ros2 launch keeps apart from arguments: ``ros_namespace``,
    ``global_params`` and ``ros_remaps``."""

    namespace: str = ""
    global_params: list[ParameterRule | Path | ParameterText] = field(default_factory=list)
    global_remaps: list[tuple[str, str]] = field(default_factory=list)

    def copy(self) -> _Scope:
        return _Scope(self.namespace, list(self.global_params), list(self.global_remaps))

    def clear(self) -> None:
        self.namespace = ""
        self.global_params.clear()
        self.global_remaps.clear()


class LaunchDescription:
    """A parsed launch file, ready to be expanded with arguments into processes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.entities = schema.load(self.path)
        self.messages: list[str] = []  # what the file's 'log' actions said in the last processes()

    def declared_arguments(self) -> list[dict[str, Any]]:
        """The ``arg`` declarations of this file (top level and in groups): name, default,
        description, choices (as written, before substitution)."""
        out = []
        for entity in _walk_static(self.entities):
            if entity.kind == "arg":
                body = dict(entity.body)
                if "choice" in body:
                    body["choices"] = [c["value"] for c in body["choice"]]
                out.append(body)
        return out

    def processes(self, arguments: dict[str, str], environment: dict[str, str] | None = None) -> list[ProcessSpec]:
        """The processes this file starts with ``arguments`` (name → value)."""
        env = dict(os.environ if environment is None else environment)
        ctx = Context(
            configurations=dict(arguments),
            environment=dict(env),
            current_file=self.path,
            find_package_share=find_package_share,
            find_package_prefix=find_package_prefix,
            find_executable=find_executable,
        )
        walker = _Walker(ctx, env)
        static = {a["name"] for a in self.declared_arguments() if isinstance(a.get("name"), str)}
        try:
            walker.run(self.entities, _Scope())
        except LaunchError:
            if self._unknown(arguments, static | walker.declared):
                raise self._unknown_error(arguments, static | walker.declared) from None
            raise
        if self._unknown(arguments, static | walker.declared):
            raise self._unknown_error(arguments, static | walker.declared)
        self.messages = walker.messages
        return walker.out

    @staticmethod
    def _unknown(arguments: dict[str, str], declared: set[str]) -> list[str]:
        return sorted(set(arguments) - declared)

    def _unknown_error(self, arguments: dict[str, str], declared: set[str]) -> LaunchError:
        # ros2 launch accepts undeclared arguments silently; a typo then changes nothing
        unknown = self._unknown(arguments, declared)
        return LaunchError(
            f"{self.path}: unknown launch argument(s) {', '.join(unknown)}; "
            f"this file takes: {', '.join(sorted(d for d in declared if d)) or 'none'}",
            located=True,
        )


def _walk_static(entities: list[schema.Entity]):
    for entity in entities:
        yield entity
        yield from _walk_static(entity.children)


class _Walker:
    def __init__(self, ctx: Context, initial_environment: dict[str, str]):
        self.ctx = ctx
        self.initial_environment = initial_environment
        self.out: list[ProcessSpec] = []
        self.declared: set[str] = set()
        self.messages: list[str] = []  # from 'log' actions, in order

    # ---- expansion helpers ---------------------------------------------------------------
    def s(self, entity: schema.Entity, value: str) -> str:
        try:
            return expand(value, self.ctx)
        except LaunchError as err:
            raise located(err, entity.path, entity.line) from None

    def words(self, entity: schema.Entity, value: str) -> list[str]:
        try:
            return expand_command(value, self.ctx)
        except LaunchError as err:
            raise located(err, entity.path, entity.line) from None

    def flag(self, entity: schema.Entity, value: str | bool, what: str) -> bool:
        if isinstance(value, bool):
            return value
        try:
            return yaml_bool(self.s(entity, value), f"'{what}'")
        except LaunchError as err:
            raise located(err, entity.path, entity.line) from None

    def condition(self, entity: schema.Entity) -> bool:
        for key, want in (("if", True), ("unless", False)):
            if key in entity.body:
                value = self.s(entity, entity.body[key]).strip().lower()
                if value not in ("true", "1", "false", "0"):
                    raise entity.error(
                        f"'{key}: {entity.body[key]}' expanded to {value!r}; expected true, 1, false or 0"
                    )
                return (value in ("true", "1")) == want
        return True

    def run(self, entities: list[schema.Entity], scope: _Scope) -> None:
        for entity in entities:
            if self.condition(entity):
                getattr(self, "do_" + entity.kind.replace("-", "_"))(entity, scope)

    # ---- arguments and configurations ------------------------------------------------------
    def do_arg(self, e: schema.Entity, scope: _Scope) -> None:
        name = self.s(e, e.body["name"])
        self.declared.add(name)
        choices = [self.s(e, c["value"]) for c in e.body.get("choice", [])]
        if "default" in e.body and choices and "$(" not in e.body["default"]:
            # ros2 launch checks a literal default against the choices when it reads the file
            default = self.s(e, e.body["default"])
            if default not in choices:
                raise e.error(f"the default {default!r} of '{name}' is not one of its choices: {', '.join(choices)}")
        if name not in self.ctx.configurations:
            if "default" not in e.body:
                raise e.error(
                    f"missing required launch argument '{name}' "
                    f"({e.body.get('description', 'no description given')}); pass {name}:=VALUE"
                )
            self.ctx.configurations[name] = self.s(e, e.body["default"])
        if choices and self.ctx.configurations[name] not in choices:
            raise e.error(
                f"argument '{name}' is {self.ctx.configurations[name]!r}; valid choices: "
                + ", ".join(repr(c) if c == "" else c for c in choices)
            )

    def do_let(self, e, scope):
        self.ctx.configurations[self.s(e, e.body["name"])] = self.s(e, e.body["value"])

    def do_reset(self, e, scope):
        kept = self.kept(e)
        self.ctx.configurations = kept
        scope.clear()

    def kept(self, e: schema.Entity) -> dict[str, str]:
        return {self.s(e, k["name"]): self.s(e, k["value"]) for k in e.body.get("keep", [])}

    # ---- environment -----------------------------------------------------------------------
    def do_set_env(self, e, scope):
        self.ctx.environment[self.s(e, e.body["name"])] = self.s(e, e.body["value"])

    def do_unset_env(self, e, scope):
        self.ctx.environment.pop(self.s(e, e.body["name"]), None)

    def do_append_env(self, e, scope):
        name, value = self.s(e, e.body["name"]), self.s(e, e.body["value"])
        separator = self.s(e, e.body.get("separator", os.pathsep))
        prepend = self.flag(e, e.body.get("prepend", False), "prepend")
        old = self.ctx.environment.get(name, "")
        joined = (value + separator + old if prepend else old + separator + value) if old else value
        self.ctx.environment[name] = joined

    def do_reset_env(self, e, scope):
        self.ctx.environment = dict(self.initial_environment)

    # ---- ROS scope -------------------------------------------------------------------------
    def do_push_ros_namespace(self, e, scope):
        scope.namespace = _join_namespace(scope.namespace, self.s(e, e.body["namespace"]))

    def do_set_parameter(self, e, scope):
        name = self.s(e, e.body["name"])
        scope.global_params.append(ParameterRule(name, self.yaml_value(e, name, e.body["value"], always=True)))

    def do_set_parameters_from_file(self, e, scope):
        scope.global_params.append(self.parameter_file(e, e.body["filename"]))

    def do_set_remap(self, e, scope):
        scope.global_remaps.append((self.s(e, e.body["from"]), self.s(e, e.body["to"])))

    def do_log(self, e, scope):
        self.messages.append(self.s(e, e.body["message"]))

    # ---- structure ---------------------------------------------------------------------------
    def do_group(self, e, scope):
        scoped = e.body.get("scoped", True)
        forwarding = e.body.get("forwarding", True)
        if not scoped:
            for k, v in self.kept(e).items():
                self.ctx.configurations[k] = v
            self.run(e.children, scope)
            return
        saved = dict(self.ctx.configurations), dict(self.ctx.environment)
        inner = scope.copy()
        if forwarding:
            self.ctx.configurations.update(self.kept(e))
        else:  # ros2 launch: ResetEnvironment, then ResetLaunchConfigurations(keep)
            self.ctx.environment = dict(self.initial_environment)
            self.ctx.configurations = self.kept(e)
            inner = _Scope()
        try:
            self.run(e.children, inner)
        finally:
            self.ctx.configurations, self.ctx.environment = saved

    def do_include(self, e, scope):
        text = self.s(e, e.body["file"])
        file = Path(text)
        if not file.is_absolute():
            beside = e.path.parent / file
            file = Path.cwd() / file
            if not file.is_file() and beside.is_file():
                raise e.error(
                    f"no launch file {text!r} in the working directory {Path.cwd()}; ros2 launch reads a relative "
                    f"include path from there. For the file beside this one write '$(dirname)/{text}'"
                )
        for a in e.body.get("arg", []):
            self.ctx.configurations[self.s(e, a["name"])] = self.s(e, a["value"])
        try:
            entities = schema.load(file)
        except LaunchError as err:
            raise e.error(f"cannot include: {err}") from None
        saved_file = self.ctx.current_file
        self.ctx.current_file = file
        try:
            self.run(entities, scope)
        finally:
            self.ctx.current_file = saved_file

    # ---- processes ---------------------------------------------------------------------------
    def do_executable(self, e, scope):
        cmd = self.words(e, e.body["cmd"])
        if not cmd:
            raise e.error("'cmd' is empty")
        label = self.s(e, e.body["name"]) if "name" in e.body else Path(cmd[0]).name
        self.out.append(self.process(e, label, cmd))

    def do_node(self, e, scope):
        b = e.body
        exe = self.s(e, b["exec"])
        if "pkg" in b:
            try:
                program = find_executable(self.s(e, b["pkg"]), exe)
            except LaunchError as err:
                raise located(err, e.path, e.line) from None
            cmd = [*_interpreter_for(program), str(program)]
        else:
            cmd = [exe]
        if "args" in b:
            cmd += self.words(e, b["args"])
        if "ros_args" in b:
            cmd += ["--ros-args", *self.words(e, b["ros_args"])]
        cmd.append("--ros-args")
        name = self.s(e, b["name"]) if "name" in b else None
        if name is not None and not _NAME.match(name):
            raise e.error(f"node name {name!r} is not a valid ROS name (letters, digits, _; not starting with a digit)")
        ns = scope.namespace
        if "namespace" in b:
            ns = _join_namespace(ns, self.s(e, b["namespace"]))
        namespace = ns or None
        if namespace and not all(_NAME.match(part) for part in namespace.strip("/").split("/")):
            raise e.error(f"namespace {namespace!r} is not a valid ROS namespace")
        if name:
            cmd += ["-r", f"__node:={name}"]
        if namespace:
            cmd += ["-r", f"__ns:={namespace}"]
        parameters_at = len(cmd)
        sources: list[ParameterSource] = list(scope.global_params)
        for item in b.get("param", []):
            if "from" in item:
                allow = self.flag(e, item.get("allow_substs", False), "allow_substs")
                sources.append(self.parameter_file(e, item["from"], allow_substs=allow))
            else:
                if "allow_substs" in item:
                    raise e.error("'allow_substs' goes with 'from' (a parameter file), not with 'name'")
                sources.append(self.inline_parameters(e, item, ""))
        for src, dst in [
            *scope.global_remaps,
            *[(self.s(e, r["from"]), self.s(e, r["to"])) for r in b.get("remap", [])],
        ]:
            cmd += ["-r", f"{src}:={dst}"]
        # ros2 launch labels a node by its executable; sern by its node name when it has one,
        # so two nodes of one executable (sim_node as sim and as twin_sim) read apart
        label = self.s(e, b["exec_name"]) if "exec_name" in b else (name or Path(exe).name)
        spec = self.process(e, label, cmd)
        spec.node_name, spec.namespace, spec.parameter_sources = name, namespace, sources
        spec.parameters_at = parameters_at + len(spec.cmd) - len(cmd)  # after any launch-prefix words
        spec.params_file_key = f"{namespace}/{name}" if name and namespace else "/**"
        self.out.append(spec)

    def process(self, e: schema.Entity, base_label: str, cmd: list[str]) -> ProcessSpec:
        """A ProcessSpec with the attributes ``node`` and ``executable`` share."""
        b = e.body
        env = dict(self.ctx.environment)
        for item in b.get("env", []):
            env[self.s(e, item["name"])] = self.s(e, item["value"])
        prefix = self.words(e, b["launch-prefix"]) if "launch-prefix" in b else []
        spec = ProcessSpec(f"{base_label}-{len(self.out) + 1}", [*prefix, *cmd], env, source=e.where)
        if "cwd" in b:
            cwd = Path(self.s(e, b["cwd"])).expanduser()
            if not cwd.is_dir():
                raise e.error(f"cwd {str(cwd)!r} is not a directory")
            spec.cwd = str(cwd)
        if "output" in b:
            spec.output = self.s(e, b["output"])
            if spec.output not in OUTPUTS:
                raise e.error(f"output {spec.output!r} is not one of {', '.join(OUTPUTS)}")
        if "on_exit" in b:
            on_exit = self.s(e, b["on_exit"])
            if on_exit != "shutdown":
                raise e.error(f"on_exit {on_exit!r}: only 'shutdown' is supported (as in ros2 launch)")
            spec.on_exit_shutdown = True
        spec.shell = b.get("shell", False)
        if "emulate_tty" in b:
            spec.emulate_tty = b["emulate_tty"]
        elif "emulate_tty" in self.ctx.configurations:
            spec.emulate_tty = self.flag(e, self.ctx.configurations["emulate_tty"], "emulate_tty")
        if "respawn" in b:
            spec.respawn = self.flag(e, b["respawn"], "respawn")
        spec.respawn_delay_s = b.get("respawn_delay", 0.0)
        spec.respawn_max_retries = b.get("respawn_max_retries", -1)
        for key in ("sigterm_timeout", "sigkill_timeout"):
            if key in b:
                value = b[key]
            else:  # ros2 launch takes the default from a launch configuration of that name
                text = self.ctx.configurations.get(key, str(DEFAULT_TIMEOUT_S))
                try:
                    value = float(text)
                except ValueError:
                    raise e.error(f"launch configuration {key}={text!r} is not a number of seconds") from None
                if value < 0:
                    raise e.error(f"launch configuration {key}={text!r} must be zero or more")
            setattr(spec, f"{key}_s", float(value))
        return spec

    # ---- parameters --------------------------------------------------------------------------
    def parameter_file(self, e: schema.Entity, value: str, allow_substs: bool = False) -> Path | ParameterText:
        path = Path(self.s(e, value)).expanduser()
        if not path.is_file():
            # ros2 launch warns and starts the node without them; a robot on default
            # parameters is worse than an error
            raise e.error(f"parameter file {str(path)!r} does not exist")
        if allow_substs:
            try:
                text = expand(path.read_text(), self.ctx)
            except LaunchError as err:
                raise e.error(f"in parameter file {path} (allow_substs): {err}") from None
            return ParameterText(path, text)
        return path

    def inline_parameters(self, e: schema.Entity, item: dict, prefix: str) -> dict[str, Any]:
        name = prefix + self.s(e, item["name"])
        if "param" in item:
            if "value" in item:
                raise e.error(f"param '{name}': give 'value' or nested 'param', not both")
            out: dict[str, Any] = {}
            for sub in item["param"]:
                if "from" in sub:
                    raise e.error(f"param '{name}': 'from' cannot be nested")
                out.update(self.inline_parameters(e, sub, name + "."))
            return out
        if "value" not in item:
            raise e.error(f"param '{name}' has no 'value' (or nested 'param')")
        value = item["value"]
        if isinstance(value, list):
            if any(isinstance(v, str) and "$(" in v for v in value):
                value = [self.yaml_value(e, name, str(v), always=True) for v in value]
                if len({type(v) for v in value}) > 1:
                    raise e.error(f"param '{name}': after substitution the list mixes types: {value!r}")
            return {name: value}
        if isinstance(value, str):
            return {name: self.yaml_value(e, name, value, always=False)}
        return {name: value}

    def yaml_value(self, e: schema.Entity, name: str, text: str, *, always: bool) -> Any:
        """``text`` expanded, then read as YAML if it held a substitution (or ``always``), as
        launch_ros's ``evaluate_parameter_dict`` does."""
        try:
            value, substituted = expand_tracking(text, self.ctx)
        except LaunchError as err:
            raise located(err, e.path, e.line) from None
        if not (substituted or always):
            return value
        if value == "":
            return ""
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise e.error(f"param '{name}': {value!r} is not valid YAML; quote it to make it a string") from None
        if isinstance(parsed, (bool, int, float, str)):
            return parsed
        uniform = isinstance(parsed, list) and parsed and len({type(v) for v in parsed}) == 1
        if uniform and isinstance(parsed[0], (bool, int, float, str)):
            return parsed
        raise e.error(
            f"param '{name}': {value!r} reads as {type(parsed).__name__}; a parameter is a scalar or a "
            "non-empty list of one scalar type"
        )


def _join_namespace(outer: str, inner: str) -> str:
    if inner.startswith("/"):
        return "/" + inner.strip("/") if inner.strip("/") else ""
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
