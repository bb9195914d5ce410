"""Benchmark: load one host's firewall for a policy that names ~50,000 peer addresses.

Compiles (plugins/module_utils/policy) a synthetic snapshot in which one host (role=db) provides tcp/5432 to
50,000 workloads (role=web, addresses that never merge into ranges), renders it with nftables (one interval set),
and renders the naive iptables-restore equivalent for comparison: our iptables rendering with every ipset match
expanded into one rule per peer address (written here, only for this benchmark). Then, in a private network
namespace (removed afterwards), times `nft -f` of our ruleset against `iptables-restore` of the naive one, each
from an empty ruleset, best of 3, and prints both times and the ratio. For reference it also times our iptables
backend (ipset restore + iptables-restore + ip6tables-restore) and, where iptables-legacy is installed, the naive
ruleset with iptables-legacy-restore (iptables here is usually iptables-nft, which loads nftables rules too).

Needs root (network namespaces); prints why and exits 0 otherwise.
Run: .venv/bin/python tests/bench/bench_firewall_load.py [--peers 50000]
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PORT = 5432
TARGET = "target-db"
TARGET_ADDRESS = "10.199.0.2"
FIRST_PEER = ipaddress.IPv4Address("10.100.0.1")
ROUNDS = 3


def import_collection():
    """Make this checkout importable as ansible_collections.microseg.illumio (a symlink in a temp folder)."""
    root = Path(tempfile.mkdtemp(prefix="bench-fw-"))
    (root / "ansible_collections" / "microseg").mkdir(parents=True)
    (root / "ansible_collections" / "microseg" / "illumio").symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(root))


def peer_addresses(count: int, include: tuple[str, ...] = ()) -> list[str]:
    """`count` IPv4 addresses two apart (so an interval set cannot merge them), plus `include`."""
    addresses = [str(FIRST_PEER + 2 * index) for index in range(count - len(include))]
    return addresses + list(include)


def build_snapshot(peers: list[str], target_address: str = TARGET_ADDRESS) -> dict:
    """role=db (the target, full enforcement) provides tcp/5432 to every role=web workload (one per peer)."""
    labels = [
        {"href": "/orgs/1/labels/1", "key": "role", "value": "web"},
        {"href": "/orgs/1/labels/2", "key": "role", "value": "db"},
    ]

    def workload(index: int, hostname: str, address: str, label: int) -> dict:
        return {
            "href": f"/orgs/1/workloads/{index:08d}",
            "hostname": hostname,
            "name": hostname,
            "enforcement_mode": "full",
            "interfaces": [{"name": "eth0", "address": address}],
            "ignored_interface_names": [],
            "labels": [{"href": f"/orgs/1/labels/{label}"}],
        }

    workloads = [workload(0, TARGET, target_address, 2)]
    workloads += [workload(index + 1, f"web{index:05d}", address, 1) for index, address in enumerate(peers)]
    rule = {
        "href": "/orgs/1/sec_policy/active/rule_sets/1/sec_rules/1",
        "enabled": True,
        "providers": [{"label": {"href": "/orgs/1/labels/2"}}],
        "consumers": [{"label": {"href": "/orgs/1/labels/1"}}],
        "ingress_services": [{"port": PORT, "proto": 6}],
        "unscoped_consumers": False,
        "resolve_labels_as": {"providers": ["workloads"], "consumers": ["workloads"]},
    }
    rule_set = {
        "href": "/orgs/1/sec_policy/active/rule_sets/1",
        "name": "db from web",
        "enabled": True,
        "scopes": [[]],
        "rules": [rule],
        "deny_rules": [],
    }
    return {
        "labels": labels,
        "label_groups": [],
        "ip_lists": [],
        "services": [],
        "enforcement_boundaries": [],
        "rule_sets": [rule_set],
        "workloads": workloads,
    }


def compile_target(peers: list[str], management: list[str], target_address: str = TARGET_ADDRESS) -> dict:
    """The target's IR for the synthetic policy."""
    import_collection()
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.compiler import Compiler
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import Snapshot

    return Compiler(Snapshot(build_snapshot(peers, target_address)), management_allow=management).compile(TARGET)


def render_both(ir: dict) -> tuple[str, str]:
    """(our nftables script, the naive iptables-restore input with one rule per peer)."""
    from ansible_collections.microseg.illumio.plugins.module_utils.policy import render_iptables, render_nft

    return render_nft.render(ir), naive_iptables(ir, render_iptables)


def render_ours_iptables(ir: dict) -> dict:
    """Our iptables backend's texts: {"ipset", "iptables", "ip6tables"}."""
    from ansible_collections.microseg.illumio.plugins.module_utils.policy import render_iptables

    return render_iptables.render(ir)


