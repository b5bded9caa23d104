"""Full ROS 2 message definitions (``ros2msg`` schema text) from installed ``.msg`` files,
for MCAP files Foxglove and rosbag2 readers can decode: the type's own definition, then
every type it uses, each after a ``MSG: pkg/Type`` separator line, as rosbag2 writes them.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from pathlib import Path

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

PRIMITIVES = {
    "bool",
    "byte",
    "char",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "string",
    "wstring",
}
SEPARATOR = "=" * 80


class DefinitionError(LookupError):
    pass


@cache
def _msg_text(package: str, name: str) -> str:
    try:
        share = Path(get_package_share_directory(package))
    except PackageNotFoundError:
        raise DefinitionError(f"package {package!r} not found (is AMENT_PREFIX_PATH set?)") from None
    path = share / "msg" / f"{name}.msg"
    if not path.is_file():
        raise DefinitionError(f"no message definition {path}")
    return path.read_text()


def _dependencies(package: str, text: str) -> list[tuple[str, str]]:
    deps = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        field_type = line.split()[0]
        if "=" in line.split(None, 1)[-1] and len(line.split()) >= 2 and "=" in line.split()[1]:
            continue  # a constant: TYPE NAME=VALUE
        base = re.sub(r"\[.*?\]$", "", field_type)
        base = re.sub(r"<=\d+$", "", base)
        if base in PRIMITIVES:
            continue
        if "/" in base:
            pkg, _, typ = base.partition("/")
            typ = typ.split("/")[-1]  # "pkg/msg/Type" or "pkg/Type"
        elif base == "Header":
            pkg, typ = "std_msgs", "Header"
        else:
            pkg, typ = package, base
        deps.append((pkg, typ))
    return deps


def message_class(type_name: str) -> type:
    """The Python class of ``pkg/msg/Type``."""
    parts = type_name.split("/")
    if len(parts) != 3 or parts[1] != "msg":
        raise DefinitionError(f"not a message type name: {type_name!r}")
    try:
        return getattr(importlib.import_module(f"{parts[0]}.msg"), parts[2])
    except (ImportError, AttributeError):
        raise DefinitionError(f"message type {type_name} is not installed") from None


def full_definition(type_name: str) -> str:
    """The ``ros2msg`` text for ``pkg/msg/Type`` (or ``pkg/Type``)."""
    parts = type_name.split("/")
    if len(parts) not in (2, 3):
        raise DefinitionError(f"not a message type name: {type_name!r}")
    package, name = parts[0], parts[-1]
    root = _msg_text(package, name)
    sections: list[str] = []
    seen: set[tuple[str, str]] = set()

    def visit(pkg: str, text: str) -> None:
        for dep in _dependencies(pkg, text):
            if dep in seen:
                continue
            seen.add(dep)
            dep_text = _msg_text(*dep)
            sections.append(f"{SEPARATOR}\nMSG: {dep[0]}/{dep[1]}\n{dep_text}")
            visit(dep[0], dep_text)

    visit(package, root)
    return "\n".join([root, *sections])
