"""A fake PCE with labels (pce_test_server.FakePce), pairing profiles and keys, workloads with bulk calls,
and VEN unpairing, answering in the shapes of tools/pcelab/tests/pce_samples and refusing what the PCE refuses."""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid as uuidlib

from pce_test_server import FakePce, Reply, Request

PROFILES = re.compile(r"^/api/v2/orgs/1/pairing_profiles(?:/(\d+))?(/pairing_key)?$")
WORKLOADS = re.compile(r"^/api/v2/orgs/1/workloads(?:/([\w-]+))?$")
UNPAIR = "/api/v2/orgs/1/vens/unpair"
LOCKS = (
    "env_label_lock",
    "loc_label_lock",
    "role_label_lock",
    "app_label_lock",
    "mode_lock",
    "enforcement_mode_lock",
    "log_traffic_lock",
    "visibility_level_lock",
)
PROFILE_WRITABLE = {
    "name",
    "description",
    "enabled",
    "enforcement_mode",
    "mode",
    "visibility_level",
    "log_traffic",
    "labels",
    "allowed_uses_per_key",
    "key_lifespan",
    "agent_software_release",
    *LOCKS,
}
MODE_OF = {"idle": "idle", "visibility_only": "illuminated", "selective": "illuminated", "full": "enforced"}
WORKLOAD_WRITABLE = {
    "name",
    "description",
    "hostname",
    "labels",
    "enforcement_mode",
    "visibility_level",
    "interfaces",
    "ignored_interface_names",
    "public_ip",
    "os_id",
    "os_detail",
    "data_center",
    "data_center_zone",
    "service_provider",
    "external_data_set",
    "external_data_reference",
}
MANAGED_WRITABLE = {"labels", "enforcement_mode", "visibility_level", "name", "description"}


def invalid(message, token="input_validation_error", status=406):  # noqa: S107 - an error token, not a secret
    return Reply(status, [{"token": token, "message": message}])


