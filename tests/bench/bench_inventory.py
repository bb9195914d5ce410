"""Benchmark: the microseg.illumio.pce inventory plugin on 25,000 workloads with 4 labels each.

Seeds a throwaway lab PCE through workloads/bulk_create (1000 per call), then times:
  (a) plain: the same workloads read with the collection's client (client.get_collection: sync probe, async job,
      datafile download, JSON parse) - the least any inventory of these workloads has to do;
  (b) cold:  `ansible-inventory -i bench.pce.yml --list` with an empty cache (jsonfile cache plugin, temp dir);
  (c) cached: the same command again, served from that cache;
  and, to show what is ansible-core's own share, (d) `ansible-inventory --list` of the very same hosts, groups and
  variables added by a do-nothing plugin from a file (no PCE, no shaping), and (e) the same with one variable per
  host (ansible_host) - the least `--list` of that many hosts costs; also `--graph` and `--list --export` (what AWX
  runs), cold and cached.
Prints figures; it is not a timed test. Targets: cold <= 15 s, cached <= 3 s, cold / plain <= 2.

Run: .venv/bin/python tests/bench/bench_inventory.py [--workloads N] [--repeat N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / "tools"))

from with_lab import running_lab  # noqa: E402

BATCH = 1000
LABEL_VALUES = {"role": 4, "app": 5, "env": 3, "loc": 2}
PLUGIN_TIMING = re.compile(r"microseg\.illumio\.pce: (.*)")

# A plugin that adds given hosts, groups and variables the cheapest way: ansible-core's own cost of --list.
FLOOR_PLUGIN = '''
import json
from ansible.plugins.inventory import BaseInventoryPlugin

DOCUMENTATION = """
name: floor
short_description: hosts from a file
description: hosts from a file
options:
  plugin:
    required: true
  source:
    required: true
