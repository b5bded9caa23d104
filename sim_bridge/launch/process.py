"""What ``sern launch`` starts: one ``ProcessSpec`` per ``node``/``executable``, with its
command line, environment, parameters in the order ros2 launch applies them, and how to run,
watch and stop it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ParameterRule:
    """A ``-p name:=value`` rule (what ``set_parameter`` gives every node in scope)."""

    name: str
    value: Any

    def argument(self) -> str:
        text = self.value if isinstance(self.value, str) else yaml.safe_dump(self.value, default_flow_style=True)
        return f"{self.name}:={text.strip().removesuffix('...').strip()}"


@dataclass(frozen=True)
class ParameterText:
    """A parameter file read with ``allow_substs: true``: its text after substitution."""

    origin: Path
    text: str


ParameterSource = ParameterRule | dict[str, Any] | Path | ParameterText


@dataclass
class ProcessSpec:
    """One process to start, and how to run, watch and stop it."""

    label: str
    cmd: list[str]  # without parameter arguments: ``command()`` adds them
    env: dict[str, str]
    node_name: str | None = None
    namespace: str | None = None
    parameter_sources: list[ParameterSource] = field(default_factory=list)
    params_file_key: str = "/**"
    on_exit_shutdown: bool = False
    cwd: str | None = None
    shell: bool = False
    emulate_tty: bool = False
    output: str = "log"
    respawn: bool = False
    respawn_delay_s: float = 0.0
    respawn_max_retries: int = -1  # negative: without limit, as in ros2 launch
    sigterm_timeout_s: float = DEFAULT_TIMEOUT_S
    sigkill_timeout_s: float = DEFAULT_TIMEOUT_S
    source: str = ""  # FILE:LINE of the action
    parameters_at: int | None = None  # where in cmd the parameter arguments go (before remaps, as launch_ros)

    @property
    def parameters(self) -> dict[str, Any]:
        """The inline and ``set_parameter`` values, later ones winning (files not read)."""
        out: dict[str, Any] = {}
        for source in self.parameter_sources:
            if isinstance(source, ParameterRule):
                out[source.name] = source.value
            elif isinstance(source, dict):
                out.update(source)
        return out

    @property
    def parameter_files(self) -> list[Path]:
        return [s for s in self.parameter_sources if isinstance(s, Path)]

    def command(self, params_dir: Path) -> list[str]:
        """The full command line; inline parameters are written to files in ``params_dir``."""
        args: list[str] = []
        for i, source in enumerate(self.parameter_sources):
            if isinstance(source, ParameterRule):
                args += ["-p", source.argument()]
            elif isinstance(source, dict):
                path = params_dir / f"{self.label}_params_{i}.yaml"
                path.write_text(
                    yaml.safe_dump({self.params_file_key: {"ros__parameters": source}}, default_flow_style=False)
                )
                args += ["--params-file", str(path)]
            elif isinstance(source, ParameterText):
                path = params_dir / f"{self.label}_params_{i}_{source.origin.name}"
                path.write_text(source.text)
                args += ["--params-file", str(path)]
            else:
                args += ["--params-file", str(source)]
        at = len(self.cmd) if self.parameters_at is None else self.parameters_at
        return [*self.cmd[:at], *args, *self.cmd[at:]]
