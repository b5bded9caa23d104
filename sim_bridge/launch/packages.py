"""Finding ROS packages and their executables without ament tooling.

Looks where ``ament_index_python`` would (``AMENT_PREFIX_PATH``), then in this Python's
prefix (a pip or venv install puts ``share/<pkg>`` there), then, for sern itself, in the
source tree it runs from (an editable install). Executables: ``<prefix>/lib/<pkg>/<exec>``
(colcon, ROS installs), then this Python's scripts folder (pip console scripts).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sim_bridge.launch.substitutions import LaunchError

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


def find_package_prefix(package: str) -> Path:
    for prefix in _prefixes():
        if (prefix / _INDEX / package).is_file():
            return prefix
    if _source_tree(package) is not None:
        return Path(sys.prefix)
    raise LaunchError(
        f"package '{package}' not found (looked in AMENT_PREFIX_PATH and {sys.prefix}); "
        "is it installed, and the workspace sourced?"
    )


def find_package_share(package: str) -> Path:
    for prefix in _prefixes():
        if (prefix / _INDEX / package).is_file():
            return prefix / "share" / package
    source = _source_tree(package)
    if source is not None:
        return source  # an editable install: launch/, config/, worlds/ live at the root
    raise LaunchError(
        f"package '{package}' not found (looked in AMENT_PREFIX_PATH and {sys.prefix}); "
        "is it installed, and the workspace sourced?"
    )


def find_executable(package: str, executable: str) -> Path:
    looked = []
    for prefix in _prefixes():
        candidate = prefix / "lib" / package / executable
        looked.append(str(candidate.parent))
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    scripts = Path(sys.executable).parent / executable
    looked.append(str(scripts.parent))
    if scripts.is_file() and os.access(scripts, os.X_OK):
        return scripts
    raise LaunchError(f"executable '{executable}' of package '{package}' not found (looked in {', '.join(looked)})")
