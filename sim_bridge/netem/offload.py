"""Turn off a network interface's transmit checksum and segmentation offloads (what
``ethtool -K IF tx off tso off gso off`` does), through the SIOCETHTOOL ioctl.

Frames that leave a veth with offloads on carry unfinished TCP/UDP checksums and may be
64 KB TCP super-segments; the link relay reads frames from packet sockets, so the sites'
veths must hand over finished, MTU-sized frames. Run inside the interface's namespace:
``python -m sim_bridge.netem.offload IFNAME``.
"""

from __future__ import annotations

import ctypes
import fcntl
import socket
import struct
import sys

SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x00000017
ETHTOOL_SSG = 0x00000019
ETHTOOL_STSO = 0x0000001F
ETHTOOL_SGSO = 0x00000024


def disable_offloads(ifname: str) -> None:
    """Switch off TX checksum, scatter-gather, TSO and GSO on ``ifname``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for cmd in (ETHTOOL_STSO, ETHTOOL_SGSO, ETHTOOL_SSG, ETHTOOL_STXCSUM):
            value = ctypes.create_string_buffer(struct.pack("II", cmd, 0))
            request = struct.pack("16sP", ifname.encode()[:15], ctypes.addressof(value))
            fcntl.ioctl(sock.fileno(), SIOCETHTOOL, request)


if __name__ == "__main__":
    try:
        for name in sys.argv[1:]:
            disable_offloads(name)
    except OSError as err:
        print(f"offload: {err}", file=sys.stderr)
        sys.exit(1)
