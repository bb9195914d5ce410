"""Benchmark: 10,000 unmanaged workloads with 4 labels through microseg.illumio.workload_bulk.

Prints figures; it is not a timed test. Through ansible-playbook (the way users run it) it times
  1. create    - every workload is new: one read, then bulk_create in requests of 1000
  2. again     - the idempotent second run: one read of all workloads, nothing sent, changed=false
  3. update    - one label changed on 10 % of them
  4. delete    - state=absent for all of them
twice: with the items in `workloads` (from a vars file, templated by Ansible) and in `workloads_file`
(a JSON file the module reads itself). With --direct, also through the module_utils without Ansible.

Run it against a throwaway lab PCE:
    .venv/bin/python tools/with_lab.py -- .venv/bin/python tests/bench/bench_workload_bulk.py [--workloads N]
Without ILLUMIO_PCE_HOST in the environment it starts its own lab the same way (tools/with_lab.py).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

LABELS = {"role": 4, "app": 5, "env": 3, "loc": 2}


def collections_root(folder: Path) -> Path:
    namespace = folder / "ansible_collections" / "microseg"
    namespace.mkdir(parents=True)
    (namespace / "illumio").symlink_to(REPO, target_is_directory=True)
    sys.path.insert(0, str(folder))
    return folder


def client_from_environment():
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_params

    env = os.environ
    return client_from_params(
        {
            "pce_host": env["ILLUMIO_PCE_HOST"],
            "pce_port": int(env.get("ILLUMIO_PCE_PORT", "443")),
            "pce_org_id": int(env.get("ILLUMIO_PCE_ORG_ID", "1")),
            "api_key_username": env["ILLUMIO_API_KEY_USERNAME"],
            "api_key_secret": env["ILLUMIO_API_KEY_SECRET"],
            "ca_path": env.get("ILLUMIO_PCE_CA_PATH"),
        }
    )


def ensure_labels(client, prefix: str) -> None:
    existing = {(label["key"], label["value"]) for label in client.get_collection("labels")}
    for key, count in LABELS.items():
        for index in range(count):
            value = f"{prefix}-{key}-{index}"
            if (key, value) not in existing:
                client.post(client.org_path("labels"), {"key": key, "value": value})


def items(count: int, prefix: str, env_shift: int = 0, shifted_every: int = 0) -> list[dict]:
    result = []
    for n in range(count):
        env_index = n % LABELS["env"]
        if shifted_every and n % shifted_every == 0:
            env_index = (env_index + env_shift) % LABELS["env"]
        result.append(
            {
                "hostname": f"{prefix}-{n:05d}.bench.example",
                "labels": {
                    "role": f"{prefix}-role-{n % LABELS['role']}",
                    "app": f"{prefix}-app-{n % LABELS['app']}",
                    "env": f"{prefix}-env-{env_index}",
                    "loc": f"{prefix}-loc-{n % LABELS['loc']}",
                },
                "interfaces": [
                    {"name": "eth0", "address": f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", "cidr_block": 8}
                ],
                "description": "benchmark workload",
            }
        )
    return result


PLAYBOOK = """
- name: workload_bulk benchmark step
  hosts: localhost
  gather_facts: false
  vars_files:
    - {vars_file}
  tasks:
    - name: Bulk {state}
      microseg.illumio.workload_bulk:
        {items_option}
        state: {state}
      register: bench_result

    - name: Save the summary
      ansible.builtin.copy:
        content: "{{{{ {{'changed': bench_result.changed, 'summary': bench_result.summary}} | to_json }}}}"
        dest: {summary_file}
        mode: "0600"
