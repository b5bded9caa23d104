"""Two sites joined by an impaired link, on one machine: network namespaces and a relay.

    with EmulatedLink() as link:            # needs root and iproute2
        link.set(delay_ms=100, jitter_ms=20, loss=0.05)
        subprocess.Popen(link.run_in("a", ["robot_stand_in", ...]))
        ...
        link.set(down=True)                 # an outage

Site ``a`` and site ``b`` each get a namespace with one interface (10.R.0.1 and 10.R.0.2),
a multicast route (DDS discovery) and loopback; the relay
(``sim_bridge.netem.relay``) runs in a third namespace between them. Everything is
removed on exit, and namespaces left by a crashed run are removed on the next start.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_PREFIX = "sern"


def available() -> tuple[bool, str]:
    """Can this machine emulate links? (root, iproute2, packet sockets)."""
    if os.geteuid() != 0:
        return False, "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return False, "needs iproute2 ('ip')"
    try:
        socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    except (OSError, AttributeError) as err:
        return False, f"no packet sockets ({err})"
    return True, ""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def remove_stale() -> None:
    """Delete namespaces a crashed earlier run left behind (their owner pid is gone)."""
    out = _ip("netns", "list", check=False).stdout
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith(_PREFIX + "_"):
            continue
        try:
            pid = int(name.split("_")[1])
        except (IndexError, ValueError):
            continue
        if not Path(f"/proc/{pid}").exists():
            _ip("netns", "del", name, check=False)


class LinkError(RuntimeError):
    pass


class EmulatedLink:
    """Sites ``a`` and ``b`` in their own network namespaces, joined by the relay."""

    _count = 0

    def __init__(self, settings: dict | None = None):
        ok, why = available()
        if not ok:
            raise LinkError(f"cannot emulate a link here: {why}")
        EmulatedLink._count += 1
        tag = f"{os.getpid()}_{EmulatedLink._count}"
        self.ns = {"a": f"{_PREFIX}_{tag}_a", "b": f"{_PREFIX}_{tag}_b", "link": f"{_PREFIX}_{tag}_l"}
        self.subnet = 10 + (os.getpid() * 7 + EmulatedLink._count) % 200
        self.address = {"a": f"10.{self.subnet}.0.1", "b": f"10.{self.subnet}.0.2"}
        short = f"{os.getpid() % 100000}{EmulatedLink._count}"
        self.ifaces = {"a": f"sa{short}", "b": f"sb{short}", "la": f"la{short}", "lb": f"lb{short}"}
        self._dir = tempfile.TemporaryDirectory(prefix="sern_link_")
        self.control_path = str(Path(self._dir.name) / "control.sock")
        self._settings = settings or {}
        self._relay: subprocess.Popen | None = None
        self._client: socket.socket | None = None

    # ---- life cycle --------------------------------------------------------------------
    def up(self) -> EmulatedLink:
        remove_stale()
        try:
            for ns in self.ns.values():
                _ip("netns", "add", ns)
            for site in ("a", "b"):
                inside, outside = self.ifaces[site], self.ifaces["l" + site]
                _ip("link", "add", inside, "type", "veth", "peer", "name", outside)
                _ip("link", "set", inside, "netns", self.ns[site])
                _ip("link", "set", outside, "netns", self.ns["link"])
                _ip("-n", self.ns[site], "addr", "add", f"{self.address[site]}/24", "dev", inside)
                _ip("-n", self.ns[site], "link", "set", inside, "up")
                _ip("-n", self.ns[site], "link", "set", "lo", "up")
                _ip("-n", self.ns[site], "route", "add", "224.0.0.0/4", "dev", inside)
                _ip("-n", self.ns["link"], "link", "set", outside, "up")
                # Finished, MTU-sized frames only (see sim_bridge.netem.offload).
                for ns, ifname in ((self.ns[site], inside), (self.ns["link"], outside)):
                    subprocess.run(
                        ["ip", "netns", "exec", ns, sys.executable, "-m", "sim_bridge.netem.offload", ifname],
                        check=True,
                        capture_output=True,
                        text=True,
                    )
            self._relay = subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    self.ns["link"],
                    sys.executable,
                    "-m",
                    "sim_bridge.netem.relay",
                    self.ifaces["la"],
                    self.ifaces["lb"],
                    "--control",
                    self.control_path,
                    "--settings",
                    json.dumps(self._settings),
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            line = self._relay.stdout.readline()
            if "relay ready" not in line:
                raise LinkError(f"relay did not start: {line.strip() or self._relay.wait()}")
        except (subprocess.CalledProcessError, LinkError) as err:
            detail = err.stderr.strip() if isinstance(err, subprocess.CalledProcessError) else str(err)
            self.down()
            raise LinkError(f"setting up the emulated link failed: {detail}") from None
        return self

    def down(self) -> None:
        if self._relay is not None:
            self._relay.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._relay.wait(timeout=5)
            if self._relay.poll() is None:
                self._relay.kill()
            self._relay = None
        if self._client is not None:
            self._client.close()
            self._client = None
        for ns in self.ns.values():
            _ip("netns", "del", ns, check=False)
        self._dir.cleanup()

    def __enter__(self) -> EmulatedLink:
        return self.up()

    def __exit__(self, *exc) -> None:
        self.down()

    # ---- use ---------------------------------------------------------------------------
    def run_in(self, site: str, cmd: list[str]) -> list[str]:
        """``cmd`` prefixed to run inside site ``a`` or ``b``."""
        return ["ip", "netns", "exec", self.ns[site], *cmd]

    def set(self, **settings) -> dict:
        """Change the link: delay_ms, jitter_ms, loss, rate_mbit, down (both directions),
        or a_to_b={...} / b_to_a={...} for one direction."""
        return self._request(settings)

    def stats(self) -> dict:
        return self._request({"stats": True})

    def _request(self, payload: dict) -> dict:
        if self._client is None:
            self._client = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._client.bind(str(Path(self._dir.name) / "client.sock"))
            self._client.settimeout(2.0)
        deadline = time.monotonic() + 5.0
        while True:
            try:
                self._client.sendto(json.dumps(payload).encode(), self.control_path)
                reply = json.loads(self._client.recv(65535))
                break
            except (FileNotFoundError, ConnectionRefusedError, TimeoutError):
                if time.monotonic() > deadline:
                    raise LinkError("the link relay does not answer") from None
                time.sleep(0.05)
        if reply.get("ok") is False:
            raise LinkError(reply.get("error", "relay refused the settings"))
        return reply