"""


class InventoryModule(BaseInventoryPlugin):
    NAME = "floor"

    def verify_file(self, path):
        return path.endswith(".floor.yml")

    def parse(self, inventory, loader, path, cache=True):
        super().parse(inventory, loader, path, cache)
        self._read_config_data(path)
        with open(self.get_option("source")) as handle:
            data = json.load(handle)
        for group in data["groups"]:
            inventory.add_group(group)
        for name, hostvars, groups in data["hosts"]:
            inventory.add_host(name)
            inventory.hosts[name].vars.update(hostvars)
            for group in groups:
                inventory.add_child(group, name)
'''


def expose_collection(root: Path) -> Path:
    namespace = root / "ansible_collections" / "microseg"
    namespace.mkdir(parents=True)
    (namespace / "illumio").symlink_to(REPO, target_is_directory=True)
    return root


def seed(client, total: int) -> float:
    started = time.perf_counter()
    label_sets = []
    for key, count in LABEL_VALUES.items():
        refs = []
        for index in range(count):
            label = client.post(client.org_path("labels"), {"key": key, "value": f"{key}-{index}"})
            refs.append({"href": label["href"]})
        label_sets.append(refs)
    for first in range(0, total, BATCH):
        items = []
        for index in range(first, min(first + BATCH, total)):
            items.append(
                {
                    "hostname": f"host-{index:05d}.bench.example",
                    "name": f"host-{index:05d}",
                    "interfaces": [
                        {
                            "name": "eth0",
                            "address": f"10.{index // 65536}.{index // 256 % 256}.{index % 256}",
                            "cidr_block": 16,
                            "default_gateway_address": "10.0.0.1",
                        }
                    ],
                    "labels": [choices[index % len(choices)] for choices in label_sets],
                    "enforcement_mode": "visibility_only",
                    "os_id": "ubuntu-x86_64-jammy",
                }
            )
        results = client.put(client.org_path("workloads/bulk_create"), items)
        failed = [result for result in results if result.get("status") != "created"]
        if failed:
            raise SystemExit(f"bulk_create refused items: {failed[:2]}")
    return time.perf_counter() - started


def plain_read(client) -> tuple[float, int]:
    started = time.perf_counter()
    workloads = client.get_collection("workloads")
    return time.perf_counter() - started, len(workloads)


def run_inventory(config: Path, env: dict, *args: str) -> tuple[float, str, str]:
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", str(config), *args, "-vv"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0 or "[WARNING]" in done.stderr:
        raise SystemExit(f"ansible-inventory failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed, done.stdout, done.stderr


def plugin_notes(stderr: str) -> str:
    return "; ".join(PLUGIN_TIMING.findall(stderr))


def plugin_seconds(notes: str) -> float:
    """Seconds the plugin itself reported: reading the PCE, shaping and building the hosts."""
    return sum(float(value) for value in re.findall(r"in ([0-9.]+) s", notes))


def floor_source(listing: dict, path: Path, only: tuple[str, ...] = ()) -> None:
    """The hosts, groups and variables of a --list output, as the floor plugin reads them."""

    def plain(value):
        if isinstance(value, dict):
            if set(value) == {"__ansible_unsafe"}:
                return value["__ansible_unsafe"]
            return {key: plain(item) for key, item in value.items()}
        if isinstance(value, list):
            return [plain(item) for item in value]
        return value

    memberships: dict[str, list[str]] = {}
    groups = [name for name in listing if name not in ("_meta", "all", "ungrouped")]
    for group in groups:
        for host in listing[group].get("hosts", []):
            memberships.setdefault(host, []).append(group)
    hosts = [
        [
            name,
            {key: value for key, value in plain(hostvars).items() if not only or key in only},
            memberships.get(name, []),
        ]
        for name, hostvars in listing["_meta"]["hostvars"].items()
    ]
    path.write_text(json.dumps({"groups": groups, "hosts": hosts}))


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> str:
    """Fastest and slowest run: other load on the machine only ever makes runs slower."""
    return f"[min {min(values):.2f}, max {max(values):.2f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", type=int, default=25_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians are printed")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-inventory-"))
    try:
        collections = expose_collection(work / "collections")
        sys.path.insert(0, str(collections))
        from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_params

        with running_lab(str(work / "lab")) as lab:
            connection = {
                "pce_host": lab.host,
                "pce_port": lab.port,
                "pce_org_id": lab.org_id,
                "api_key_username": lab.api_key_username,
                "api_key_secret": lab.api_key_secret,
                "ca_path": lab.ca_path,
                "request_timeout": 120,
            }
            client = client_from_params(connection)
            seeded = seed(client, args.workloads)
            print(f"seeded {args.workloads} workloads with 4 labels each in {seeded:.1f} s (bulk_create, {BATCH}/call)")

            config = work / "bench.pce.yml"
            cache_dir = work / "cache"
            config.write_text(
                "plugin: microseg.illumio.pce\n"
                "request_timeout: 120\n"
                "cache: true\n"
                "cache_plugin: ansible.builtin.jsonfile\n"
                f"cache_connection: {cache_dir}\n"
                "cache_timeout: 3600\n"
            )
            env = {
                **os.environ,
                **lab.environment(),
                "ANSIBLE_COLLECTIONS_PATH": str(collections),
                "ANSIBLE_VERBOSE_TO_STDERR": "1",
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_LOCAL_TEMP": str(work / "tmp"),
                "ANSIBLE_HOME": str(work / "home"),
            }
            output = work / "list.json"
            floor_dir = work / "floor"
            floor_config = floor_dir / "bench.floor.yml"
            floor_env = {
                **env,
                "ANSIBLE_INVENTORY_PLUGINS": str(floor_dir / "inventory_plugins"),
                "ANSIBLE_INVENTORY_ENABLED": "floor",
            }
            plain, cold, cached, floor, bare_floor = [], [], [], [], []
            cold_graph, cached_graph, cold_export, cached_export = [], [], [], []
            cold_notes = cached_notes = ""
            cold_plugin, cached_plugin = [], []
            hosts = 0
            # Rounds of every measurement, so that load from elsewhere on the machine hits them alike.
            for attempt in range(args.repeat):
                seconds, count = plain_read(client)
                if count != args.workloads:
                    raise SystemExit(f"read {count} workloads, expected {args.workloads}")
                plain.append(seconds)

                shutil.rmtree(cache_dir, ignore_errors=True)
                seconds, _output, stderr = run_inventory(config, env, "--list", "--output", str(output))
                cold.append(seconds)
                cold_notes = plugin_notes(stderr)
                cold_plugin.append(plugin_seconds(cold_notes))
                seconds, _output, stderr = run_inventory(config, env, "--list", "--output", str(output))
                cached.append(seconds)
                cached_notes = plugin_notes(stderr)
                cached_plugin.append(plugin_seconds(cached_notes))

                if attempt == 0:
                    listing = json.loads(output.read_text())
                    hosts = len(listing["_meta"]["hostvars"])
                    if hosts != args.workloads:
                        raise SystemExit(f"--list has {hosts} hosts, expected {args.workloads}")
                    (floor_dir / "inventory_plugins").mkdir(parents=True)
                    (floor_dir / "inventory_plugins" / "floor.py").write_text(FLOOR_PLUGIN)
                    floor_source(listing, floor_dir / "hosts.json")
                    floor_config.write_text(f"plugin: floor\nsource: {floor_dir / 'hosts.json'}\n")
                    floor_source(listing, floor_dir / "bare.json", only=("ansible_host",))
                    (floor_dir / "bare.floor.yml").write_text(f"plugin: floor\nsource: {floor_dir / 'bare.json'}\n")
                floor.append(run_inventory(floor_config, floor_env, "--list", "--output", str(work / "floor.json"))[0])
                bare_config = floor_dir / "bare.floor.yml"
                bare_floor.append(
                    run_inventory(bare_config, floor_env, "--list", "--output", str(work / "bare.json"))[0]
                )

                shutil.rmtree(cache_dir, ignore_errors=True)
                cold_graph.append(run_inventory(config, env, "--graph")[0])
                cached_graph.append(run_inventory(config, env, "--graph")[0])
                shutil.rmtree(cache_dir, ignore_errors=True)
                export = ("--list", "--export", "--output", str(work / "export.json"))
                cold_export.append(run_inventory(config, env, *export)[0])
                cached_export.append(run_inventory(config, env, *export)[0])

        a, b, c, d = median(plain), median(cold), median(cached), median(floor)
        print(f"(a) plain download + JSON parse (client.get_collection): {a:.2f} s {spread(plain)}")
        print(f"(b) cold   ansible-inventory --list: {b:.2f} s {spread(cold)}   target <= 15 s")
        print(f"    plugin: {cold_notes}")
        print(f"(c) cached ansible-inventory --list: {c:.2f} s {spread(cached)}   target <= 3 s")
        print(f"    plugin: {cached_notes}")
        print(f"    ratio cold / plain (b / a): {b / a:.2f}   target <= 2")
        print(f"(d) ansible-core alone: --list of the same {hosts} hosts, groups and variables, no PCE, no shaping:")
        print(f"    {d:.2f} s {spread(floor)}; so the plugin's share is cold {b - d:.2f} s, cached {c - d:.2f} s")
        print(f"    plugin share of cold / plain ((b - d) / a): {(b - d) / a:.2f}")
        print(
            f"(e) ansible-core alone, one variable per host (ansible_host): --list {median(bare_floor):.2f} s "
            f"{spread(bare_floor)} - the floor of any inventory of {hosts} hosts"
        )
        print(
            f"    the plugin's own timings: cold {median(cold_plugin):.2f} s (read + shape + build; / plain ="
            f" {median(cold_plugin) / a:.2f}), cached {median(cached_plugin):.2f} s (cache read + build)"
        )
        print(
            f"--graph (same hosts and groups, no variables printed): cold {median(cold_graph):.2f} s,"
            f" cached {median(cached_graph):.2f} s"
        )
        print(
            f"--list --export (what AWX runs for an inventory source): cold {median(cold_export):.2f} s,"
            f" cached {median(cached_export):.2f} s"
        )
        print(f"medians of {args.repeat} runs; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