"""


def run_playbook(
    folder: Path, collections: Path, name: str, workloads: list[dict], state: str, from_file: bool
) -> tuple[float, dict]:
    items_file = folder / f"{name}-items.json"
    items_file.write_text(json.dumps(workloads))
    vars_file = folder / f"{name}-vars.json"
    vars_file.write_text(json.dumps({} if from_file else {"bench_items": workloads}))
    items_option = f"workloads_file: {items_file}" if from_file else 'workloads: "{{ bench_items }}"'
    summary_file = folder / f"{name}-summary.json"
    playbook = folder / f"{name}.yml"
    playbook.write_text(
        PLAYBOOK.format(vars_file=vars_file, state=state, summary_file=summary_file, items_option=items_option)
    )
    inventory = folder / "hosts.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    environment = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_NOCOLOR": "1"}
    command = [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(playbook)]
    started = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"ansible-playbook failed for {name}:\n{done.stdout[-4000:]}\n{done.stderr[-2000:]}")
    return elapsed, json.loads(summary_file.read_text())


def run_direct(workloads: list[dict], state: str) -> tuple[float, dict]:
    from ansible_collections.microseg.illumio.plugins.module_utils.pce.workloads import ensure_bulk

    client = client_from_environment()
    started = time.perf_counter()
    result = ensure_bulk(client, {"workloads": workloads, "state": state})
    return time.perf_counter() - started, {"changed": result["changed"], "summary": result["summary"]}


def report(step: str, count: int, elapsed: float, outcome: dict) -> None:
    summary = outcome["summary"]
    print(
        f"{step:<22} {elapsed:7.2f} s  {count / elapsed:8.0f} workloads/s  changed={outcome['changed']!s:<5} "
        f"created={summary['created']} updated={summary['updated']} deleted={summary['deleted']} "
        f"unchanged={summary['unchanged']} failed={summary['failed']}",
        flush=True,
    )


def benchmark(count: int, direct: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-workload-bulk-") as scratch:
        folder = Path(scratch)
        collections = collections_root(folder / "collections")
        client = client_from_environment()
        for from_file in (False, True):
            prefix = f"wb{int(time.time()) % 100000}{'f' if from_file else 'l'}"
            ensure_labels(client, prefix)
            how = "workloads_file (JSON read by the module)" if from_file else "workloads (a list from vars_files)"
            print(f"{count} workloads, 4 labels each, ansible-playbook, items in {how}", flush=True)
            wanted = items(count, prefix)
            changed = items(count, prefix, env_shift=1, shifted_every=10)
            absent = [{"hostname": item["hostname"]} for item in wanted]
            for step, workloads, state in (
                ("create", wanted, "present"),
                ("again (idempotent)", wanted, "present"),
                ("update 10 %", changed, "present"),
                ("delete", absent, "absent"),
            ):
                name = f"{'file' if from_file else 'list'}-{step.split()[0]}"
                elapsed, outcome = run_playbook(folder, collections, name, workloads, state, from_file)
                report(step, count, elapsed, outcome)
        if direct:
            prefix = f"wb{int(time.time()) % 100000}d"
            ensure_labels(client, prefix)
            wanted = items(count, prefix)
            print(f"{count} workloads through module_utils directly (no Ansible)", flush=True)
            elapsed, outcome = run_direct(wanted, "present")
            report("create", count, elapsed, outcome)
            elapsed, outcome = run_direct(wanted, "present")
            report("again (idempotent)", count, elapsed, outcome)
            elapsed, outcome = run_direct([{"hostname": item["hostname"]} for item in wanted], "absent")
            report("delete", count, elapsed, outcome)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=10_000)
    parser.add_argument("--direct", action="store_true", help="also time the module_utils without Ansible")
    args = parser.parse_args()
    if os.environ.get("ILLUMIO_PCE_HOST"):
        benchmark(args.workloads, args.direct)
        return 0
    from with_lab import running_lab

    with running_lab() as lab:
        print(f"lab PCE at https://{lab.host}:{lab.port}", flush=True)
        saved = dict(os.environ)
        os.environ.update(lab.environment())
        try:
            benchmark(args.workloads, args.direct)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
