"""Message and service type names: Unity writes ``pkg/Type``; ROS 2 names ``pkg/msg/Type``
and ``pkg/srv/Type``."""

from __future__ import annotations

import importlib
import re

_NAME = re.compile(r"\A([A-Za-z][A-Za-z0-9_]*)/(?:(msg|srv)/)?([A-Za-z][A-Za-z0-9_]*)\Z")


class UnknownType(ValueError):
    """A type name that is malformed or names no installed interface."""


def wire_name(ros_type: str) -> str:
    """``pkg/msg/Type`` → ``pkg/Type`` (what Unity expects in a topic list)."""
    return ros_type.replace("/msg/", "/").replace("/srv/", "/")


def resolve(name: str, kind: str):
    """The Python class of ``name`` (``pkg/Type`` or ``pkg/msg/Type``); ``kind`` is ``msg``
    or ``srv``."""
    match = _NAME.match(name or "")
    if not match:
        raise UnknownType(f"{name!r} is not a type name (pkg/Type)")
    package, given_kind, type_name = match.groups()
    if given_kind is not None and given_kind != kind:
        raise UnknownType(f"{name!r} is a {given_kind}, a {kind} was expected")
    try:
        module = importlib.import_module(f"{package}.{kind}")
        cls = getattr(module, type_name)
    except (ImportError, AttributeError):
        raise UnknownType(f"no {kind} type {package}/{type_name} is installed") from None
    return cls


def ros_name(cls) -> str:
    """``pkg/msg/Type`` of a message or service class."""
    module = cls.__module__.split(".")
    return f"{module[0]}/{module[1]}/{cls.__name__}"
