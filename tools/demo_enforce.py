"""`make demo`, enforcement part: the PCE's policy enforced by two test hosts' own firewalls, shown with traffic.

Starts two hostlab hosts (web, db) and a lab PCE on their bridge (tests/vensim/rolelab.py), builds and
provisions a small policy with playbooks/policy_as_code.yml (web may reach db on tcp/5432, nothing else),
registers the hosts as unmanaged workloads in full enforcement, runs playbooks/enforce.yml (compile on the
controller, apply with confirm-or-rollback), then tries web -> db on 5432 (allowed) and 5433 (not in the
policy) and prints both outcomes. The firewalls record the flows they accept and drop (enforce_record_flows);
playbooks/flows.yml collects them, uploads them to the PCE and writes the HTML traffic map
.build/demo/traffic.html; the flows the PCE then holds are printed. Removes everything but the map.
Needs root (test hosts are network namespaces with sshd); says so and exits 0 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "vensim"))

HOSTS = ("dweb", "ddb")
POLICY = REPO / "tests" / "hosts" / "files" / "enforce_lab_policy.yml"
WORKLOADS = """\
- name: Register the test hosts as unmanaged workloads
  hosts: hostlab
  gather_facts: false
  tasks:
    - name: Workload with its lab addresses and labels
      microseg.illumio.workload:
        hostname: "{{ inventory_hostname }}"
        name: "{{ inventory_hostname }}"
        labels: {role: "{{ 'web' if inventory_hostname == 'dweb' else 'db' }}", app: shop, env: prod}
        enforcement_mode: full
        interfaces:
          - {name: eth0, address: "{{ hostlab_ipv4 }}", cidr_block: 24}
          - {name: eth0, address: "{{ hostlab_ipv6 }}", cidr_block: 64}
      delegate_to: localhost
"""
QUERY = """\
- name: The flows the PCE holds
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Traffic query
      microseg.illumio.flow_query:
        since: 3600
      register: seen
    - name: Save it
      ansible.builtin.copy:
        content: "{{ seen.flows | to_json }}"
        dest: "{{ demo_dest }}"
        mode: "0600"
"""
REPORT = REPO / ".build" / "demo" / "traffic.html"


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def must(run, what: str) -> None:
    if run.returncode != 0:
        print(run.stdout[-3000:], run.stderr[-2000:])
        raise SystemExit(f"demo: {what} failed")


def main() -> int:
    if os.geteuid() != 0:
        print("demo (enforcement on test hosts): skipped - the test hosts need root")
        return 0
    import rolelab  # the sys.path entry above makes it importable

    with (
        rolelab.RoleLab("demo-enforce", HOSTS, "10.213.242.0/24", "hldemo1") as lab,
        tempfile.TemporaryDirectory() as tmp,
    ):
        hosts = lab.host_lab()
        step("Policy as code on the PCE: web may reach db on tcp/5432, nothing else")
        must(lab.playbook("playbooks/policy_as_code.yml", "-e", f"policy_file={POLICY}"), "policy_as_code")
        workloads = Path(tmp, "workloads.yml")
        workloads.write_text(WORKLOADS, encoding="utf-8")
        must(lab.playbook(str(workloads)), "registering the workloads")
        for port in (5432, 5433):
            hosts.listen("ddb", port)
        step("Enforce it with each host's own firewall (playbooks/enforce.yml)")
        run = lab.playbook(
            "playbooks/enforce.yml",
            "-e",
            "enforce_hosts=hostlab",
            "-e",
            "enforce_record_flows=true",
        )
        must(run, "enforce.yml")
        for host, counters in rolelab.recap(run.stdout).items():
            print(f"{host}: changed={counters['changed']} failed={counters['failed']}")
        step("Traffic from dweb to ddb")
        for port, expected in ((5432, "allowed by the policy"), (5433, "not in the policy")):
            done = hosts.connect("dweb", hosts.ipv4("ddb"), port, timeout=0.9)
            outcome = "connected" if done.returncode == 0 else f"blocked ({done.stderr.strip() or 'no answer'})"
            print(f"dweb -> ddb:{port} ({expected}): {outcome}")
        print("\n" + hosts.ssh("ddb", "nft list chain inet illumio input").stdout)
        show_flows(lab, Path(tmp))
    return 0


def show_flows(lab, tmp: Path) -> None:
    step("Flows: recorded by the firewalls, collected and uploaded (playbooks/flows.yml), as the PCE holds them")
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    spool = f"flowlogs_controller_spool_dir={tmp / 'spool'}"
    by_role = json.dumps({"flows_report_group_by": ["role", "app"]})  # web and db are one app: tell them apart
    run = lab.playbook(
        "playbooks/flows.yml",
        "-e",
        "flows_hosts=hostlab",
        "-e",
        spool,
        "-e",
        f"flows_report_dest={REPORT}",
        "-e",
        by_role,
    )
    must(run, "flows.yml")
    query = tmp / "query.yml"
    query.write_text(QUERY, encoding="utf-8")
    must(lab.playbook(str(query), "-e", f"demo_dest={tmp / 'flows.json'}"), "the traffic query")
    flows = json.loads((tmp / "flows.json").read_text(encoding="utf-8"))
    print(f"{'source':<16} {'destination':<16} {'port':>5} {'proto':<5} {'connections':>11}  decision")
    for flow in sorted(flows, key=lambda row: (row["dst_ip"], row["port"], row["src_ip"])):
        print(
            f"{flow['src_hostname'] or flow['src_ip']:<16} {flow['dst_hostname'] or flow['dst_ip']:<16} "
            f"{flow['port']:>5} {flow['proto_name'] or flow['proto']:<5} {flow['num_connections']:>11}  "
            f"{flow['policy_decision']}"
        )
    print(
        "(Both firewalls record what they see, as two VENs would: dweb its outbound connection, ddb the same one "
        "inbound, and the lab PCE adds both reports up.)"
    )
    print(f"\nTraffic map (one HTML file, open it in a browser): {REPORT}")


if __name__ == "__main__":
    sys.exit(main())
