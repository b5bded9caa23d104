"""Zenoh sessions for the site link: configuration from sern's settings, checked first.

Reliable traffic and best-effort traffic travel on separate links of one session when both
a ``tcp/`` (or ``tls/``) and a ``udp/`` endpoint are given: endpoints get ``?rel=1`` or
``?rel=0`` so best-effort messages never wait behind a lost TCP segment. User/password
authentication (``transport/auth/usrpwd``) and TLS (``transport/link/tls``) are set from
files and parameters; multicast scouting is off, so peers are exactly the configured ones.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

_ENDPOINT = re.compile(r"^(tcp|udp|tls|quic)/[^?#\s]+$")


class TransportError(ValueError):
    """Session settings that cannot work, said plainly."""


@dataclass
class SessionSettings:
    mode: str = "peer"  # peer | client | router
    listen: list[str] = field(default_factory=list)
    connect: list[str] = field(default_factory=list)
    user: str = ""
    password: str = ""
    credentials_file: str = ""  # "user:password" lines of peers this site accepts
    tls_root_ca: str = ""
    tls_certificate: str = ""
    tls_private_key: str = ""

    def has_best_effort_link(self) -> bool:
        return any(e.startswith("udp/") for e in [*self.listen, *self.connect])


def _tag(endpoint: str) -> str:
    """Reliable links for TCP/TLS/QUIC, best-effort for UDP."""
    return f"{endpoint}?rel={0 if endpoint.startswith('udp/') else 1}"


def check(settings: SessionSettings) -> list[str]:
    problems = []
    if settings.mode not in ("peer", "client", "router"):
        problems.append(f"'mode': must be peer, client or router; got {settings.mode!r}")
    if not settings.listen and not settings.connect:
        problems.append("give 'listen' and/or 'connect' endpoints, e.g. tcp/10.0.0.2:7447")
    for key in ("listen", "connect"):
        for endpoint in getattr(settings, key):
            if not _ENDPOINT.match(endpoint):
                problems.append(
                    f"'{key}': {endpoint!r} is not an endpoint like tcp/HOST:PORT or udp/HOST:PORT "
                    "(no ?/# options: sern adds them)"
                )
    if bool(settings.user) != bool(settings.password):
        problems.append("'user' and 'password' go together")
    if settings.credentials_file and not Path(settings.credentials_file).is_file():
        problems.append(f"'credentials_file': {settings.credentials_file} does not exist")
    uses_tls = any(e.startswith(("tls/", "quic/")) for e in [*settings.listen, *settings.connect])
    if uses_tls:
        for key in ("tls_root_ca", "tls_certificate", "tls_private_key"):
            value = getattr(settings, key)
            if key == "tls_root_ca" and not value:
                problems.append("tls/quic endpoints need 'tls_root_ca' (the CA that signed the peers' certificates)")
            if value and not Path(value).is_file():
                problems.append(f"'{key}': {value} does not exist")
        if settings.listen and not (settings.tls_certificate and settings.tls_private_key):
            problems.append("listening on tls/quic needs 'tls_certificate' and 'tls_private_key'")
    return problems


def zenoh_config(settings: SessionSettings):
    """A ``zenoh.Config`` for these settings (raises ``TransportError`` when they are wrong)."""
    import zenoh

    problems = check(settings)
    if problems:
        raise TransportError("; ".join(problems))
    conf = zenoh.Config()

    def put(key: str, value) -> None:
        conf.insert_json5(key, json.dumps(value))

    put("mode", settings.mode)
    put("scouting/multicast/enabled", False)
    put("listen/endpoints", [_tag(e) for e in settings.listen])
    put("connect/endpoints", [_tag(e) for e in settings.connect])
    # Wait briefly at start-up, then keep trying in the background: a peer that is down now
    # (or refuses us now) may come back, and the node must run meanwhile.
    put("connect/timeout_ms", 1000)
    put("connect/exit_on_failure", False)
    put("connect/retry", {"period_init_ms": 250, "period_max_ms": 2000, "period_increase_factor": 2.0})
    put("transport/unicast/max_links", 4)
    put("transport/unicast/qos/enabled", True)
    put("transport/link/tx/lease", 3000)
    put("transport/link/tx/keep_alive", 4)
    # Sites are different machines: never shortcut through shared memory (on one test host
    # zenoh would otherwise move large payloads around the emulated link).
    put("transport/shared_memory/enabled", False)
    if settings.user:
        put("transport/auth/usrpwd/user", settings.user)
        put("transport/auth/usrpwd/password", settings.password)
    if settings.credentials_file:
        put("transport/auth/usrpwd/dictionary_file", settings.credentials_file)
    if settings.tls_root_ca:
        put("transport/link/tls/root_ca_certificate", settings.tls_root_ca)
    if settings.tls_certificate:
        put("transport/link/tls/listen_certificate", settings.tls_certificate)
        put("transport/link/tls/listen_private_key", settings.tls_private_key)
    return conf


def open_session(settings: SessionSettings):
    """Open a zenoh session; a refusal becomes a ``TransportError`` with zenoh's reason."""
    import zenoh

    conf = zenoh_config(settings)
    try:
        return zenoh.open(conf)
    except zenoh.ZError as err:
        raise TransportError(f"cannot open the zenoh session: {err}") from None
