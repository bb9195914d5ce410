"""`make demo`, VEN part: pair three test hosts with role microseg.illumio.ven, show their facts and inventory.

Starts three hostlab hosts and a lab PCE with the VEN stand-in (tests/vensim/rolelab.py), pairs dv1 and dv2
through the PCE's pairing script (labels web/db, one key for the play) and dv3 from a package file, runs the
pairing again to show that nothing changes, prints each VEN's facts and the PCE inventory's groups, and removes
everything. Needs root (test hosts are network namespaces with sshd); says so and exits 0 otherwise.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "vensim"))

HOSTS = ("dv1", "dv2", "dv3")
HOST_VARS = """\
ven_labels: "{{ {'dv1': {'role': 'web', 'env': 'demo'}, 'dv2': {'role': 'db', 'env': 'demo'}}[inventory_hostname]
  | default({'role': 'batch', 'env': 'demo'}) }}"
ven_install_method: "{{ 'package' if inventory_hostname == 'dv3' else 'pairing_script' }}"
ven_ca_trust_store: "{{ inventory_hostname == 'dv3' }}"
ven_package_src: PACKAGE
ven_pairing_profile_settings:
  enforcement_mode: visibility_only
  role_label_lock: false
  env_label_lock: false
"""
INVENTORY = """\
plugin: microseg.illumio.pce
hostnames: [hostname, name]
keyed_groups:
  - key: illumio_agent.version
    prefix: ven
"""


def step(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def main() -> int:
    if os.geteuid() != 0:
        print("demo (VEN pairing): skipped - the test hosts need root")
        return 0
    import rolelab  # the sys.path entry above makes it importable

    package = REPO / ".build" / "vensim" / "illumio-ven-23.2.10-100.deb12.amd64.deb"
    with rolelab.RoleLab("demo-ven", HOSTS, "10.213.244.0/24", "hldemo0") as lab, tempfile.TemporaryDirectory() as tmp:
        host_vars = Path(tmp, "host_vars.yml")
        host_vars.write_text(HOST_VARS.replace("PACKAGE", str(package)), encoding="utf-8")
        arguments = ("-e", "pair_hosts=all", *lab.pairing_vars("demo-linux"), f"-e@{host_vars}")
        for title in ("Pair dv1, dv2 (pairing script) and dv3 (package)", "Pair again: nothing to do"):
            step(title)
            run = lab.playbook("playbooks/pair.yml", *arguments)
            counters = rolelab.recap(run.stdout)
            print("\n".join(f"{host}: changed={c['changed']} failed={c['failed']}" for host, c in counters.items()))
            if run.returncode != 0:
                print(run.stdout[-3000:], run.stderr[-2000:])
                return 1
        step("VEN facts (microseg.illumio.ven_facts)")
        facts = lab.playbook("playbooks/ven_status.yml", "-e", "status_hosts=all")
        print("\n".join(line.strip()[8:-1] for line in facts.stdout.splitlines() if '"msg": ' in line))
        step("The PCE as an inventory (microseg.illumio.pce)")
        inventory = Path(tmp, "demo.pce.yml")
        inventory.write_text(INVENTORY, encoding="utf-8")
        graph = lab.run_tool("ansible-inventory", "-i", str(inventory), "--graph")
        print(graph.stdout or graph.stderr)
    print(json.dumps({"demo": "VEN pairing", "hosts": list(HOSTS), "removed": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
