"""Make mlagents-envs 1.1.0 importable with this environment's protobuf.

mlagents-envs 1.1.0 ships ``*_pb2`` modules generated for protobuf 3.20, which the protobuf
that TensorBoard needs (≥ 6.31) refuses to load. Its ``.proto`` sources are not in the wheel,
but every old module embeds its file's descriptor (the ``serialized_pb`` bytes). This reads
those bytes without importing the modules, builds a ``FileDescriptorSet`` from them and
regenerates the modules with grpcio-tools' protoc (``--descriptor_set_in``), in place.

Idempotent: does nothing when ``mlagents_envs.environment`` already imports. Run by
``make setup`` after ``pip install --no-deps mlagents-envs``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import subprocess
import sys
import tempfile
from pathlib import Path

PACKAGE = "mlagents_envs/communicator_objects"


def package_dir() -> Path:
    """The installed ``mlagents_envs/communicator_objects`` folder (found without importing it)."""
    try:
        dist = importlib.metadata.distribution("mlagents-envs")
    except importlib.metadata.PackageNotFoundError:
        sys.exit("regenerate_mlagents_protos: mlagents-envs is not installed (see requirements-nodeps.txt)")
    return Path(dist.locate_file(PACKAGE))


def imports_cleanly() -> bool:
    probe = "import mlagents_envs.environment, mlagents_envs.side_channel.environment_parameters_channel"
    return subprocess.run([sys.executable, "-c", probe], capture_output=True).returncode == 0


def embedded_descriptor(module: Path) -> bytes | None:
    """The ``serialized_pb`` bytes of an old generated module (None if it has none)."""
    tree = ast.parse(module.read_text())
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for kw in node.keywords:
            if kw.arg != "serialized_pb":
                continue
            value = kw.value
            if isinstance(value, ast.Call) and value.args:  # _b('...') in protoc 3.x output
                value = value.args[0]
            literal = ast.literal_eval(value)
            return literal if isinstance(literal, bytes) else literal.encode("latin1")
    return None


def regenerate(folder: Path) -> list[str]:
    from google.protobuf import descriptor_pb2

    files = descriptor_pb2.FileDescriptorSet()
    names = []
    for module in sorted(folder.glob("*_pb2.py")):
        data = embedded_descriptor(module)
        if data is None:
            continue  # already regenerated (new-style modules embed no serialized_pb keyword)
        proto = descriptor_pb2.FileDescriptorProto.FromString(data)
        files.file.append(proto)
        names.append(proto.name)
    if not names:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "set.pb").write_bytes(files.SerializeToString())
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"--descriptor_set_in={out / 'set.pb'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            *names,
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            sys.exit(f"regenerate_mlagents_protos: protoc failed:\n{done.stderr}")
        for name in names:
            stem = Path(name).stem
            (folder / f"{stem}_pb2.py").write_bytes((out / PACKAGE / f"{stem}_pb2.py").read_bytes())
            if (folder / f"{stem}_pb2_grpc.py").exists():  # only the service's file has one
                grpc_module = out / PACKAGE / f"{stem}_pb2_grpc.py"
                (folder / f"{stem}_pb2_grpc.py").write_bytes(grpc_module.read_bytes())
    for cached in folder.glob("__pycache__/*.pyc"):
        cached.unlink()
    return names


def main() -> int:
    if imports_cleanly():
        return 0
    names = regenerate(package_dir())
    if not imports_cleanly():
        sys.exit("regenerate_mlagents_protos: mlagents_envs.environment still does not import")
    print(f"regenerate_mlagents_protos: regenerated {len(names)} modules of mlagents-envs for this protobuf")
    return 0


if __name__ == "__main__":
    sys.exit(main())
