"""Zenoh sessions for the site link: configuration from sern's settings, checked first.

Reliable traffic and best-effort traffic travel on separate links of one session when both
a reliable endpoint (``tcp/``, ``tls/``) and a datagram endpoint (``udp/``, ``quic/``) are
given: endpoints get ``?rel=1`` or ``?rel=0`` so best-effort messages never wait behind a
lost TCP segment. ``quic/`` beside ``tls/`` carries best effort in QUIC datagrams (TLS 1.3
over UDP); ``quic/`` alone is a reliable QUIC link that carries everything. Multicast
scouting is off, so peers are the configured ones.

Secure by default: a session that listens on, or connects to, an address other machines
can reach (anything but 127.0.0.0/8, ::1 and names that resolve only to them; 0.0.0.0 and
[::] are every interface) must authenticate its peers, and nothing may cross in plaintext
beside a TLS link, unless ``insecure`` is set on purpose. Authentication is zenoh's
user/password challenge (``transport/auth/usrpwd``: the listener checks the connecting
site's password, which never crosses the wire) or TLS (``transport/link/tls``: the
connecting site checks the listener's certificate against ``tls_root_ca``; with ``mtls``
the listener also demands a client certificate signed by that CA).
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

_ENDPOINT = re.compile(r"^(tcp|udp|tls|quic)/[^?#\s]+$")
_PORT = re.compile(r":(\d{1,5})$")
ENCRYPTED = ("tls/", "quic/")
RELIABLE = ("tcp/", "tls/")


class TransportError(ValueError):
    """Session settings that cannot work, or that would open the link to strangers, said plainly."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n  ".join(self.problems))


@dataclass
class SessionSettings:
    """How a site opens its zenoh session (endpoints, credentials, TLS files)."""

    mode: str = "peer"  # peer | client | router
    listen: list[str] = field(default_factory=list)
    connect: list[str] = field(default_factory=list)
    user: str = ""
    password: str = ""
    credentials_file: str = ""  # "user:password" lines of peers this site accepts
    tls_root_ca: str = ""  # the CA that signed the peers' certificates
    tls_certificate: str = ""  # this site's certificate when listening on tls/quic
    tls_private_key: str = ""
    mtls: bool = False  # mutual TLS: demand client certificates; present ours when connecting
    tls_client_certificate: str = ""  # this site's certificate when connecting (mtls)
    tls_client_private_key: str = ""
    insecure: bool = False  # run unauthenticated / partly plaintext on purpose
    max_message_bytes: int = 0  # largest message zenoh reassembles from the peer (0: zenoh's 1 GiB)

    def has_best_effort_link(self) -> bool:
        """Whether a datagram link (udp, or quic beside tls) carries best-effort traffic."""
        return any(_best_effort(e, group) for group in (self.listen, self.connect) for e in group)


def _best_effort(endpoint: str, group: list[str]) -> bool:
    if endpoint.startswith("udp/"):
        return True
    return endpoint.startswith("quic/") and any(e.startswith(RELIABLE) for e in group)


def _tag(endpoint: str, group: list[str]) -> str:
    """Best effort for udp (and quic beside a reliable link), reliable for the rest."""
    return f"{endpoint}?rel={0 if _best_effort(endpoint, group) else 1}"


def check(settings: SessionSettings) -> list[str]:
    """What is wrong with these settings as written (empty when they can work)."""
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
            elif not ((m := _PORT.search(endpoint)) and 0 < int(m.group(1)) < 65536):
                problems.append(f"'{key}': {endpoint!r} has no port (1-65535), e.g. {endpoint.rstrip(':')}:7447")
    if bool(settings.user) != bool(settings.password):
        problems.append("'user' and 'password' go together")
    if settings.credentials_file and not Path(settings.credentials_file).is_file():
        problems.append(f"'credentials_file': {settings.credentials_file} does not exist")
    problems += _tls_problems(settings)
    return problems


def _tls_problems(settings: SessionSettings) -> list[str]:
    problems = []
    listens = any(e.startswith(ENCRYPTED) for e in settings.listen)
    connects = any(e.startswith(ENCRYPTED) for e in settings.connect)
    if (listens or connects) and not settings.tls_root_ca:
        problems.append("tls/quic endpoints need 'tls_root_ca' (the CA that signed the peers' certificates)")
    if listens and not (settings.tls_certificate and settings.tls_private_key):
        problems.append("listening on tls/quic needs 'tls_certificate' and 'tls_private_key'")
    if settings.mtls:
        if not (listens or connects):
            problems.append("'mtls': mutual TLS needs tls/ or quic/ endpoints")
        if connects and not (settings.tls_client_certificate and settings.tls_client_private_key):
            problems.append(
                "'mtls': connecting over tls/quic needs 'tls_client_certificate' and 'tls_client_private_key' "
                "(this site's certificate, signed by a CA the other site trusts)"
            )
    elif settings.tls_client_certificate or settings.tls_client_private_key:
        problems.append("'tls_client_certificate'/'tls_client_private_key' are presented only with 'mtls' true")
    files = {
        "tls_root_ca": "CERTIFICATE",
        "tls_certificate": "CERTIFICATE",
        "tls_client_certificate": "CERTIFICATE",
        "tls_private_key": "PRIVATE KEY",
        "tls_client_private_key": "PRIVATE KEY",
    }
    for key, pem in files.items():
        value = getattr(settings, key)
        if not value:
            continue
        try:
            text = Path(value).read_text(errors="replace")
        except OSError as err:
            problems.append(f"'{key}': cannot read {value} ({err.strerror or err})")
            continue
        if f"{pem}-----" not in text:
            problems.append(f"'{key}': {value} holds no PEM {pem.lower()} ('-----BEGIN ...{pem}-----')")
    return problems


