#!/usr/bin/env python3
"""Seed a lab PCE with the demo org's workloads, for `make demo` and the inventory plugin's integration tests.

    python tools/demo_workloads.py            # connection from the ILLUMIO_* environment variables

Creates the labels it needs, a handful of unmanaged workloads through `workloads/bulk_create` (IPv4 and IPv6
interfaces, link-local and loopback addresses, an ignored interface, a custom label key, a workload without a
host name) and one managed workload by activating a VEN stand-in through the lab's agent API. Running it
again creates nothing new. Meant for the lab PCE (`tools/pcelab`); the agent API does not exist on a real PCE.
"""

from __future__ import annotations

import os
import sys

import requests

DEMO_LABELS = [
    ("role", "web"),
    ("role", "db"),
    ("role", "app"),
    ("app", "shop"),
    ("app", "crm"),
    ("env", "prod"),
    ("env", "staging"),
    ("loc", "dc1"),
    ("loc", "dc-2 (Paris)"),
    ("bu", "retail"),
]

# hostname, name, labels, interfaces, extra fields
DEMO_WORKLOADS = [
    {
        "hostname": "web2.demo.example",
        "labels": {"role": "web", "app": "shop", "env": "staging", "loc": "dc1"},
        "interfaces": [
            {"name": "eth0", "address": "fd00::10:12", "cidr_block": 64},
            {"name": "eth0", "address": "fe80::250:56ff:fe00:12", "cidr_block": 64},
            {"name": "eth0", "address": "10.10.2.12", "cidr_block": 24, "default_gateway_address": "10.10.2.1"},
        ],
        "enforcement_mode": "visibility_only",
        "os_id": "ubuntu-x86_64-jammy",
        "os_detail": "5.15.0-91-generic (Ubuntu 22.04.3 LTS)",
        "data_center": "dc1",
    },
    {
        "hostname": "db1.demo.example",
        "labels": {"role": "db", "app": "shop", "env": "prod", "loc": "dc1"},
        "interfaces": [
            {"name": "lo", "address": "127.0.0.1", "cidr_block": 8},
            {"name": "docker0", "address": "172.17.0.1", "cidr_block": 16},
            {"name": "eth0", "address": "10.10.1.21", "cidr_block": 24, "default_gateway_address": "10.10.1.1"},
        ],
        "ignored_interface_names": ["docker0"],
        "enforcement_mode": "full",
        "online": True,
        "os_id": "rhel-x86_64-9",
        "os_detail": "5.14.0-362.el9.x86_64 (Red Hat Enterprise Linux 9.3)",
        "public_ip": "203.0.113.21",
    },
    {
        "hostname": "v6only.demo.example",
        "labels": {"role": "web", "app": "crm", "env": "prod", "loc": "dc-2 (Paris)"},
        "interfaces": [
            {"name": "ens3", "address": "fe80::5054:ff:fe12:3456", "cidr_block": 64},
            {"name": "ens3", "address": "2001:db8:20::31", "cidr_block": 64},
        ],
        "enforcement_mode": "selective",
        "online": True,
        "os_id": "debian-x86_64-bookworm",
    },
    {
        "hostname": "crm-app.demo.example",
        "labels": {"role": "app", "app": "crm", "env": "prod", "bu": "retail"},
        "interfaces": [{"name": "eth0", "address": "10.10.3.41", "cidr_block": 24}],
        "enforcement_mode": "idle",
        "os_id": "win-x86_64-server",
    },
    {
        "name": "printer-gateway",
        "labels": {"loc": "dc1"},
        "interfaces": [{"name": "eth0", "address": "10.10.9.50", "cidr_block": 24}],
        "enforcement_mode": "idle",
    },
]

# Activated through the lab's agent API, so it is a managed workload with a VEN (agent version, status).
DEMO_MANAGED = {
    "hostname": "web1.demo.example",
    "name": "Web 1",
    "agent_version": "21.5.20-8451",
    "os_id": "ubuntu-x86_64-jammy",
    "os_detail": "5.15.0-91-generic (Ubuntu 22.04.3 LTS)",
    "interfaces": [
        {"name": "eth0", "address": "10.10.1.11", "cidr_block": 24, "default_gateway_address": "10.10.1.1"},
        {"name": "eth0", "address": "fd00::10:11", "cidr_block": 64},
    ],
}
DEMO_MANAGED_LABELS = {"role": "web", "app": "shop", "env": "prod", "loc": "dc1"}
DEMO_PROFILE = "demo-web-servers"