def naive_iptables(ir: dict, render_iptables) -> str:
    """Our iptables rendering, each `-m set --match-set ILO-x src|dst` line repeated once per element of x."""
    elements = {render_iptables.set_name(name): data["elements"] for name, data in ir["sets"].items()}
    for family, name in (("ipv4", "mgmt_allow_v4"), ("ipv6", "mgmt_allow_v6")):
        elements.setdefault(render_iptables.set_name(name), ir["always_allow"]["management"][family])
    lines = []
    for line in render_iptables.render_rules(ir, "ipv4").splitlines():
        match = re.search(r"-m set --match-set (\S+) (src|dst)", line)
        if not match:
            lines.append(line)
            continue
        flag = "-s" if match.group(2) == "src" else "-d"
        lines.extend(line.replace(match.group(0), f"{flag} {element}") for element in elements[match.group(1)])
    return "\n".join(lines) + "\n"


def netns(name: str, *command: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ip", "netns", "exec", name, *command], input=stdin, capture_output=True, text=True, check=True
    )


def best_load(namespace: str, reset: list[list[str]], loads: list[tuple[list[str], str]]) -> float:
    """Best wall time of ROUNDS runs of `loads` (command, its input), each from an empty ruleset."""
    times = []
    for _round in range(ROUNDS):
        for step in reset:
            netns(namespace, *step)
        started = time.perf_counter()
        for command, text in loads:
            netns(namespace, *command, stdin=text)
        times.append(time.perf_counter() - started)
    return min(times)


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root (it loads firewalls in a private network namespace)"
    missing = [tool for tool in ("ip", "nft", "iptables-restore") if not shutil.which(tool)]
    return f"needs these tools: {' '.join(missing)}" if missing else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--peers", type=int, default=50000)
    args = parser.parse_args()
    reason = skip_reason()
    if reason:
        print(f"SKIPPED bench_firewall_load: {reason}")
        return 0
    started = time.perf_counter()
    ir = compile_target(peer_addresses(args.peers), ["192.0.2.10"])
    nft_text, naive_text = render_both(ir)
    ours_iptables = render_ours_iptables(ir)
    elements = sum(len(data["elements"]) for data in ir["sets"].values())
    naive_rules = sum(1 for line in naive_text.splitlines() if line.startswith("-A "))
    print(
        f"policy: {TARGET} provides tcp/{PORT} to {args.peers} peers; compile + render "
        f"{time.perf_counter() - started:.2f} s; nftables: {len(ir['sets'])} sets, {elements} elements, "
        f"{len(nft_text) / 1e6:.2f} MB; naive iptables: {naive_rules} rules, {len(naive_text) / 1e6:.2f} MB"
    )
    namespace = f"bench-fwload-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    try:
        nft = best_load(namespace, [["nft", "flush", "ruleset"]], [(["nft", "-f", "-"], nft_text)])
        netns(namespace, "nft", "flush", "ruleset")
        reset = [["iptables", "-F"], ["iptables", "-X"]]
        naive = best_load(namespace, reset, [(["iptables-restore"], naive_text)])
        loaded = netns(namespace, "iptables-save", "-t", "filter").stdout.count("\n-A ILO-INPUT ")
        netns(namespace, "nft", "flush", "ruleset")
        ipset = None
        if shutil.which("ipset"):
            reset = [["iptables", "-F"], ["iptables", "-X"], ["ip6tables", "-F"], ["ip6tables", "-X"]]
            reset.append(["ipset", "destroy"])
            loads = [(["ipset", "restore"], ours_iptables["ipset"])]
            loads.append((["iptables-restore", "--noflush"], ours_iptables["iptables"]))
            loads.append((["ip6tables-restore", "--noflush"], ours_iptables["ip6tables"]))
            ipset = best_load(namespace, reset, loads)
            for step in reset:
                netns(namespace, *step)
        legacy = None
        if shutil.which("iptables-legacy-restore"):
            reset = [["iptables-legacy", "-F"], ["iptables-legacy", "-X"]]
            try:
                legacy = best_load(namespace, reset, [(["iptables-legacy-restore"], naive_text)])
            except subprocess.CalledProcessError as exc:
                print(f"(iptables-legacy-restore failed, left out: {exc.stderr.strip()[:200]})")
    finally:
        subprocess.run(["ip", "netns", "delete", namespace], check=False)
    print(f"nft -f (our ruleset, sets):                      best of {ROUNDS}: {nft * 1000:8.1f} ms")
    print(f"iptables-restore (naive, rule per peer):         best of {ROUNDS}: {naive * 1000:8.1f} ms ({loaded} rules)")
    print(f"ratio naive / ours: {naive / nft:.1f}x")
    if ipset is not None:
        print(f"for reference, our iptables backend (ipset):     best of {ROUNDS}: {ipset * 1000:8.1f} ms")
    if legacy is not None:
        print(f"for reference, naive with iptables-legacy-restore: best of {ROUNDS}: {legacy * 1000:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
