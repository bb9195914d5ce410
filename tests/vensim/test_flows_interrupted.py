"""Agentless flows reach the PCE exactly once after an interrupted collection (issue 17, finding 7).

Two test hosts and a lab PCE (rolelab): fi-agl enforces the PCE's policy with its own nftables firewall and records
flows (playbooks/enforce.yml with enforce_record_flows); fi-cli makes known connections to it - allowed ones to
tcp/5432, dropped ones to a port of each scenario's own. Each scenario interrupts the collection the way the issue
did, on the real kernel with real counters, then runs playbooks/flows.yml normally and compares what the PCE's
traffic query holds with the connections made:

- the collector killed right after it switched generations (a stand-in nft kills its parent, flow_collect, with
  SIGKILL right after applying the switch);
- the spool read-only (a read-only bind mount in the host's mount namespace): the run fails, the next one collects;
- killed after the switch, then enforced again with a ruleset that replaces the table;
- killed after the switch, then recording turned off: enforce without enforce_record_flows, or mode idle;
- the collector killed after spooling, before emptying the sets (SIGKILL instead of the flush).

Each scenario starts from a fresh table (enforced with a flow_set_timeout of its own) and measures what the PCE
gained. Needs root.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import shutil
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

import rolelab  # noqa: E402 - beside this file (pytest puts its folder on sys.path)

NEEDED_TOOLS = ("ip", "nsenter", "unshare", "sshd", "ssh", "nft")
MISSING_TOOLS = [tool for tool in NEEDED_TOOLS if not shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin")]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="test hosts need root: network namespaces, mounts, sshd"),
    pytest.mark.skipif(bool(MISSING_TOOLS), reason=f"missing tools: {' '.join(MISSING_TOOLS)}"),
]

POLICY_FILE = REPO / "tests" / "hosts" / "files" / "enforce_lab_policy.yml"  # web may reach db on tcp/5432
AGENTLESS, CLIENT = "fi-agl", "fi-cli"
ALLOWED_PORT = 5432
SPOOL = "/var/lib/microseg-illumio/flows/spool"
KILLER_DIR = "/root/killnft"
# A stand-in for nft, first on the collector's PATH: with the mode `after-switch` it applies the generation switch
# and then kills its parent (the flow_collect module) with SIGKILL; with `before-flush` it kills it instead of
# emptying the sets. Anything else goes to the real nft.
KILLER = r"""#!/bin/sh
mode=$(cat /root/killnft/mode 2>/dev/null)
case " $* " in
*" -f - "*)
    data=$(cat)
    case "$mode:$data" in before-flush:*"flush set"*) kill -9 "$PPID"; exit 1 ;; esac
    printf '%s\n' "$data" | /usr/sbin/nft "$@"
    rc=$?
    case "$mode:$data" in after-switch:*"flush map"*) kill -9 "$PPID" ;; esac
    exit "$rc" ;;