class Lab:
    """Requests to the lab PCE named by the ILLUMIO_* environment variables, TLS verified."""

    def __init__(self, environ=os.environ):
        host, port = environ["ILLUMIO_PCE_HOST"], environ.get("ILLUMIO_PCE_PORT", "443")
        self.base = f"https://{host}:{port}"
        self.org = f"{self.base}/api/v2/orgs/{environ.get('ILLUMIO_PCE_ORG_ID', '1')}"
        self.session = requests.Session()
        self.session.auth = (environ["ILLUMIO_API_KEY_USERNAME"], environ["ILLUMIO_API_KEY_SECRET"])
        self.verify = environ.get("ILLUMIO_PCE_CA_PATH") or True

    def call(self, method: str, url: str, **kwargs):
        # verify on every request: REQUESTS_CA_BUNDLE would override a session's setting.
        answer = self.session.request(method, url, verify=self.verify, timeout=60, **kwargs)
        if answer.status_code >= 400:
            raise SystemExit(f"{method} {url.replace(self.base, '')}: {answer.status_code} {answer.text[:300]}")
        return answer.json() if answer.content else None

    def labels(self) -> dict[tuple[str, str], str]:
        return {(item["key"], item["value"]): item["href"] for item in self.call("GET", f"{self.org}/labels")}

    def ensure_labels(self, wanted) -> dict[tuple[str, str], str]:
        existing = self.labels()
        for key, value in wanted:
            if (key, value) not in existing:
                existing[(key, value)] = self.call("POST", f"{self.org}/labels", json={"key": key, "value": value})[
                    "href"
                ]
        return existing

    def workload_names(self) -> set[str]:
        found = self.call("GET", f"{self.org}/workloads", params={"max_results": 100000})
        return {item.get("hostname") or item.get("name") for item in found}

    def bulk_create(self, items: list[dict]) -> list[str]:
        results = self.call("PUT", f"{self.org}/workloads/bulk_create", json=items)
        failed = [result for result in results if result.get("status") != "created"]
        if failed:
            raise SystemExit(f"bulk_create refused: {failed[:2]}")
        return [result["href"] for result in results]

    def activate(self, facts: dict, label_hrefs: list[str], profile_name: str) -> dict:
        """A managed workload: pairing profile (with the labels) -> pairing key -> the lab agent API's activate."""
        profiles = self.call("GET", f"{self.org}/pairing_profiles", params={"name": profile_name})
        profile = next((item for item in profiles if item["name"] == profile_name), None)
        if profile is None:
            body = {
                "name": profile_name,
                "enforcement_mode": "visibility_only",
                "labels": [{"href": href} for href in label_hrefs],
            }
            profile = self.call("POST", f"{self.org}/pairing_profiles", json=body)
        key = self.call("POST", f"{self.base}/api/v2{profile['href']}/pairing_key", json={})
        return self.call("POST", f"{self.base}/lab/agent/v1/activate", json={**facts, **key})


def workload_body(spec: dict, label_hrefs: dict[tuple[str, str], str]) -> dict:
    body = {name: value for name, value in spec.items() if name != "labels"}
    body["labels"] = [{"href": label_hrefs[(key, value)]} for key, value in spec["labels"].items()]
    return body


def seed(lab: Lab) -> int:
    """Create what is missing; returns how many workloads were created."""
    hrefs = lab.ensure_labels(DEMO_LABELS)
    present = lab.workload_names()
    missing = [spec for spec in DEMO_WORKLOADS if (spec.get("hostname") or spec.get("name")) not in present]
    created = len(lab.bulk_create([workload_body(spec, hrefs) for spec in missing])) if missing else 0
    if DEMO_MANAGED["hostname"] not in present:
        lab.activate(DEMO_MANAGED, [hrefs[pair] for pair in DEMO_MANAGED_LABELS.items()], DEMO_PROFILE)
        created += 1
    return created


def main() -> int:
    created = seed(Lab())
    print(f"demo org: {created} workload(s) created, {len(DEMO_WORKLOADS) + 1} in the demo set")
    return 0


if __name__ == "__main__":
    sys.exit(main())
