"""``sern link status``: what the site links on this ROS graph report, live; ``sern link certs``:
a private CA and the sites' TLS certificates (``sern/link_certs.py``).

Reads /diagnostics and prints, per site link, the link (RTT, loss, throughput against the
budget, and what it refused: stale commands, malformed frames, ...) and every topic it
carries (the configuration the MMCF chose, its predicted latency, delivery and bandwidth,
the cost terms). Refreshes every second; ``--once``
prints one report and exits (code 1 if no site link answered within ``--wait`` seconds).
"""

from __future__ import annotations

import argparse
import sys
import time

from sern import link_certs
from sim_bridge.link.faults import FAULTS

# What a site link refused (printed when not zero); superseded images and the stops it
# published on silent command topics are not refusals.
FAULT_KEYS = tuple(name for name in FAULTS if name not in ("images_superseded", "silence_stops"))


def add_parser(sub) -> None:
    p = sub.add_parser(
        "link",
        help="show the site links' state (RTT, loss, chosen configurations, cost terms); make their certificates",
        description=__doc__.split("\n\n")[0].split(" (``")[0].replace("``", "'") + ".",
    )
    p.add_argument(
        "action",
        choices=["status", "certs"],
        help="status: print what the site links report; certs: make a CA and the sites' TLS certificates",
    )
    p.add_argument("--once", action="store_true", help="(status) print one report and exit")
    p.add_argument("--wait", type=float, default=5.0, help="(status) seconds to wait for a report (default 5)")
    link_certs.add_arguments(p)
    p.set_defaults(handler=run)


def format_report(statuses: dict[str, dict]) -> str:
    """Text for the latest statuses, keyed by status name."""
    lines = []
    links = {n: s for n, s in statuses.items() if n.startswith("site_link ") and ": link to " in n}
    for name, status in sorted(links.items()):
        v = status["values"]
        site = name.split(":")[0].removeprefix("site_link ")
        lines.append(
            f"{name.removeprefix('site_link ')}: {status['message']}; RTT {_num(v, 'rtt_ms', '.1f')} ms, "
            f"loss {_num(v, 'loss_pct', '.1f')} %, sending {_num(v, 'sent_mbps', '.2f')} of "
            f"{_num(v, 'budget_mbps', '.2f')} Mbit/s ({'adaptive, ' + v.get('profile', '') if v.get('adaptive') == 'True' else 'static'})"
        )
        refused = [f"{key} {v[key]}" for key in FAULT_KEYS if v.get(key, "0") != "0"]
        if refused:
            lines.append(f"  refused: {', '.join(refused)}")
        if v.get("silence_stops", "0") != "0":
            lines.append(f"  stops published on silent command topics: {v['silence_stops']}")
        topics = {n: s for n, s in statuses.items() if n.startswith(f"site_link {site}: /")}
        for tname, t in sorted(topics.items()):
            tv = t["values"]
            lines.append(
                f"  {tname.split(': ', 1)[1]:32} {t['message']}\n"
                f"  {'':32} predicted {_num(tv, 'predicted_latency_ms', '.0f')} ms, delivery "
                f"{_num(tv, 'predicted_delivery', '.3f')}, {_num(tv, 'predicted_kbps', '.0f')} kbit/s; "
                f"sent {_num(tv, 'sent_kbps', '.0f')} kbit/s, delivered {_num(tv, 'delivered', '.3f')} "
                f"({tv.get('delivered_received', '-')}/{tv.get('delivered_expected', '-')}); "
                f"J {_num(tv, 'cost', '.3f')} = L {_num(tv, 'cost_latency', '.3f')} + R {_num(tv, 'cost_reliability', '.3f')}"
                f" + C {_num(tv, 'cost_compute', '.3f')} + B {_num(tv, 'cost_bandwidth', '.3f')}"
            )
    return "\n".join(lines)


def _num(values: dict, key: str, spec: str) -> str:
    try:
        return format(float(values[key]), spec)
    except (KeyError, ValueError):
        return "-"


def run(args: argparse.Namespace) -> int:
    if args.action == "certs":
        return link_certs.run(args)
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray

    from ros_nodes.common import DIAGNOSTICS_QOS

    statuses: dict[str, dict] = {}

    def on_diag(msg: DiagnosticArray) -> None:
        for st in msg.status:
            if st.name.startswith("site_link "):
                statuses[st.name] = {"message": st.message, "values": {kv.key: kv.value for kv in st.values}}

    rclpy.init()
    node = rclpy.create_node("sern_link_status")
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, DIAGNOSTICS_QOS)
    try:
        deadline = time.monotonic() + args.wait
        while not statuses and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        if not statuses:
            print(
                f"no site link reported on /diagnostics within {args.wait:g} s (check ROS_DOMAIN_ID)", file=sys.stderr
            )
            return 1
        end = time.monotonic() + 1.2  # let every link's report of this second arrive
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.1)
        print(format_report(statuses), flush=True)
        while not args.once:
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                rclpy.spin_once(node, timeout_sec=0.1)
            print("\033[2J\033[H" + time.strftime("%H:%M:%S ") + "\n" + format_report(statuses), flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