def endpoint_host(endpoint: str) -> str:
    """The host part of ``proto/HOST:PORT`` (``proto/[IPv6]:PORT``)."""
    address = endpoint.split("/", 1)[-1]
    if address.startswith("["):
        return address[1 : address.find("]")] if "]" in address else address[1:]
    return address.rsplit(":", 1)[0]


def _loopback_ip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def is_loopback_host(host: str, resolve: Callable = socket.getaddrinfo) -> bool:
    """True when every address ``host`` names is a loopback address (127.0.0.0/8, ::1).

    Names are resolved; a name that does not resolve now counts as reachable from other
    machines (it may resolve to one later). 0.0.0.0 and :: (every interface) are not loopback.
    """
    try:
        return _loopback_ip(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        infos = resolve(host, None)
    except (OSError, UnicodeError):
        return False
    addresses = {info[4][0].split("%")[0] for info in infos}
    try:
        return bool(addresses) and all(_loopback_ip(ipaddress.ip_address(a)) for a in addresses)
    except ValueError:
        return False


def security_problems(settings: SessionSettings, resolve: Callable = socket.getaddrinfo) -> list[str]:
    """Why these settings would open the link to strangers (empty when they do not).

    Judged per endpoint that leaves the machine: whoever connects to a listening endpoint
    must prove who they are (a ``credentials_file`` to check passwords against, or a tls/quic
    endpoint with ``mtls``); a connection this site opens must be authenticated (``user`` and
    a password the other site checks, or a tls/quic endpoint whose certificate is checked
    against ``tls_root_ca``); and beside a TLS endpoint nothing may cross in plaintext.
    """
    remote = {
        key: [e for e in getattr(settings, key) if not is_loopback_host(endpoint_host(e), resolve)]
        for key in ("listen", "connect")
    }
    problems = []
    for endpoint in remote["listen"]:
        if settings.credentials_file or (settings.mtls and endpoint.startswith(ENCRYPTED)):
            continue
        fix = (
            "set 'mtls' true (peers then need a client certificate signed by 'tls_root_ca')"
            if endpoint.startswith(ENCRYPTED)
            else "use a tls/ or quic/ endpoint with 'mtls' true"
        )
        problems.append(
            f"'listen': {endpoint} can be reached from other machines and nobody who connects must prove "
            f"who they are: give 'credentials_file' (the user:password lines this site accepts), or {fix}"
        )
    for endpoint in remote["connect"]:
        if (settings.user and settings.password) or endpoint.startswith(ENCRYPTED):
            continue
        problems.append(
            f"'connect': {endpoint} leaves this machine unauthenticated: give 'user' and 'password_file' "
            "(the other site checks them), or use a tls/ or quic/ endpoint (its certificate is checked "
            "against 'tls_root_ca')"
        )
    encrypted = [e for e in [*settings.listen, *settings.connect] if e.startswith(ENCRYPTED)]
    if encrypted:
        for key, endpoints in remote.items():
            for endpoint in endpoints:
                if endpoint.startswith(ENCRYPTED):
                    continue
                proto, address = endpoint.split("/", 1)
                what, instead = (
                    ("best-effort traffic (odometry, scans, images, link probes)", "quic")
                    if proto == "udp"
                    else ("traffic", "tls")
                )
                problems.append(
                    f"'{key}': {endpoint} would carry {what} in plaintext beside the TLS endpoint "
                    f"{encrypted[0]}: use {instead}/{address} instead"
                )
    return problems


def refuse_insecure(settings: SessionSettings, resolve: Callable = socket.getaddrinfo) -> list[str]:
    """Raise ``TransportError`` when the settings are open to strangers and not ``insecure``.

    With ``insecure`` set, returns the same problems, for the caller to log as warnings.
    """
    problems = security_problems(settings, resolve)
    if problems and not settings.insecure:
        raise TransportError(
            [
                *problems,
                "refusing to start a site link that strangers could join or read: give credentials or TLS "
                "as said above, or set 'insecure' true to run it unauthenticated on purpose "
                "(docs/site_link_security.md)",
            ]
        )
    return problems


def zenoh_config(settings: SessionSettings):
    """A ``zenoh.Config`` for these settings (raises ``TransportError`` when they are wrong
    or insecure without ``insecure`` set)."""
    import zenoh

    problems = check(settings)
    if problems:
        raise TransportError(problems)
    refuse_insecure(settings)
    conf = zenoh.Config()

    def put(key: str, value) -> None:
        conf.insert_json5(key, json.dumps(value))

    put("mode", settings.mode)
    put("scouting/multicast/enabled", False)
    put("listen/endpoints", [_tag(e, settings.listen) for e in settings.listen])
    put("connect/endpoints", [_tag(e, settings.connect) for e in settings.connect])
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
    if settings.max_message_bytes:
        # Bound what a peer can make us reassemble before the receive path's own size checks
        # see it (zenoh's default is 1 GiB); a little room for the envelope's header.
        put("transport/link/rx/max_message_size", settings.max_message_bytes + 64 * 1024)
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
    if settings.mtls:
        # One switch in zenoh for both sides: listeners demand a client certificate signed by
        # the root CA (TLS 1.3 only), connectors present theirs.
        put("transport/link/tls/enable_mtls", True)
        if settings.tls_client_certificate:
            put("transport/link/tls/connect_certificate", settings.tls_client_certificate)
            put("transport/link/tls/connect_private_key", settings.tls_client_private_key)
    return conf


def open_session(settings: SessionSettings):
    """Open a zenoh session; a refusal becomes a ``TransportError`` with zenoh's reason."""
    import zenoh

    conf = zenoh_config(settings)
    try:
        return zenoh.open(conf)
    except zenoh.ZError as err:
        raise TransportError([f"cannot open the zenoh session: {err}"]) from None
