"""Flows of a VEN host and of an agentless host reach the lab PCE exactly once (playbooks/flows.yml).

Three test hosts and a lab PCE (rolelab): fl-ven runs the VEN stand-in (paired by playbooks/pair.yml), which logs
flows to vtapflow.log; fl-agl is an agentless host whose own nftables firewall enforces the PCE's policy
(playbooks/enforce.yml with enforce_record_flows, so its table records the flows it accepts and drops); fl-cli is a
client without either. Known traffic from fl-cli - allowed and dropped connections to fl-agl over IPv4 and IPv6,
connections to fl-ven - must show up in the PCE's traffic query with those tuples and exactly those counts after
playbooks/flows.yml, and still exactly those counts after a second run. Needs root.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

import rolelab  # noqa: E402 - beside this file (pytest puts its folder on sys.path)

NEEDED_TOOLS = ("ip", "nsenter", "unshare", "sshd", "ssh", "dpkg-deb", "nft")
MISSING_TOOLS = [tool for tool in NEEDED_TOOLS if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root: network namespaces, mounts, sshd"),
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=f"missing tools: {' '.join(MISSING_TOOLS)}"),
]

PACKAGE = REPO / ".build" / "vensim" / "illumio-ven-23.2.10-100.deb12.amd64.deb"
POLICY_FILE = REPO / "tests" / "hosts" / "files" / "enforce_lab_policy.yml"  # web may reach db on tcp/5432
VEN, AGENTLESS, CLIENT = "fl-ven", "fl-agl", "fl-cli"
ALLOWED_PORT, DROPPED_PORT, VEN_PORT = 5432, 5433, 17001
CONNECT = (
    "import socket, sys\n"
    "address, port, times, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])\n"
    "done = 0\n"
    "for attempt in range(times):\n"
    "    try:\n"
    "        socket.create_connection((address, port), timeout=timeout).close(); done += 1\n"
    "    except OSError:\n"
    "        pass\n"
    "print(done)\n"
)


class FlowsLab(rolelab.RoleLab):
    @functools.cached_property
    def hosts_view(self):
        return self.host_lab()  # once the hosts are up

    def addresses(self, host: str) -> tuple[str, str]:
        return self.hosts_view.ipv4(host), self.hosts_view.ipv6(host)

    def connect(self, source: str, address: str, port: int, times: int, timeout: float = 2.0) -> int:
        """Connections made from `source`; a timeout under a second means one SYN per failed attempt."""
        return int(self.exec(source, "python3", "-c", CONNECT, address, str(port), str(times), str(timeout)))

    def listen(self, host: str, port: int) -> None:
        self.hosts_view.listen(host, port)

    def ok(self, run, what: str):
        assert run.returncode == 0, f"{what} failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
        return rolelab.recap(run.stdout)


def workloads_playbook(lab: FlowsLab) -> Path:
    """fl-cli (web) and fl-agl (db) as unmanaged workloads of the shop's production, with their lab addresses."""
    tasks = []
    for host, role in ((CLIENT, "web"), (AGENTLESS, "db")):
        ipv4, ipv6 = lab.addresses(host)
        tasks.append(
            {
                "name": f"Workload {host}",
                "microseg.illumio.workload": {
                    "hostname": host,
                    "name": host,
                    "labels": {"role": role, "app": "shop", "env": "prod"},
                    "interfaces": [
                        {"name": "eth0", "address": ipv4, "cidr_block": 24},
                        {"name": "eth0", "address": ipv6, "cidr_block": 64},
                    ],
                },
            }
        )
    path = lab.pce_dir / "workloads.yml"
    path.write_text(json.dumps([{"name": "Workloads", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    return path


def traffic_query_playbook(lab: FlowsLab, dest: Path) -> Path:
    play = {
        "name": "What the PCE holds",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [
            {"name": "Query", "microseg.illumio.flow_query": {"since": 3600}, "register": "seen"},
            {"name": "Save", "ansible.builtin.copy": {"content": "{{ seen.flows | to_json }}", "dest": str(dest)}},
        ],
    }
    path = lab.pce_dir / "query.yml"
    path.write_text(json.dumps([play]))
    return path


@pytest.fixture(scope="module")
def lab():
    if not PACKAGE.exists():
        pytest.skip(f"{PACKAGE} missing: run `make vensim`")
    with FlowsLab("pytest-flows", (VEN, AGENTLESS, CLIENT), "10.213.238.0/24", "hlflow0") as running:
        yield running


@pytest.fixture(scope="module")
def traffic(lab):
    """Pair fl-ven, enforce on fl-agl with flow recording, then make the known connections from fl-cli."""
    locks = {f"{key}_label_lock": False for key in ("role", "app", "env", "loc")}
    profile = {
        "ven_labels": {"role": "cache", "app": "shop", "env": "prod"},
        "ven_pairing_profile_settings": {**locks, "enforcement_mode": "visibility_only"},
    }
    lab.ok(
        lab.playbook(
            "playbooks/pair.yml", "-e", f"pair_hosts={VEN}", *lab.pairing_vars("flows-test"), "-e", json.dumps(profile)
        ),
        "pair.yml",
    )
    lab.ok(lab.playbook("playbooks/policy_as_code.yml", "-e", f"policy_file={POLICY_FILE}"), "policy_as_code.yml")
    lab.ok(lab.playbook(str(workloads_playbook(lab))), "registering the workloads")
    enforce = ["-e", f"enforce_hosts={AGENTLESS}", "-e", "firewall_enforcement_mode=full"]
    lab.ok(lab.playbook("playbooks/enforce.yml", *enforce, "-e", "enforce_record_flows=true"), "enforce.yml")
    for port in (ALLOWED_PORT, DROPPED_PORT):
        lab.listen(AGENTLESS, port)
    lab.listen(VEN, VEN_PORT)
    agentless4, agentless6 = lab.addresses(AGENTLESS)
    ven4 = lab.addresses(VEN)[0]
    assert lab.connect(CLIENT, agentless4, ALLOWED_PORT, 3) == 3
    assert lab.connect(CLIENT, agentless6, ALLOWED_PORT, 1) == 1
    assert lab.connect(CLIENT, agentless4, DROPPED_PORT, 2, timeout=0.5) == 0
    assert lab.connect(CLIENT, ven4, VEN_PORT, 2) == 2
    # The stand-in logs a closed connection at its next look at the connection table (every 2 s).
    deadline = time.monotonic() + 20
    while lab.exec(VEN, "sh", "-c", "cat /opt/illumio_ven_data/log/vtapflow.log || true").count(f" {VEN_PORT} ") < 2:
        assert time.monotonic() < deadline, "the VEN stand-in did not log the connections"
        time.sleep(0.5)
    client4, client6 = lab.addresses(CLIENT)
    return {
        (client4, agentless4, ALLOWED_PORT, 6): 3,
        (client6, agentless6, ALLOWED_PORT, 6): 1,
        (client4, agentless4, DROPPED_PORT, 6): 2,
        (client4, ven4, VEN_PORT, 6): 2,
    }


def flows_run(lab: FlowsLab, report: Path, *extra: str):
    return lab.playbook(
        "playbooks/flows.yml",
        "-e",
        f"flows_hosts={VEN},{AGENTLESS}",
        "-e",
        f"flowlogs_controller_spool_dir={lab.pce_dir / 'spool'}",
        "-e",
        f"flows_report_dest={report}",
        *extra,
    )


def pce_counts(lab: FlowsLab, wanted: dict) -> dict:
    dest = lab.pce_dir / "seen.json"
    lab.ok(lab.playbook(str(traffic_query_playbook(lab, dest))), "flow_query")
    counts = dict.fromkeys(wanted, 0)
    for flow in json.loads(dest.read_text()):
        key = (flow["src_ip"], flow["dst_ip"], flow["port"], flow["proto"])
        if key in counts:
            counts[key] += flow["num_connections"]
    return counts


def test_flows_of_both_hosts_reach_the_pce_with_their_counts(lab, traffic):
    report = lab.pce_dir / "traffic.html"
    run = flows_run(lab, report)
    recap = lab.ok(run, "flows.yml")
    assert "[WARNING]" not in run.stdout + run.stderr, "a first run is quiet"
    assert recap[AGENTLESS]["changed"] >= 1 and recap[VEN]["changed"] >= 1
    assert pce_counts(lab, traffic) == traffic
    page = report.read_text(encoding="utf-8")
    assert "<svg" in page and str(DROPPED_PORT) in page
    # The agentless host's flow sets were read and emptied; recording went on in the other generation.
    assert "jump flow_allow_b" in lab.exec(AGENTLESS, "nft", "list", "map", "inet", "illumio", "flow_gen_allow")
    assert "elements" not in lab.exec(AGENTLESS, "nft", "list", "set", "inet", "illumio", "flow_allow_v4_a")
    # Uploaded files leave the hosts' spools.
    for host in (VEN, AGENTLESS):
        assert not lab.exec(host, "find", "/var/lib/microseg-illumio/flows/spool", "-name", "flows-*.csv").strip()


def test_a_second_run_adds_nothing_and_shows_no_secret(lab, traffic):
    run = flows_run(lab, lab.pce_dir / "traffic.html", "-vvv")
    recap = lab.ok(run, "second flows.yml")
    assert recap[AGENTLESS]["changed"] == 0
    secret = lab.api_key[1]
    assert secret not in run.stdout and secret not in run.stderr
    assert pce_counts(lab, traffic) == traffic


def test_enforcing_again_keeps_the_switched_generation(lab, traffic):
    """The live generation map differs from the rendered one after a collection: that is not a change."""
    enforce = ["-e", f"enforce_hosts={AGENTLESS}", "-e", "firewall_enforcement_mode=full"]
    recap = lab.ok(lab.playbook("playbooks/enforce.yml", *enforce, "-e", "enforce_record_flows=true"), "enforce.yml")
    assert recap[AGENTLESS]["changed"] == 0
    assert "jump flow_allow_b" in lab.exec(AGENTLESS, "nft", "list", "map", "inet", "illumio", "flow_gen_allow")
