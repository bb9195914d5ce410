"""Benchmark: new TCP connections per second through our nftables ruleset for a 50,000-peer policy.

Two private network namespaces joined by a veth pair (removed afterwards, whatever happens): the target runs a
small TCP server (Python: accept, close, in a loop; one process per CPU on one SO_REUSEPORT port), the client
namespace runs client processes that each open short connections as fast as they can for a few seconds
(connect, wait for the server's close, close). Measured with no firewall in the target namespace, then with our
nftables ruleset loaded there: the policy of bench_firewall_load.py (role=db provides tcp/5432 to 50,000
role=web peers; the client's address is one of them), full enforcement. The runs alternate within each round.
On this 2-CPU machine two runs of the same setup differ by 10-25%, more than the firewall's own effect, so the
figure is the median over the rounds of each round's ratio (ours / no firewall, measured a few seconds apart);
the best and median rates of each setup are printed too. Target: ratio >= 0.9. A third run, a minimal stateful
ruleset (conntrack, `ct state established accept`, the port accepted from anyone), tells the cost of connection
tracking itself apart from the cost of our ruleset and its 50,000-element set.

Needs root; prints why and exits 0 otherwise.
Run: .venv/bin/python tests/bench/bench_firewall_conn_rate.py [--seconds 5] [--clients N] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PORT = 5432  # the port of bench_firewall_load's policy
CLIENT_ADDRESS = "10.100.0.1"  # the first of bench_firewall_load's peers: in the allowed set
TARGET_ADDRESS = "10.199.0.2"
SERVER = (
    "import socket, sys\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)\n"
    "s.bind((sys.argv[1], int(sys.argv[2])))\n"
    "s.listen(4096)\n"
    "while True:\n"
    "    c, a = s.accept()\n"
    "    c.close()\n"
)
MINIMAL = f"""table inet bench {{
    chain input {{
        type filter hook input priority filter; policy drop;
        ct state established,related accept
        tcp dport {PORT} accept
    }}
}}
"""
MODES = {"none": "no firewall", "minimal": "minimal stateful ruleset", "nftables": "our nftables ruleset"}
CLIENT = (
    "import socket, sys, time\n"
    "address, deadline = (sys.argv[1], int(sys.argv[2])), time.monotonic() + float(sys.argv[3])\n"
    "done = failed = 0\n"
    "while time.monotonic() < deadline:\n"
    "    try:\n"
    "        c = socket.create_connection(address, timeout=2)\n"
    "        c.recv(1)\n"
    "        c.close()\n"
    "        done += 1\n"
    "    except OSError:\n"
    "        failed += 1\n"
    "print(done, failed)\n"
)


def run(*command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, input=stdin, capture_output=True, text=True, check=True)


def set_up(client_ns: str, target_ns: str) -> None:
    run("ip", "netns", "add", client_ns)
    run("ip", "netns", "add", target_ns)
    run("ip", "link", "add", "bfc0", "netns", client_ns, "type", "veth", "peer", "name", "bft0", "netns", target_ns)
    for namespace, link, mine, theirs in (
        (client_ns, "bfc0", CLIENT_ADDRESS, TARGET_ADDRESS),
        (target_ns, "bft0", TARGET_ADDRESS, CLIENT_ADDRESS),
    ):
        run("ip", "-n", namespace, "link", "set", "lo", "up")
        run("ip", "-n", namespace, "addr", "add", f"{mine}/32", "dev", link)
        run("ip", "-n", namespace, "link", "set", link, "up")
        run("ip", "-n", namespace, "route", "add", f"{theirs}/32", "dev", link)
    # Many short connections: ports come back soon on the client; the server side keeps the TIME_WAITs.
    run("ip", "netns", "exec", client_ns, "sysctl", "-q", "net.ipv4.ip_local_port_range=1024 65000")
    run("ip", "netns", "exec", client_ns, "sysctl", "-q", "net.ipv4.tcp_tw_reuse=1")
    run("ip", "netns", "exec", target_ns, "sysctl", "-q", "net.ipv4.tcp_max_tw_buckets=4096")


def rate(client_ns: str, clients: int, seconds: float) -> tuple[float, int]:
    """Connections per second of `clients` client processes together, and how many attempts failed."""
    processes = [
        subprocess.Popen(
            ["ip", "netns", "exec", client_ns, sys.executable, "-c", CLIENT, TARGET_ADDRESS, str(PORT), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _client in range(clients)
    ]
    done = failed = 0
    for process in processes:
        output, _unused = process.communicate(timeout=seconds + 60)
        ok, bad = (int(x) for x in output.split())
        done += ok
        failed += bad
    return done / seconds, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--peers", type=int, default=50000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=max(2, os.cpu_count() or 1))
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    import bench_firewall_load as load

    reason = load.skip_reason()
    if reason:
        print(f"SKIPPED bench_firewall_conn_rate: {reason}")
        return 0
    ir = load.compile_target(load.peer_addresses(args.peers), ["192.0.2.10"], TARGET_ADDRESS)
    nft_text = load.render_both(ir)[0]
    assert load.PORT == PORT and CLIENT_ADDRESS in nft_text
    print(
        f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}; "
        f"{args.clients} client processes, {os.cpu_count()} server processes, {args.seconds:g} s per run"
    )
    client_ns, target_ns = f"bench-cc-{os.getpid()}", f"bench-ct-{os.getpid()}"
    servers = []
    results = {mode: [] for mode in MODES}
    try:
        set_up(client_ns, target_ns)
        for _index in range(os.cpu_count() or 1):
            servers.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", target_ns, sys.executable, "-c", SERVER, TARGET_ADDRESS, str(PORT)]
                )
            )
        time.sleep(1)
        for round_number in range(1, args.rounds + 1):
            for mode in MODES:
                run("ip", "netns", "exec", target_ns, "nft", "flush", "ruleset")
                if mode != "none":
                    run(
                        "ip",
                        "netns",
                        "exec",
                        target_ns,
                        "nft",
                        "-f",
                        "-",
                        stdin=MINIMAL if mode == "minimal" else nft_text,
                    )
                time.sleep(0.5)
                per_second, failed = rate(client_ns, args.clients, args.seconds)
                results[mode].append(per_second)
                print(f"  round {round_number}, firewall {mode:8s}: {per_second:8.0f} connections/s ({failed} failed)")
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
        for namespace in (client_ns, target_ns):
            subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False)
    best = {mode: max(rates) for mode, rates in results.items()}
    median = {mode: statistics.median(rates) for mode, rates in results.items()}
    elements = sum(len(data["elements"]) for data in ir["sets"].values())
    for mode, title in MODES.items():
        print(f"{title:26s}: {best[mode]:8.0f} connections/s best of {args.rounds}, median {median[mode]:.0f}")
    paired = sorted(ours / none for ours, none in zip(results["nftables"], results["none"], strict=True))
    ratio = statistics.median(paired)
    verdict = "ok" if ratio >= 0.9 else "BELOW the 0.9 target"
    print(f"per-round ratios ours / no firewall: {', '.join(f'{value:.2f}' for value in paired)}")
    print(
        f"ratio ours ({elements} set elements) / no firewall: {ratio:.2f} median of {args.rounds} rounds ({verdict}; "
        f"best of each {best['nftables'] / best['none']:.2f})"
    )
    print(
        f"ratio ours / minimal stateful ruleset: {best['nftables'] / best['minimal']:.2f} "
        f"(medians {median['nftables'] / median['minimal']:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
