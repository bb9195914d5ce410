"""A fake PCE with VENs: the workload fake (labels, workloads) plus GET vens, GET vens/{uuid}, PUT vens/upgrade
and GET events, answering in the shapes of tools/pcelab/tests/pce_samples/vens.json and events.json and refusing what
the lab PCE refuses (unknown VENs, releases not in the library, downgrades)."""

from __future__ import annotations

import json
import re
import uuid as uuidlib

from fake_pce_workloads import FakeWorkloadPce, invalid
from pce_test_server import Reply, Request

VENS = re.compile(r"^/api/v2/orgs/1/vens(?:/([\w-]+))?$")
EVENTS = "/api/v2/orgs/1/events"


def _key(version):
    return tuple(int(part) for part in re.split(r"[.-]", version) if part.isdigit())


class FakeVenPce(FakeWorkloadPce):
    def __init__(self):
        super().__init__()
        self.vens: dict[str, dict] = {}
        self.releases = {"23.2.10-100", "23.2.20-200", "23.2.30-300"}
        self.pending: dict[str, str] = {}  # VEN href -> release
        self.events: list[dict] = []
        self.upgrade_after_reads: int | None = None  # a VEN takes its pending release after this many reads
        self._reads: dict[str, int] = {}
        self.events_status = 200  # answer GET events with this status (403: the key may not read events)

    # --- test-side helpers -------------------------------------------------------------------------------
    def add_ven(self, hostname, version="23.2.10-100", labels=None, status="active", conditions=None, caps=None):
        workload = self.add_workload(hostname, managed=True, labels=labels)
        uuid = workload["href"].rsplit("/", 1)[1]
        href = f"/orgs/1/vens/{uuid}"
        ven = {
            "href": href,
            "name": None,
            "description": None,
            "hostname": hostname,
            "uid": None,
            "os_id": "ubuntu-x86_64-jammy",
            "os_detail": "5.15.0-91-generic (Ubuntu 22.04.3 LTS)",
            "os_platform": "linux",
            "version": version,
            "status": status,
            "activation_type": "pairing_key",
            "active_pce_fqdn": None,
            "target_pce_fqdn": None,
            "labels": [{"href": label["href"]} for label in workload["labels"]],
            "interfaces": [],
            "workloads": [{"href": workload["href"]}],
            "container_cluster": None,
            "secure_connect": None,
            "unpair_allowed": True,
            "last_heartbeat_at": "2026-01-01T00:00:00.000Z",
            "last_goodbye_at": None,
            "created_at": "2026-01-01T00:00:00.000Z",
            "created_by": {"href": href},
            "updated_at": "2026-01-01T00:00:00.000Z",
            "updated_by": {"href": href},
            "conditions": conditions or [],
            "caps": caps if caps is not None else ["write", "generate_support_report", "upgrade", "unpair"],
        }
        self.vens[uuid] = ven
        return ven

    def ven(self, hostname):
        return next(v for v in self.vens.values() if v["hostname"] == hostname)

    def heartbeat(self, hostname, version):
        """What the agent does after installing a release: report it; a pending upgrade to it is done."""
        ven = self.ven(hostname)
        ven["version"] = version
        ven["last_heartbeat_at"] = "2026-01-01T01:00:00.000Z"
        if self.pending.get(ven["href"]) == version:
            del self.pending[ven["href"]]

    def upgrade_requests(self, dry_run=None):
        found = [r for r in self.requests if r.method == "PUT" and r.path.endswith("/vens/upgrade")]
        if dry_run is not None:
            found = [r for r in found if bool((r.body or {}).get("dry_run")) == dry_run]
        return found

    # --- the API -----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        match = VENS.match(request.path)
        if match or request.path == EVENTS:
            denied = self._auth(request)
            if denied:
                return denied
            with self._lock:
                if request.path == EVENTS:
                    return self._events(request)
                what = match.group(1)
                if what is None and request.method == "GET":
                    return self._list_vens(request.query)
                if what == "upgrade" and request.method == "PUT":
                    return self._upgrade_vens(request.body)
                if what == "unpair":
                    return super().handle(request)
                ven = self.vens.get(what)
                if ven is None:
                    return invalid("VEN not found", "not_found", 404)
                if request.method == "GET":
                    self._read(ven)
                    return Reply(200, ven)
                return invalid("method not allowed", "method_not_allowed", 405)
        return super().handle(request)

    def _read(self, ven):
        count = self._reads[ven["href"]] = self._reads.get(ven["href"], 0) + 1
        release = self.pending.get(ven["href"])
        if release and self.upgrade_after_reads is not None and count > self.upgrade_after_reads:
            self.heartbeat(ven["hostname"], release)

    def _list_vens(self, query):
        found = list(self.vens.values())
        if "hostname" in query:  # partial, like the PCE
            found = [v for v in found if query["hostname"].lower() in (v["hostname"] or "").lower()]
        for exact in ("status", "version"):
            if exact in query:
                found = [v for v in found if v[exact] == query[exact]]
        if "labels" in query:
            groups = json.loads(query["labels"])
            found = [v for v in found if any(set(g) <= {lbl["href"] for lbl in v["labels"]} for g in groups)]
        limit = int(query.get("max_results", 500))
        return Reply(200, found[:limit], {"X-Total-Count": str(len(found))})

    def _upgrade_vens(self, body):
        if not isinstance(body, dict) or not isinstance(body.get("vens"), list) or not body["vens"]:
            return invalid('vens must be a non-empty list of {"href": ...}')
        release = body.get("release")
        if not isinstance(release, str) or not release:
            return invalid("release is required, e.g. 21.5.20-8451")
        if set(body) - {"vens", "release", "dry_run"}:
            return invalid(f"unknown field {sorted(set(body) - {'vens', 'release', 'dry_run'})[0]}")
        hrefs = [ref.get("href") for ref in body["vens"]]
        found = {href: next((v for v in self.vens.values() if v["href"] == href), None) for href in hrefs}
        errors = []
        missing = [href for href, ven in found.items() if ven is None]
        if missing:
            errors.append({"token": "ven_not_found", "message": "no such VEN", "hrefs": missing})
        present = [ven for ven in found.values() if ven is not None]
        if release not in self.releases:
            if present:
                message = f"release {release} is not in the VEN library"
                errors.append({"token": "invalid_release", "message": message, "hrefs": [v["href"] for v in present]})
            return Reply(200, {"errors": errors})
        newer = [v for v in present if _key(v["version"]) > _key(release)]
        if newer:
            message = f"the VEN runs a release newer than {release}"
            errors.append({"token": "downgrade_not_supported", "message": message, "hrefs": [v["href"] for v in newer]})
        if not body.get("dry_run"):
            for ven in present:
                if ven not in newer and ven["version"] != release:
                    self.pending[ven["href"]] = release
                    self.events.insert(0, self._event(ven["href"], release))
        return Reply(200, {"errors": errors})

    def _event(self, href, release):
        return {
            "href": f"/orgs/1/events/{uuidlib.uuid4()}",
            "timestamp": f"2026-01-01T00:00:{len(self.events):02d}.000Z",
            "pce_fqdn": "pce.example.com",
            "created_by": {"user": {"href": "/users/1", "username": "api"}},
            "event_type": "agent.upgrade_requested",
            "status": "success",
            "severity": "info",
            "action": {"uuid": str(uuidlib.uuid4()), "api_endpoint": None, "api_method": None},
            "resource_changes": [
                {
                    "uuid": str(uuidlib.uuid4()),
                    "resource": {"ven": {"href": href}},
                    "changes": {"release": release},
                    "change_type": "upgrade_requested",
                }
            ],
            "notifications": [],
        }

    def _events(self, request):
        if self.events_status != 200:
            return invalid("not allowed", "forbidden", self.events_status)
        found = [e for e in self.events if e["event_type"] == request.query.get("event_type", e["event_type"])]
        limit = int(request.query.get("max_results", 500))
        return Reply(200, found[:limit], {"X-Total-Count": str(len(found))})


def start_ven_pce(serve, tls_files) -> FakeVenPce:
    """A running FakeVenPce; call it from a test module's fixture (serve and tls_files are conftest's)."""
    pce = FakeVenPce()
    pce.server = serve(pce.handle)
    pce.server_ca = tls_files.ca_cert
    return pce
