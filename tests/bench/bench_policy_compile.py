"""Benchmark: compile and render the PCE's policy per host (plugins/module_utils/policy).

Builds a synthetic org in the PCE's shapes (default 25,000 workloads, 10,000 rules: one rule set per app with
intra- and extra-scope rules, IP-list and deny rules, regional rule sets scoped by label groups with
sub-groups, and org-wide core-service rules with `ams`), then prints:

1. compile + render for one host whose policy reaches 25,000+ peer addresses (a DNS server every workload may
   query), on a compiler whose indexes are built but whose caches are cold; target <= 50 ms;
2. index build, then compile + render for 1,000 hosts of the org in one pass: total and per host.

Prints figures; it is not a timed test. Run: .venv/bin/python tests/bench/bench_policy_compile.py
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROLES = ("web", "api", "app", "db", "cache", "mq", "lb", "batch", "search", "admin")
CORE_ROLES = ("dns", "ntp", "ad", "monitoring", "backup")
ENVS = ("prod", "staging", "dev", "test")
LOCS = tuple(f"dc{i}" for i in range(10))
REGIONS = {"emea": LOCS[:5], "amer": LOCS[5:]}


def import_collection():
    """Make this checkout importable as ansible_collections.microseg.illumio (a symlink in a temp folder)."""
    root = Path(tempfile.mkdtemp(prefix="bench-policy-"))
    (root / "ansible_collections" / "microseg").mkdir(parents=True)
    (root / "ansible_collections" / "microseg" / "illumio").symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(root))


class OrgBuilder:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.next_id = 1
        self.data = {
            name: []
            for name in (
                "labels",
                "label_groups",
                "ip_lists",
                "services",
                "rule_sets",
                "enforcement_boundaries",
                "workloads",
            )
        }
        self.rule_count = 0

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def label(self, key, value):
        href = f"/orgs/1/labels/{self.new_id()}"
        self.data["labels"].append({"href": href, "key": key, "value": value})
        return href

    def group(self, name, key, labels=(), sub_groups=()):
        href = f"/orgs/1/sec_policy/active/label_groups/{self.new_id()}"
        self.data["label_groups"].append(
            {
                "href": href,
                "name": name,
                "key": key,
                "labels": [{"href": h} for h in labels],
                "sub_groups": [{"href": h, "name": None} for h in sub_groups],
            }
        )
        return href

    def ip_list(self, name, ranges, fqdns=()):
        href = f"/orgs/1/sec_policy/active/ip_lists/{self.new_id()}"
        self.data["ip_lists"].append(
            {"href": href, "name": name, "ip_ranges": ranges, "fqdns": [{"fqdn": f} for f in fqdns]}
        )
        return href

    def service(self, name, ports):
        href = f"/orgs/1/sec_policy/active/services/{self.new_id()}"
        self.data["services"].append({"href": href, "name": name, "service_ports": ports})
        return href

    def rule_set(self, name, scopes):
        rule_set = {
            "href": f"/orgs/1/sec_policy/active/rule_sets/{self.new_id()}",
            "name": name,
            "enabled": True,
            "scopes": scopes,
            "rules": [],
            "deny_rules": [],
        }
        self.data["rule_sets"].append(rule_set)
        return rule_set

    def rule(self, rule_set, providers, consumers, services, unscoped=False, deny=None):
        kind = "sec_rules" if deny is None else "deny_rules"
        rule = {
            "href": f"{rule_set['href']}/{kind}/{self.new_id()}",
            "enabled": True,
            "providers": providers,
            "consumers": consumers,
            "ingress_services": services,
            "unscoped_consumers": unscoped,
        }
        if deny is None:
            rule["resolve_labels_as"] = {"providers": ["workloads"], "consumers": ["workloads"]}
            rule_set["rules"].append(rule)
        else:
            rule["override"] = deny == "override"
            rule_set["deny_rules"].append(rule)
        self.rule_count += 1


def build_org(workloads: int = 25000, rules: int = 10000, seed: int = 1) -> dict:
    b = OrgBuilder(seed)
    rng = b.rng
    role = {name: b.label("role", name) for name in ROLES + CORE_ROLES}
    env = {name: b.label("env", name) for name in ENVS}
    loc = {name: b.label("loc", name) for name in LOCS}
    apps = [b.label("app", f"app{i:03d}") for i in range(workloads // 50)]
    test_group = b.group("LG-TEST", "env", [env["test"]])
    b.group("LG-NONPROD", "env", [env["staging"], env["dev"]], [test_group])
    regions = {name: b.group(f"LG-{name}", "loc", [loc[x] for x in locs]) for name, locs in REGIONS.items()}
    all_dcs = b.group("LG-ALL-DC", "loc", [], list(regions.values()))
    services = [
        b.service(
            f"S-{i}",
            [
                {"proto": rng.choice((6, 6, 17)), "port": p, **({"to_port": p + 9} if i % 7 == 0 else {})}
                for p in rng.sample(range(1024, 60000), rng.randint(1, 5))
            ],
        )
        for i in range(100)
    ]
    ip_lists = []
    for i in range(200):
        ranges = [
            {"from_ip": f"{rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.0/24", "exclusion": False}
            for _count in range(rng.randint(1, 10))
        ]
        if i % 3 == 0:
            first = ranges[0]["from_ip"].rsplit(".", 1)[0]
            ranges.append({"from_ip": f"{first}.{rng.randrange(256)}", "exclusion": True})
        ip_lists.append(b.ip_list(f"IPL-{i}", ranges, fqdns=[f"svc{i}.example.com"] if i % 20 == 0 else ()))
    # Workloads: 50 per app, roles round-robin, the app's env, a random location; unique random IPv4, 20% IPv6.
    used = set()
    app_env = {}
    for index in range(workloads):
        app = apps[index // 50]
        app_env.setdefault(app, ENVS[(index // 50) % len(ENVS)])
        while True:
            address = rng.randrange(10 << 24, 11 << 24)
            if address not in used and address & 255 not in (0, 255):
                used.add(address)
                break
        interfaces = [
            {
                "name": "eth0",
                "address": f"{address >> 24}.{(address >> 16) & 255}.{(address >> 8) & 255}.{address & 255}",
            }
        ]
        if rng.random() < 0.2:
            interfaces.append({"name": "eth0", "address": f"fd00::{index >> 16:x}:{index & 0xFFFF:x}"})
        roles = CORE_ROLES if index < 50 else ROLES
        labels = [role[roles[index % len(roles)]], app, env[app_env[app]], loc[rng.choice(LOCS)]]
        b.data["workloads"].append(
            {
                "href": f"/orgs/1/workloads/{index:08d}",
                "hostname": f"host{index:05d}",
                "enforcement_mode": "full",
                "interfaces": interfaces,
                "ignored_interface_names": [],
                "labels": [{"href": h} for h in labels],
            }
        )

    def lbl(href):
        return {"label": {"href": href}}

    # Org-wide core services: every workload is a consumer of DNS/NTP/AD, monitoring and backup reach everyone.
    core = b.rule_set("RS-CORE", [[]])
    for name, ports in (
        ("dns", [{"proto": 17, "port": 53}, {"proto": 6, "port": 53}]),
        ("ntp", [{"proto": 17, "port": 123}]),
        ("ad", [{"proto": 6, "port": 389}, {"proto": 6, "port": 636}, {"proto": 6, "port": 88}]),
    ):
        b.rule(core, [lbl(role[name])], [{"actors": "ams"}], ports)
    b.rule(core, [{"actors": "ams"}], [lbl(role["monitoring"])], [{"proto": 6, "port": 9100}])
    b.rule(core, [{"actors": "ams"}], [lbl(role["backup"])], [{"proto": 6, "port": 10050}])
    b.rule(core, [{"ip_list": {"href": ip_lists[0]}}], [{"actors": "ams"}], [{"proto": 6, "port": 3128}])
    b.rule(core, [{"actors": "ams"}], [{"ip_list": {"href": ip_lists[1]}}], [{"proto": -1}], deny="override")
    b.rule(core, [{"actors": "ams"}], [{"ip_list": {"href": ip_lists[2]}}], [{"proto": 6, "port": 23}], deny="deny")
    # One rule set per app: intra-scope role -> role, one extra-scope, one IP-list rule, some deny rules.
    per_app = max(1, (rules - b.rule_count - 1000) // max(1, len(apps) - 1))
    for app in apps[1:]:
        rs = b.rule_set(f"RS-{app}", [[lbl(app), lbl(env[app_env[app]])]])
        for _count in range(per_app - 2):
            provider, consumer = rng.sample(ROLES, 2)
            b.rule(rs, [lbl(role[provider])], [lbl(role[consumer])], [{"href": rng.choice(services)}])
        other = rng.choice(apps[1:])
        b.rule(rs, [lbl(role["api"])], [lbl(role["app"]), lbl(other)], [{"proto": 6, "port": 8443}], unscoped=True)
        b.rule(
            rs,
            [lbl(role["lb"])],
            [{"ip_list": {"href": rng.choice(ip_lists)}}],
            [{"proto": 6, "port": 443}],
            unscoped=True,
        )
        if rng.random() < 0.1:
            b.rule(rs, [lbl(role["db"])], [{"ip_list": {"href": rng.choice(ip_lists)}}], [{"proto": -1}], deny="deny")
    # Regional rule sets scoped by label groups with sub-groups fill up to the rule count.
    regional = [b.rule_set(f"RS-REGION-{name}", [[{"label_group": {"href": href}}]]) for name, href in regions.items()]
    regional.append(b.rule_set("RS-ALL-DC", [[{"label_group": {"href": all_dcs}}, lbl(env["prod"])]]))
    while b.rule_count < rules:
        rs = rng.choice(regional)
        provider, consumer = rng.sample(ROLES, 2)
        b.rule(
            rs,
            [lbl(role[provider])],
            [lbl(role[consumer]), lbl(env[rng.choice(ENVS)])],
            [{"href": rng.choice(services)}],
        )
    return b.data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--workloads", type=int, default=25000)
    parser.add_argument("--rules", type=int, default=10000)
    parser.add_argument("--hosts", type=int, default=1000)
    args = parser.parse_args()
    import_collection()
    from ansible_collections.microseg.illumio.plugins.module_utils.policy import render_iptables, render_nft
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.compiler import Compiler
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.ir import summary
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.render import render
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import Snapshot

    print(f"machine: {os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    data = build_org(args.workloads, args.rules)
    rule_count = sum(len(rs["rules"]) + len(rs["deny_rules"]) for rs in data["rule_sets"])
    print(
        f"org: {len(data['workloads'])} workloads, {rule_count} rules in {len(data['rule_sets'])} rule sets, "
        f"{len(data['ip_lists'])} IP lists, {len(data['label_groups'])} label groups "
        f"(generated in {time.perf_counter() - started:.2f} s)"
    )
    management = ["192.0.2.10", "192.0.2.20"]

    # 1. One host whose policy reaches every workload: a fresh compiler each round (indexes built, caches and
    # the renderers' set-text caches cold), best of 5 rounds; CPU time too, since wall time suffers on a busy box.
    snapshot = Snapshot(data)
    dns = "host00000"
    for backend in ("nftables", "iptables"):
        walls, cpus = [], []
        for _round in range(5):
            fresh = Compiler(snapshot, management_allow=management)
            render_nft._BLOCKS.clear()
            render_iptables._BLOCKS.clear()
            gc.collect()
            wall, cpu = time.perf_counter(), time.process_time()
            ir = fresh.compile(dns)
            texts = render(ir, backend)
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        render(fresh.compile(dns), backend)
        warm = time.perf_counter() - wall
        if backend == "nftables":
            counts = summary(ir)
            print(
                f"one host ({dns}, a DNS server every workload may query): {counts['rules']} rules, "
                f"{counts['sets']} sets, {counts['elements']} set elements"
            )
        size = sum(len(text) for text in texts.values())
        verdict = "ok" if min(walls) <= 0.050 else "OVER the 50 ms target"
        print(
            f"  compile + render {backend:9s}: {min(walls) * 1000:6.1f} ms best wall time ({verdict}; "
            f"median {statistics.median(walls) * 1000:.1f}), {min(cpus) * 1000:.1f} ms CPU, "
            f"{warm * 1000:.1f} ms with warm caches; {size / 1e6:.2f} MB of text"
        )

    # 2. Many hosts in one pass, from a fresh compiler (index build included in the total).
    rng = random.Random(2)
    hosts = sorted(rng.sample([w["hostname"] for w in data["workloads"]], min(args.hosts, len(data["workloads"]))))
    for backend in ("nftables", "iptables"):
        render_nft._BLOCKS.clear()
        render_iptables._BLOCKS.clear()
        gc.collect()
        begin, cpu = time.perf_counter(), time.process_time()
        compiler = Compiler(Snapshot(data), management_allow=management)
        built = time.perf_counter() - begin
        per_host, digest, total_rules, total_elements, size = [], hashlib.sha256(), 0, 0, 0
        for host in hosts:
            one = time.perf_counter()
            ir = compiler.compile(host)
            texts = render(ir, backend)
            per_host.append(time.perf_counter() - one)
            counts = summary(ir)
            total_rules += counts["rules"]
            total_elements += counts["elements"]
            for part in sorted(texts):
                digest.update(texts[part].encode())
                size += len(texts[part])
        total, cpu = time.perf_counter() - begin, time.process_time() - cpu
        print(
            f"{len(hosts)} hosts, {backend}: total {total:.2f} s ({cpu:.2f} s CPU; index build {built * 1000:.0f} ms), "
            f"{sum(per_host) / len(hosts) * 1000:.2f} ms per host (median {statistics.median(per_host) * 1000:.2f}, "
            f"max {max(per_host) * 1000:.1f}); {total_rules} rules, {total_elements} set elements, "
            f"{size / 1e6:.1f} MB of text, sha256 {digest.hexdigest()[:16]}"
        )


if __name__ == "__main__":
    main()
