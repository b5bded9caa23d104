"""Finding ROS packages and their executables without ament tooling, by ament's rules.

A package is found where ``ament_index_python`` finds it: the first prefix in
``AMENT_PREFIX_PATH`` (then this Python's prefix, where a pip install puts
``share/ament_index``) holding ``share/ament_index/resource_index/packages/<pkg>``. sern
itself also counts when it runs from its source tree (an editable install registers no
ament index entry): its prefix is then this Python's, its share folder the source tree.

An executable of a package is ``<prefix>/lib/<pkg>/<exec>``, as launch_ros's
``ExecutableInPackage`` requires (ros2 launch 3.7.1: "executable 'x' not found on the libexec
directory …"). One addition for pip-only installs, where console scripts land in this
Python's scripts folder instead: an executable there counts if it is one of *that package's*
declared console scripts. Nothing is looked up on PATH, so an unknown package is an error
even when a program of the same name exists elsewhere.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import sys
from pathlib import Path

from sim_bridge.launch.errors import LaunchError

_INDEX = Path("share") / "ament_index" / "resource_index" / "packages"
_SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _prefixes() -> list[Path]:
    out = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    out.append(Path(sys.prefix))
    return out


def _source_tree(package: str) -> Path | None:
    manifest = _SOURCE_ROOT / "package.xml"
    if manifest.is_file() and f"<name>{package}</name>" in manifest.read_text():
        return _SOURCE_ROOT
    return None


def _not_found(package: str) -> LaunchError:
    looked = ", ".join(dict.fromkeys(str(p) for p in _prefixes()))
    return LaunchError(
        f"package '{package}' not found (looked for share/ament_index/resource_index/packages/{package} in "
        f"AMENT_PREFIX_PATH and this Python's prefix: {looked}); is it installed, and the workspace sourced?"
    )


def find_package_prefix(package: str) -> Path:
    """The install prefix of ROS package ``package``."""
    for prefix in _prefixes():
        if (prefix / _INDEX / package).is_file():
            return prefix
    if _source_tree(package) is not None:
        return Path(sys.prefix)
    raise _not_found(package)


def find_package_share(package: str) -> Path:
    """The share folder of ROS package ``package``."""
    for prefix in _prefixes():
        if (prefix / _INDEX / package).is_file():
            return prefix / "share" / package
    source = _source_tree(package)
    if source is not None:
        return source  # an editable install: launch/, config/, worlds/ live at the root
    raise _not_found(package)


@functools.lru_cache(maxsize=64)  # reading distribution metadata costs milliseconds; it does not change
def _console_scripts(package: str) -> frozenset[str]:
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return frozenset()
    return frozenset(ep.name for ep in dist.entry_points if ep.group == "console_scripts")


def find_executable(package: str, executable: str) -> Path:
    """``executable`` of ROS package ``package``: ``<prefix>/lib/<pkg>/<exec>``, or, for a pip
    install, that package's own console script in this Python's scripts folder."""
    if not executable or "/" in executable:
        raise LaunchError(f"exec {executable!r} of package '{package}': give the executable's name, not a path")
    prefix = find_package_prefix(package)
    libexec = prefix / "lib" / package
    candidate = libexec / executable
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return candidate
    scripts = Path(sys.executable).parent
    if executable in _console_scripts(package):
        script = scripts / executable
        if script.is_file() and os.access(script, os.X_OK):
            return script
    available = sorted(p.name for p in libexec.iterdir() if p.is_file()) if libexec.is_dir() else []
    available += sorted(_console_scripts(package) - set(available))
    raise LaunchError(
        f"executable '{executable}' not found in package '{package}' (looked in {libexec}"
        + (f" and {scripts} for its console scripts" if _console_scripts(package) else "")
        + f"); it has: {', '.join(available) or 'none'}"
    )
