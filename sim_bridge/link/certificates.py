"""Certificates for site links: a private CA and one certificate per site, signed by it.

Each site's certificate names the hosts it is reached at (DNS names and IP addresses as
subject alternative names, which TLS clients check) and is valid for both TLS roles, so
one certificate serves a site that listens (``tls_certificate``) and one that connects with
mutual TLS (``tls_client_certificate``). Keys are ECDSA P-256 in PKCS#8 PEM, which zenoh's
TLS (rustls) reads; private keys are written readable by their owner only.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Authority:
    """A CA that signs site certificates (its key must stay off the robots)."""

    key: object
    certificate: object


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_authority(common_name: str = "sern site link CA", days: float = 365.0) -> Authority:
    """A new self-signed CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    key = _key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of two sites differ a little
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(key, cert)


def issue(authority: Authority, common_name: str, hosts: list[str], days: float = 365.0) -> tuple[bytes, bytes]:
    """A site certificate for ``hosts`` (DNS names or IP addresses): (certificate PEM, key PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    if not hosts:
        raise ValueError(f"site {common_name!r}: give at least one host name or address it is reached at")
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    key = _key()
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority.key.public_key()), critical=False)
        .sign(authority.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)


def write_site_certificates(
    folder: Path, sites: dict[str, list[str]], ca_name: str = "sern site link CA", days: float = 365.0
) -> dict[str, Path]:
    """Make a CA and a certificate per site in ``folder``: ``ca.pem``, ``ca.key`` and
    ``<site>.pem``, ``<site>.key``; returns the paths by file stem."""
    from cryptography.hazmat.primitives import serialization

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    authority = make_authority(ca_name, days)
    paths = {"ca": folder / "ca.pem", "ca_key": folder / "ca.key"}
    paths["ca"].write_bytes(authority.certificate.public_bytes(serialization.Encoding.PEM))
    _write_private(
        paths["ca_key"],
        authority.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    for site, hosts in sites.items():
        cert_pem, key_pem = issue(authority, site, hosts, days)
        paths[site] = folder / f"{site}.pem"
        paths[f"{site}_key"] = folder / f"{site}.key"
        paths[site].write_bytes(cert_pem)
        _write_private(paths[f"{site}_key"], key_pem)
    return paths