esac
exec /usr/sbin/nft "$@"
"""
CONNECT = (
    "import socket, sys, time\n"
    "address, port, times, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])\n"
    "done = 0\n"
    "for attempt in range(times):\n"
    "    try:\n"
    "        socket.create_connection((address, port), timeout=timeout).close(); done += 1\n"
    "    except OSError:\n"
    "        pass\n"
    "    time.sleep(0.05)\n"
    "print(done)\n"
)


class FlowsLab(rolelab.RoleLab):
    timeouts = iter(range(86401, 86500))  # each scenario's own flow_set_timeout: a new table

    @functools.cached_property
    def hosts_view(self):
        return self.host_lab()

    def ok(self, run, what: str):
        assert run.returncode == 0, f"{what} failed:\n{run.stdout[-6000:]}\n{run.stderr[-3000:]}"
        return rolelab.recap(run.stdout)

    def enforce(self, *extra: str, record: bool = True):
        args = ["-e", f"enforce_hosts={AGENTLESS}", "-e", "firewall_enforcement_mode=full"]
        if record:
            args += ["-e", "enforce_record_flows=true", "-e", f"enforce_flow_set_timeout={next(self.timeouts)}"]
        return self.ok(self.playbook("playbooks/enforce.yml", *args, *extra), "enforce.yml")

    def flows(self, check=True):
        run = self.playbook(
            "playbooks/flows.yml",
            "-e",
            f"flows_hosts={AGENTLESS}",
            "-e",
            f"flowlogs_controller_spool_dir={self.pce_dir / 'spool'}",
            "-e",
            json.dumps({"flowlogs_sources": ["nft_sets"]}),  # never the connection table: only the flow sets
        )
        if check:
            self.ok(run, "flows.yml")
        return run

    def connections(self, port: int, times: int) -> None:
        """`times` connections (allowed port) or attempts (dropped: one SYN each) from the client over IPv4."""
        address = self.hosts_view.ipv4(AGENTLESS)
        timeout = "2" if port == ALLOWED_PORT else "0.5"
        done = int(self.exec(CLIENT, "python3", "-c", CONNECT, address, str(port), str(times), timeout))
        assert done == (times if port == ALLOWED_PORT else 0)

    def recorded(self) -> dict[int, int]:
        """What the kernel counted in both generations of the flow sets, from the client over IPv4, per port."""
        client, agentless = self.hosts_view.ipv4(CLIENT), self.hosts_view.ipv4(AGENTLESS)
        listing = self.exec(AGENTLESS, "sh", "-c", "nft -j list sets inet 2>/dev/null || true")
        counts: dict[int, int] = {}
        for item in json.loads(listing or '{"nftables": []}')["nftables"]:
            entry = item.get("set") or {}
            if entry.get("table") != "illumio" or not entry.get("name", "").startswith("flow_"):
                continue
            for element in entry.get("elem") or []:
                value = element["elem"]["val"]["concat"]
                if value[:3] == [client, agentless, "tcp"]:
                    counts[value[3]] = counts.get(value[3], 0) + element["elem"]["counter"]["packets"]
        return counts

    def collect_killed(self, mode: str) -> None:
        """flow_collect on the host, killed (SIGKILL) at the step `mode` names."""
        self.exec(AGENTLESS, "sh", "-c", f"printf %s {mode} > {KILLER_DIR}/mode")
        play = {
            "name": "Collect, killed",
            "hosts": AGENTLESS,
            "gather_facts": False,
            "tasks": [
                {
                    "name": "flow_collect",
                    "microseg.illumio.flow_collect": {"sources": ["nft_sets"]},
                    "environment": {"PATH": f"{KILLER_DIR}:/usr/sbin:/usr/bin:/sbin:/bin"},
                }
            ],
        }
        path = self.pce_dir / "killed.yml"
        path.write_text(json.dumps([play]))
        run = self.playbook(str(path))
        self.exec(AGENTLESS, "rm", "-f", f"{KILLER_DIR}/mode")
        assert run.returncode != 0, "the collector was not killed"
        assert "MODULE FAILURE" in run.stdout or "Killed" in run.stdout or "-9" in run.stdout, run.stdout[-3000:]

    def pce_counts(self) -> dict[int, int]:
        """Connections the PCE holds from the client to fi-agl over IPv4, per destination port."""
        dest = self.pce_dir / "seen.json"
        play = {
            "name": "What the PCE holds",
            "hosts": "localhost",
            "gather_facts": False,
            "tasks": [
                {"name": "Query", "microseg.illumio.flow_query": {"since": 7200}, "register": "seen"},
                {"name": "Save", "ansible.builtin.copy": {"content": "{{ seen.flows | to_json }}", "dest": str(dest)}},
            ],
        }
        path = self.pce_dir / "query.yml"
        path.write_text(json.dumps([play]))
        self.ok(self.playbook(str(path)), "flow_query")
        client, agentless = self.hosts_view.ipv4(CLIENT), self.hosts_view.ipv4(AGENTLESS)
        counts: dict[int, int] = {}
        for flow in json.loads(dest.read_text()):
            if (flow["src_ip"], flow["dst_ip"], flow["proto"]) == (client, agentless, 6):
                counts[flow["port"]] = counts.get(flow["port"], 0) + flow["num_connections"]
        return counts


def workloads_playbook(lab: FlowsLab) -> Path:
    tasks = []
    for host, role in ((CLIENT, "web"), (AGENTLESS, "db")):
        tasks.append(
            {
                "name": f"Workload {host}",
                "microseg.illumio.workload": {
                    "hostname": host,
                    "name": host,
                    "labels": {"role": role, "app": "shop", "env": "prod"},
                    "interfaces": [
                        {"name": "eth0", "address": lab.hosts_view.ipv4(host), "cidr_block": 24},
                        {"name": "eth0", "address": lab.hosts_view.ipv6(host), "cidr_block": 64},
                    ],
                },
            }
        )
    path = lab.pce_dir / "workloads.yml"
    path.write_text(json.dumps([{"name": "Workloads", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    return path


@pytest.fixture(scope="module")
def lab():
    with FlowsLab("pytest-flowsint", (AGENTLESS, CLIENT), "10.213.236.0/24", "hlflint0") as running:
        running.ok(running.playbook("playbooks/policy_as_code.yml", "-e", f"policy_file={POLICY_FILE}"), "policy")
        running.ok(running.playbook(str(workloads_playbook(running))), "registering the workloads")
        running.hosts_view.listen(AGENTLESS, ALLOWED_PORT)
        running.exec(AGENTLESS, "mkdir", "-p", KILLER_DIR)
        encoded = base64.b64encode(KILLER.encode()).decode()
        running.exec(
            AGENTLESS, "sh", "-c", f"echo {encoded} | base64 -d > {KILLER_DIR}/nft; chmod 0755 {KILLER_DIR}/nft"
        )
        yield running


class Scenario:
    """What the PCE gained during one scenario, per port, against what the kernel counted of the connections made.

    The flow sets count packets of new connections: a SYN sent again (the listener's backlog was full) counts
    again, so the truth is the kernel's count, taken around each burst of connections (nothing is collected
    meanwhile); `made` is what the client did."""

    def __init__(self, lab: FlowsLab, dropped_port: int):
        self.lab = lab
        self.dropped_port = dropped_port
        lab.enforce()  # a fresh table: nothing left of an earlier scenario in its sets
        lab.flows()
        self.before = lab.pce_counts()
        self.made = {ALLOWED_PORT: 0, dropped_port: 0}
        self.counted = {ALLOWED_PORT: 0, dropped_port: 0}

    def traffic(self, allowed: int, dropped: int) -> None:
        before = self.lab.recorded()
        self.lab.connections(ALLOWED_PORT, allowed)
        self.lab.connections(self.dropped_port, dropped)
        after = self.lab.recorded()
        self.made[ALLOWED_PORT] += allowed
        self.made[self.dropped_port] += dropped
        for port in self.counted:
            self.counted[port] += after.get(port, 0) - before.get(port, 0)
        assert all(self.counted[port] >= self.made[port] for port in self.made), (self.counted, self.made)

    def gained(self) -> dict[int, int]:
        after = self.lab.pce_counts()
        gained = {port: after.get(port, 0) - self.before.get(port, 0) for port in self.made}
        print(f"connections made {self.made}, counted by the kernel {self.counted}, gained by the PCE {gained}")
        return gained


def test_killed_right_after_the_switch_the_next_run_collects_everything(lab):
    scenario = Scenario(lab, 5441)
    scenario.traffic(allowed=16, dropped=4)
    lab.collect_killed("after-switch")
    lab.flows()
    assert scenario.gained() == scenario.counted


def test_a_read_only_spool_fails_the_run_and_the_next_one_collects_everything(lab):
    scenario = Scenario(lab, 5442)
    scenario.traffic(allowed=16, dropped=4)
    lab.exec(
        AGENTLESS, "sh", "-c", f"mkdir -p {SPOOL} && mount --bind {SPOOL} {SPOOL} && mount -o remount,ro,bind {SPOOL}"
    )
    try:
        failed = lab.flows(check=False)
    finally:
        lab.exec(AGENTLESS, "umount", SPOOL)
    assert failed.returncode != 0 and "Read-only file system" in failed.stdout, failed.stdout[-3000:]
    lab.flows()
    assert scenario.gained() == scenario.counted


def test_enforcing_again_after_a_killed_collection_loses_nothing(lab):
    scenario = Scenario(lab, 5443)
    scenario.traffic(allowed=14, dropped=3)
    lab.collect_killed("after-switch")
    scenario.traffic(allowed=2, dropped=1)
    lab.enforce()  # another flow_set_timeout: the table is replaced, which empties its sets
    lab.flows()
    assert scenario.gained() == scenario.counted


@pytest.mark.parametrize("how", ["without enforce_record_flows", "mode idle"])
def test_turning_recording_off_collects_every_generation_first(lab, how):
    scenario = Scenario(lab, 5444 if how == "mode idle" else 5445)
    scenario.traffic(allowed=14, dropped=3)
    lab.collect_killed("after-switch")
    scenario.traffic(allowed=2, dropped=1)
    if how == "mode idle":
        lab.enforce("-e", "firewall_enforcement_mode=idle", record=False)
        assert "illumio" not in lab.exec(AGENTLESS, "nft", "list", "tables")
    else:
        lab.enforce(record=False)
        assert "flow_gen_allow" not in lab.exec(AGENTLESS, "nft", "list", "table", "inet", "illumio")
    lab.flows()
    assert scenario.gained() == scenario.counted


def test_killed_after_spooling_before_emptying_the_sets_counts_once(lab):
    scenario = Scenario(lab, 5446)
    scenario.traffic(allowed=3, dropped=4)
    lab.collect_killed("before-flush")
    lab.flows()
    scenario.traffic(allowed=1, dropped=0)
    lab.flows()  # the sets switch back and forth: flows left in a set would be read twice
    scenario.traffic(allowed=1, dropped=0)
    lab.flows()
    assert scenario.gained() == scenario.counted
