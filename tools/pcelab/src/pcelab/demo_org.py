"""The demo org: `pcelab demo-org` seeds a lab PCE with it, for quick starts, `make demo` and the inventory
plugin's integration tests.

It creates the labels it needs, a handful of unmanaged workloads through `workloads/bulk_create` (IPv4 and
IPv6 interfaces, link-local and loopback addresses, an ignored interface, a custom label key, a workload
without a host name) and one managed workload by activating a VEN stand-in through the lab's agent API
(`/lab/agent/v1/activate`, which a real PCE does not have). Running it again creates nothing new.

The connection comes from the collection's ILLUMIO_* environment variables; TLS is verified, against
ILLUMIO_PCE_CA_PATH when set. Standard library only: it runs wherever pcelab is installed.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping

REQUIRED_VARIABLES = ("ILLUMIO_PCE_HOST", "ILLUMIO_API_KEY_USERNAME", "ILLUMIO_API_KEY_SECRET")
TIMEOUT_SECONDS = 60

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
# Keys beyond the built-in role/app/env/loc are label dimensions the org must have first (key, display name).
DEMO_DIMENSIONS = [("bu", "Business unit")]

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


class DemoOrgError(Exception):
    """A refused or failed call, or a missing setting; the message never holds the secret."""


class Client:
    """Calls to the PCE named by the ILLUMIO_* environment variables, TLS verified."""

    def __init__(self, environ: Mapping[str, str] = os.environ):
        missing = [name for name in REQUIRED_VARIABLES if not environ.get(name)]
        if missing:
            raise DemoOrgError(
                f'set {", ".join(missing)} first, e.g. eval "$(pcelab api-key create --data-dir DIR --env)"'
            )
        host, port = environ["ILLUMIO_PCE_HOST"], environ.get("ILLUMIO_PCE_PORT") or "443"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"  # an IPv6 address
        self.base = f"https://{host}:{port}"
        self.org = f"{self.base}/api/v2/orgs/{environ.get('ILLUMIO_PCE_ORG_ID') or '1'}"
        credentials = f"{environ['ILLUMIO_API_KEY_USERNAME']}:{environ['ILLUMIO_API_KEY_SECRET']}"
        self._authorization = "Basic " + base64.b64encode(credentials.encode()).decode()
        self._tls = ssl.create_default_context(cafile=environ.get("ILLUMIO_PCE_CA_PATH") or None)

    def call(self, method: str, url: str, body: object = None, params: Mapping[str, object] | None = None):
        """The decoded JSON answer (None when empty); a 4xx/5xx answer or no connection raises DemoOrgError."""
        shown = url.replace(self.base, "")
        if params:
            url += "?" + urllib.parse.urlencode(params)
        request = urllib.request.Request(url, method=method)  # noqa: S310 - self.base is https://
        request.add_header("Authorization", self._authorization)
        request.add_header("Accept", "application/json")
        if body is not None:
            request.data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, context=self._tls, timeout=TIMEOUT_SECONDS) as answer:  # noqa: S310
                payload = answer.read()
        except urllib.error.HTTPError as error:
            detail = error.read().decode(errors="replace")[:300]
            raise DemoOrgError(f"{method} {shown}: {error.code} {detail}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise DemoOrgError(f"{method} {shown}: cannot reach {self.base}: {reason}") from None
        return json.loads(payload) if payload else None

    def labels(self) -> dict[tuple[str, str], str]:
        return {(item["key"], item["value"]): item["href"] for item in self.call("GET", f"{self.org}/labels")}

    def ensure_dimensions(self, wanted) -> None:
        existing = {item["key"] for item in self.call("GET", f"{self.org}/label_dimensions")}
        for key, display_name in wanted:
            if key not in existing:
                self.call("POST", f"{self.org}/label_dimensions", {"key": key, "display_name": display_name})

    def ensure_labels(self, wanted) -> dict[tuple[str, str], str]:
        existing = self.labels()
        for key, value in wanted:
            if (key, value) not in existing:
                created = self.call("POST", f"{self.org}/labels", {"key": key, "value": value})
                existing[(key, value)] = created["href"]
        return existing

    def workload_names(self) -> set[str]:
        found = self.call("GET", f"{self.org}/workloads", params={"max_results": 100000})
        return {item.get("hostname") or item.get("name") for item in found}

    def bulk_create(self, items: list[dict]) -> list[str]:
        results = self.call("PUT", f"{self.org}/workloads/bulk_create", items)
        failed = [result for result in results if result.get("status") != "created"]
        if failed:
            raise DemoOrgError(f"bulk_create refused: {failed[:2]}")
        return [result["href"] for result in results]

    def activate(self, facts: dict, label_hrefs: list[str], profile_name: str) -> dict:
        """A managed workload: pairing profile (with the labels) -> pairing key -> the lab agent API's activate."""
        profiles = self.call("GET", f"{self.org}/pairing_profiles", params={"name": profile_name})
        profile = next((item for item in profiles if item["name"] == profile_name), None)
        if profile is None:
            wanted = {
                "name": profile_name,
                "enforcement_mode": "visibility_only",
                "labels": [{"href": href} for href in label_hrefs],
            }
            profile = self.call("POST", f"{self.org}/pairing_profiles", wanted)
        key = self.call("POST", f"{self.base}/api/v2{profile['href']}/pairing_key", {})
        return self.call("POST", f"{self.base}/lab/agent/v1/activate", {**facts, **key})


def workload_body(spec: dict, label_hrefs: dict[tuple[str, str], str]) -> dict:
    body = {name: value for name, value in spec.items() if name != "labels"}
    body["labels"] = [{"href": label_hrefs[(key, value)]} for key, value in spec["labels"].items()]
    return body


def seed(client: Client) -> int:
    """Create what is missing; returns how many workloads were created."""
    client.ensure_dimensions(DEMO_DIMENSIONS)
    hrefs = client.ensure_labels(DEMO_LABELS)
    present = client.workload_names()
    missing = [spec for spec in DEMO_WORKLOADS if (spec.get("hostname") or spec.get("name")) not in present]
    created = len(client.bulk_create([workload_body(spec, hrefs) for spec in missing])) if missing else 0
    if DEMO_MANAGED["hostname"] not in present:
        client.activate(DEMO_MANAGED, [hrefs[pair] for pair in DEMO_MANAGED_LABELS.items()], DEMO_PROFILE)
        created += 1
    return created


def command(args=None, environ: Mapping[str, str] = os.environ) -> int:
    """`pcelab demo-org`: 0 when the demo org is in place, 2 without settings, 1 when the PCE refused."""
    try:
        client = Client(environ)
    except DemoOrgError as error:
        print(f"pcelab demo-org: {error}", file=sys.stderr)
        return 2
    try:
        created = seed(client)
    except DemoOrgError as error:
        print(f"pcelab demo-org: {error}", file=sys.stderr)
        return 1
    print(f"demo org: {created} workload(s) created, {len(DEMO_WORKLOADS) + 1} in the demo set")
    return 0
