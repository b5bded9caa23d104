"""``sern link certs``: a private CA and one TLS certificate per site, for mutual TLS.

    sern link certs --out pki --site robot=10.0.0.2,robot.local --site twin=twin.local

writes ``ca.pem`` (give it to every site), ``ca.key`` (keep it off the robots: it signs new
sites), and ``<site>.pem`` / ``<site>.key`` (that site's only), then prints the site_link
parameters each site needs. A site's hosts are the names and addresses the other site
connects to it by (TLS checks them); a site that only connects needs no real host names.
Existing files are never overwritten.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_USAGE = 2


def site_spec(text: str) -> tuple[str, list[str]]:
    """``NAME=HOST[,HOST...]`` → (name, hosts)."""
    name, _, hosts = text.partition("=")
    host_list = [h.strip() for h in hosts.split(",") if h.strip()]
    if not name.strip() or not host_list:
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME=HOST[,HOST...], e.g. robot=10.0.0.2,robot.local")
    return name.strip(), host_list


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="(certs) folder for the CA and site certificates")
    parser.add_argument(
        "--site",
        type=site_spec,
        action="append",
        metavar="NAME=HOST[,HOST]",
        help="(certs) a site and the host names/addresses it is reached at; repeat per site",
    )
    parser.add_argument("--days", type=float, default=365.0, help="(certs) validity in days (default 365)")


def run(args: argparse.Namespace) -> int:
    from sim_bridge.link.certificates import write_site_certificates

    sites = dict(args.site or [])
    problems = []
    if args.out is None:
        problems.append("give --out FOLDER")
    if len(sites) < 2:
        problems.append("give --site NAME=HOST[,HOST] for each site (at least two)")
    if args.days <= 0:
        problems.append(f"--days must be > 0, got {args.days:g}")
    if args.out is not None:
        names = ["ca.pem", "ca.key", *(f"{s}{ext}" for s in sites for ext in (".pem", ".key"))]
        existing = [n for n in names if (args.out / n).exists()]
        if existing:
            problems.append(f"{args.out} already holds {', '.join(existing)}: not overwriting them")
    if problems:
        print("sern link: error: " + "; ".join(problems), file=sys.stderr)
        return EXIT_USAGE
    paths = write_site_certificates(args.out.resolve(), sites, days=args.days)
    ca = paths["ca"]
    print(f"wrote {args.out}: ca.pem for every site, ca.key to keep off the robots, and per site NAME.pem/NAME.key")
    for site in sites:
        cert, key = paths[site], paths[f"{site}_key"]
        print(
            f"  {site}: mtls:=true tls_root_ca:={ca} and, listening, tls_certificate:={cert} "
            f"tls_private_key:={key}; connecting, tls_client_certificate:={cert} tls_client_private_key:={key}"
        )
    return 0