class FakeWorkloadPce(FakePce):
    def __init__(self):
        super().__init__()
        self.profiles: dict[int, dict] = {}
        self.keys: list[tuple[int, str]] = []
        self.workloads: dict[str, dict] = {}
        self._next_profile = 1
        self.bulk_refuse: set[str] = set()  # hostnames the bulk calls refuse, to test per-item failures
        self.jobs: dict[str, list] = {}
        self.async_reads = 0
        self._created = 0

    # --- test-side helpers -------------------------------------------------------------------------------
    def label_href(self, key, value):
        label = self.find(key, value) or self.add_label(key, value)
        return label["href"]

    def add_profile(self, name, **settings):
        profile_id, self._next_profile = self._next_profile, self._next_profile + 1
        labels = [{"href": self.label_href(k, v)} for k, v in (settings.pop("labels", None) or {}).items()]
        profile = {
            "href": f"/orgs/1/pairing_profiles/{profile_id}",
            "name": name,
            "description": "",
            "total_use_count": 0,
            "enabled": True,
            "is_default": False,
            "created_at": "2022-05-25T18:41:49.242Z",
            "updated_at": "2022-05-25T18:41:49.242Z",
            "created_by": {"href": "/users/1"},
            "updated_by": {"href": "/users/1"},
            "mode": "illuminated",
            "enforcement_mode": "visibility_only",
            "key_lifespan": "unlimited",
            "allowed_uses_per_key": "unlimited",
            "last_pairing_at": None,
            "labels": labels,
            **dict.fromkeys(LOCKS, True),
            "log_traffic": False,
            "visibility_level": "flow_summary",
            "agent_software_release": "Default (21.5.20-8451)",
            "caps": ["write", "generate_pairing_key"],
        }
        profile.update(settings)
        profile["mode"] = MODE_OF[profile["enforcement_mode"]]
        self.profiles[profile_id] = profile
        return profile

    def profile(self, name):
        return next((p for p in self.profiles.values() if p["name"] == name), None)

    def add_workload(self, hostname, managed=False, labels=None, **fields):
        uuid = str(uuidlib.uuid4())
        self._created += 1  # workloads made in turn get later created_at stamps, as on the PCE
        stamp = f"2026-01-01T{self._created // 3600000:02d}:{self._created // 60000 % 60:02d}:"
        stamp += f"{self._created // 1000 % 60:02d}.{self._created % 1000:03d}Z"
        doc = {
            "href": f"/orgs/1/workloads/{uuid}",
            "created_at": stamp,
            "deleted": False,
            "name": None,
            "description": None,
            "hostname": hostname,
            "public_ip": None,
            "enforcement_mode": "idle",
            "visibility_level": "flow_summary",
            "external_data_set": None,
            "external_data_reference": None,
            "interfaces": [],
            "ignored_interface_names": [],
            "service_provider": None,
            "data_center": None,
            "data_center_zone": None,
            "os_id": None,
            "os_detail": None,
            "online": False,
            "labels": [self.expanded(self.label_href(k, v)) for k, v in (labels or {}).items()],
            "agent": {"href": None, "status": None},
            "ven": None,
            "caps": ["write", "delete"],
        }
        if managed:
            doc["ven"] = {"href": f"/orgs/1/vens/{uuid}"}
            doc["agent"] = {"href": "/orgs/1/agents/7", "status": {"status": "active"}}
            doc["online"] = True
            doc["caps"] = ["write"]
        doc.update(fields)
        self.workloads[uuid] = doc
        return doc

    def workload(self, hostname):
        return next((w for w in self.workloads.values() if w["hostname"] == hostname and not w["deleted"]), None)

    def expanded(self, href):
        label = next(lbl for lbl in self.labels.values() if lbl["href"] == href)
        return {"href": href, "key": label["key"], "value": label["value"]}

    # --- the API -----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        if request.path.startswith(("/api/v2/orgs/1/jobs/", "/api/v2/orgs/1/datafiles/")):
            return self._async(request)
        if PROFILES.match(request.path) or WORKLOADS.match(request.path) or request.path == UNPAIR:
            denied = self._auth(request)
            if denied:
                return denied
            with self._lock:
                if request.path == UNPAIR:
                    return self._unpair(request.body)
                match = PROFILES.match(request.path)
                if match:
                    return self._profiles(request, match)
                return self._workloads(request, WORKLOADS.match(request.path))
        return super().handle(request)

    def _auth(self, request):
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Reply(401, {"error": "Authentication required"})
        return None

    # pairing profiles
    def _profiles(self, request, match):
        profile_id = int(match.group(1)) if match.group(1) else None
        if profile_id is None:
            if request.method == "GET":
                wanted = request.query.get("name", "").lower()
                found = [p for p in self.profiles.values() if wanted in p["name"].lower()]
                return Reply(200, found, {"X-Total-Count": str(len(found))})
            return self._create_profile(request.body or {})
        profile = self.profiles.get(profile_id)
        if profile is None:
            return invalid("Not Found", "not_found", 404)
        if match.group(2):
            if request.body not in (None, {}):
                return invalid("the pairing_key request takes {}")
            if not profile["enabled"]:
                return invalid("the pairing profile is disabled", "pairing_profile_disabled")
            code = secrets.token_hex(41)
            self.keys.append((profile_id, code))
            return Reply(201, {"activation_code": code})
        if request.method == "GET":
            return Reply(200, profile)
        if request.method == "PUT":
            problem = self._check_profile(request.body or {})
            if problem:
                return problem
            profile.update(self._stored_profile_fields(request.body))
            profile["mode"] = MODE_OF[profile["enforcement_mode"]]
            return Reply(204)
        if request.method == "DELETE":
            del self.profiles[profile_id]
            return Reply(204)
        return invalid("method not allowed", "method_not_allowed", 405)

    def _check_profile(self, body):
        unknown = set(body) - PROFILE_WRITABLE
        if unknown:
            return invalid(f"unknown pairing profile field: {sorted(unknown)[0]}")
        for field in ("allowed_uses_per_key", "key_lifespan"):
            if field in body and body[field] != "unlimited" and not isinstance(body[field], int):
                return invalid(f"{field} must be 'unlimited' or an integer")
        for label in body.get("labels", []):
            if not any(lbl["href"] == label.get("href") for lbl in self.labels.values()):
                return invalid(f"label {label.get('href')} does not exist")
        return None

    def _stored_profile_fields(self, body):
        stored = dict(body)
        for field in ("allowed_uses_per_key", "key_lifespan"):
            if field in stored:
                stored[field] = str(stored[field])
        if stored.get("agent_software_release") == "Default":
            stored["agent_software_release"] = "Default (21.5.20-8451)"
        return stored

    def _create_profile(self, body):
        problem = self._check_profile(body)
        if problem:
            return problem
        if self.profile(body.get("name")):
            return invalid("name must be unique", "name_must_be_unique")
        stored = self._stored_profile_fields(body)
        labels = stored.pop("labels", [])
        profile = self.add_profile(stored.pop("name"), **stored)
        profile["labels"] = labels
        return Reply(201, profile)

    # workloads
    def _workloads(self, request, match):
        what = match.group(1)
        if what is None and request.method == "GET":
            return self._list_workloads(request.query, request.headers.get("prefer", ""))
        if what is None and request.method == "POST":
            doc, problem = self._new_workload(request.body or {})
            return problem or Reply(201, doc)
        if what in ("bulk_create", "bulk_update", "bulk_delete") and request.method == "PUT":
            return self._bulk(what, request.body)
        doc = self.workloads.get(what)
        if doc is None:
            return invalid("Not Found", "not_found", 404)
        if request.method == "GET":
            return Reply(200, doc)
        if request.method == "PUT":
            return self._update_workload(doc, request.body or {}) or Reply(204)
        if request.method == "DELETE":
            return self._delete_workload(doc) or Reply(204)
        return invalid("method not allowed", "method_not_allowed", 405)

    def _async(self, request):
        denied = self._auth(request)
        if denied:
            return denied
        job_id = request.path.rsplit("/", 1)[-1]
        if "/jobs/" in request.path:
            return Reply(
                200,
                {"href": f"/orgs/1/jobs/{job_id}", "status": "done", "result": {"href": f"/orgs/1/datafiles/{job_id}"}},
            )
        return Reply(200, self.jobs[job_id])

    def _list_workloads(self, query, prefer=""):
        # The PCE lists deleted workloads only when asked to (a boolean query parameter).
        include_deleted = query.get("include_deleted") == "true"
        found = [w for w in self.workloads.values() if include_deleted or not w["deleted"]]
        for field in ("hostname", "name"):
            if field in query:
                found = [w for w in found if query[field].lower() in (w.get(field) or "").lower()]
        if "enforcement_mode" in query:
            found = [w for w in found if w["enforcement_mode"] == query["enforcement_mode"]]
        if "managed" in query:
            found = [w for w in found if bool(w["ven"]) == (query["managed"] == "true")]
        if "online" in query:
            found = [w for w in found if w["online"] == (query["online"] == "true")]
        if "labels" in query:
            groups = json.loads(query["labels"])
            found = [w for w in found if any(set(g) <= {lbl["href"] for lbl in w["labels"]} for g in groups)]
        if "respond-async" in prefer:
            job_id = str(uuidlib.uuid4())
            self.jobs[job_id] = found
            self.async_reads += 1
            return Reply(202, None, {"Location": f"/orgs/1/jobs/{job_id}", "Retry-After": "0"})
        limit = int(query.get("max_results", 500))
        return Reply(200, found[:limit], {"X-Total-Count": str(len(found))})

    def _check_workload(self, body, managed):
        if not isinstance(body, dict):
            return invalid("workload must be an object")
        unknown = set(body) - WORKLOAD_WRITABLE
        if unknown:
            return invalid(f"workload: property {sorted(unknown)[0]!r} is not allowed")
        if managed and set(body) - MANAGED_WRITABLE:
            return invalid("reported by its VEN", "managed_workload_property_read_only")
        for label in body.get("labels", []):
            if not any(lbl["href"] == label.get("href") for lbl in self.labels.values()):
                return invalid(f"label {label.get('href')} does not exist", "invalid_uri")
        return None

    def _stored_workload_fields(self, body):
        stored = dict(body)
        if "labels" in stored:
            stored["labels"] = [self.expanded(label["href"]) for label in stored["labels"]]
        if "interfaces" in stored:
            stored["interfaces"] = [
                {
                    "name": i["name"],
                    "address": i["address"],
                    "cidr_block": i.get("cidr_block"),
                    "default_gateway_address": i.get("default_gateway_address"),
                    "link_state": None,
                    "network": {"href": "/orgs/1/networks/x"},
                    "loopback": False,
                }
                for i in stored["interfaces"]
            ]
        return stored

    def _new_workload(self, body):
        problem = self._check_workload(body, managed=False)
        if problem:
            return None, problem
        if body.get("hostname") in self.bulk_refuse:
            return None, invalid(f"refused {body['hostname']}", "refused_for_test")
        fields = self._stored_workload_fields(body)
        hostname = fields.pop("hostname", None)
        labels = fields.pop("labels", [])
        doc = self.add_workload(hostname, **fields)
        doc["labels"] = labels
        return doc, None

    def _update_workload(self, doc, body):
        if doc["deleted"]:
            return invalid("already deleted", "already_deleted")
        problem = self._check_workload(body, managed=bool(doc["ven"]))
        if problem:
            return problem
        if doc.get("hostname") in self.bulk_refuse:
            return invalid(f"refused {doc['hostname']}", "refused_for_test")
        doc.update(self._stored_workload_fields(body))
        return None

    def _delete_workload(self, doc):
        if doc["ven"]:
            return invalid("unpair the VEN instead", "managed_workload_unpair_required")
        if doc["deleted"]:
            return invalid("already deleted", "already_deleted")
        doc["deleted"] = True
        return None

    def _bulk(self, what, items):
        if not isinstance(items, list) or not 1 <= len(items) <= 1000:
            return invalid("a bulk request takes 1 to 1000 workloads")
        results = []
        for item in items:
            if what == "bulk_create":
                doc, problem = self._new_workload(item)
                status = "created"
            else:
                body = {k: v for k, v in item.items() if k != "href"}
                doc = self.workloads.get(item.get("href", "").rsplit("/", 1)[-1])
                if doc is None:
                    problem = invalid("not found", "not_found")
                elif what == "bulk_update":
                    problem = self._update_workload(doc, body)
                else:
                    problem = self._delete_workload(doc)
                status = "updated" if what == "bulk_update" else "deleted"
            if problem:
                error = problem.body[0]
                results.append({"href": item.get("href"), "status": "error", **error, "errors": [error]})
            else:
                results.append({"href": doc["href"], "status": status})
        return Reply(200, results)

    def _unpair(self, body):
        errors = []
        for ref in body.get("vens", []):
            doc = next((w for w in self.workloads.values() if (w["ven"] or {}).get("href") == ref["href"]), None)
            if doc is None:
                errors.append({"token": "ven_not_found", "message": "VEN not found", "hrefs": [ref["href"]]})
            else:
                del self.workloads[doc["href"].rsplit("/", 1)[-1]]
        self.last_firewall_restore = body.get("firewall_restore")
        return Reply(200, {"errors": errors})


def start_workload_pce(serve, tls_files) -> FakeWorkloadPce:
    """A running FakeWorkloadPce; call it from a test module's fixture (serve and tls_files are conftest's)."""
    pce = FakeWorkloadPce()
    pce.server = serve(pce.handle)
    pce.server_ca = tls_files.ca_cert
    return pce
