"""A fake PCE with labels, workloads and draft policy (rule sets with rules and deny rules, enforcement
boundaries, IP lists, services, label groups), in the PCE's shapes, for rule-set and rule tests.

Strict like the PCE: unknown fields, wrong actor kinds and dangling hrefs are refused with 406.
"""

from __future__ import annotations

import base64
import copy
import re
import threading

from pce_test_server import Reply, Request

ORG = "/api/v2/orgs/1"
POLICY_KINDS = ("ip_lists", "services", "label_groups", "rule_sets", "enforcement_boundaries")
RULE_KINDS = {"sec_rules": "rules", "deny_rules": "deny_rules"}
RULE_FIELDS = {
    "sec_rules": {
        "providers",
        "consumers",
        "ingress_services",
        "resolve_labels_as",
        "unscoped_consumers",
        "enabled",
        "description",
        "network_type",
    },
    "deny_rules": {
        "providers",
        "consumers",
        "ingress_services",
        "unscoped_consumers",
        "override",
        "enabled",
        "description",
        "network_type",
    },
}
RULE_DEFAULTS = {
    "sec_rules": {
        "enabled": True,
        "description": "",
        "unscoped_consumers": False,
        "network_type": "brn",
        "sec_connect": False,
        "stateless": False,
        "machine_auth": False,
        "consuming_security_principals": [],
        "resolve_labels_as": {"providers": ["workloads"], "consumers": ["workloads"]},
    },
    "deny_rules": {
        "enabled": True,
        "description": "",
        "unscoped_consumers": False,
        "override": False,
        "network_type": "brn",
    },
}
OBJECT_FIELDS = {
    "rule_sets": {"name", "description", "enabled", "scopes", "external_data_set", "external_data_reference"},
    "enforcement_boundaries": {"name", "description", "providers", "consumers", "ingress_services", "network_type"},
    "ip_lists": {"name", "description", "ip_ranges"},
    "services": {"name", "description", "service_ports"},
    "label_groups": {"name", "description", "key", "labels"},
}
RULE_ACTOR_KINDS = ("actors", "label", "label_group", "ip_list", "workload")
BOUNDARY_ACTOR_KINDS = ("actors", "label", "label_group", "ip_list")

POLICY = re.compile(
    r"^/api/v2/orgs/1/sec_policy/(draft|active)/(\w+)(?:/([\w-]+))?(?:/(sec_rules|deny_rules)(?:/(\d+))?)?$"
)


def refused(message: str) -> Reply:
    return Reply(406, [{"token": "input_validation_error", "message": message}])


class Refused(Exception):
    pass


class FakePolicyPce:
    username = "api_1f00dcafe5678"
    secret = "4b1d6e0f9a2c7e5d3b8a1f6c0e9d2b7a-policy-test-secret"

    def __init__(self):
        self.labels: dict[str, dict] = {}
        self.workloads: dict[str, dict] = {}
        self.draft: dict[str, dict[str, dict]] = {kind: {} for kind in POLICY_KINDS}
        self.active: dict[str, dict[str, dict]] = {kind: {} for kind in POLICY_KINDS}
        self._ids: dict[str, int] = {}
        self._lock = threading.Lock()
        self.server = None
        self.server_ca = None
        self.add("ip_lists", name="Any (0.0.0.0/0 and ::/0)", ip_ranges=[{"from_ip": "0.0.0.0/0"}])
        self.add("services", name="All Services", service_ports=[{"proto": -1}])
        self.provision()

    # --- test-side helpers ------------------------------------------------------------------------------
    def _next(self, kind: str) -> int:
        self._ids[kind] = self._ids.get(kind, 0) + 1
        return self._ids[kind]

    def add_label(self, key: str, value: str) -> dict:
        href = f"/orgs/1/labels/{self._next('labels')}"
        self.labels[href] = {"href": href, "key": key, "value": value}
        return self.labels[href]

    def add_workload(self, hostname: str) -> dict:
        href = f"/orgs/1/workloads/{self._next('workloads'):08d}-0000-0000-0000-000000000000"
        self.workloads[href] = {"href": href, "hostname": hostname, "name": None}
        return self.workloads[href]

    def add(self, kind: str, **fields) -> dict:
        href = f"/orgs/1/sec_policy/draft/{kind}/{self._next(kind)}"
        doc = {"href": href, "update_type": "create", "deleted_at": None, "description": "", **fields}
        if kind == "rule_sets":
            doc.setdefault("enabled", True)
            doc.setdefault("scopes", [[]])
            doc.setdefault("rules", [])
            doc.setdefault("deny_rules", [])
            doc.setdefault("ip_tables_rules", [])
        self.draft[kind][href] = doc
        return doc

    def add_rule(self, rule_set: dict, rule_kind: str = "sec_rules", **fields) -> dict:
        rule = {
            "href": f"{rule_set['href']}/{rule_kind}/{self._next(rule_kind)}",
            "update_type": "create",
            **copy.deepcopy(RULE_DEFAULTS[rule_kind]),
            **fields,
        }
        rule_set[RULE_KINDS[rule_kind]].append(rule)
        return rule

    def provision(self) -> None:
        """Everything in the draft becomes active; pending deletions go away."""
        for kind in POLICY_KINDS:
            for href, doc in list(self.draft[kind].items()):
                if doc["update_type"] == "delete":
                    del self.draft[kind][href]
                    continue
                doc["update_type"] = None
                for field in RULE_KINDS.values():
                    for rule in doc.get(field, []):
                        rule["update_type"] = None
            self.active[kind] = {
                href.replace("/draft/", "/active/"): _to_active(doc) for href, doc in self.draft[kind].items()
            }

    def find(self, kind: str, name: str) -> dict | None:
        return next(
            (doc for doc in self.draft[kind].values() if doc.get("name") == name and not doc["deleted_at"]), None
        )

    def label(self, key: str, value: str) -> dict:
        return next(label for label in self.labels.values() if label["key"] == key and label["value"] == value)

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def changes(self) -> list[Request]:
        return [request for request in self.requests if request.method != "GET"]

    def connection(self, **overrides) -> dict:
        return {
            "pce_host": "127.0.0.1",
            "pce_port": self.server.port,
            "api_key_username": self.username,
            "api_key_secret": self.secret,
            "ca_path": str(self.server_ca),
            **overrides,
        }

    # --- the API ----------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Reply(401, {"error": "Authentication required"})
        with self._lock:
            try:
                return self._route(request)
            except Refused as error:
                return refused(str(error))

    def _route(self, request: Request) -> Reply:
        if request.path == f"{ORG}/labels" and request.method == "GET":
            return _listing(list(self.labels.values()))
        if request.path == f"{ORG}/workloads" and request.method == "GET":
            return _listing(list(self.workloads.values()))
        match = POLICY.match(request.path)
        if not match or match.group(2) not in POLICY_KINDS:
            return Reply(404, [{"token": "not_found", "message": "Not Found"}])
        state, kind, obj_id, rule_kind, rule_id = match.groups()
        store = self.draft if state == "draft" else self.active
        if state == "active" and request.method != "GET":
            return Reply(405, [{"token": "method_not_allowed", "message": "active policy is read-only"}])
        if obj_id is None:
            if request.method == "GET":
                wanted = request.query.get("name", "").lower()
                return _listing([doc for doc in store[kind].values() if wanted in (doc.get("name") or "").lower()])
            if request.method == "POST":
                return self._create(kind, request.body)
        href = f"/orgs/1/sec_policy/{state}/{kind}/{obj_id}"
        doc = store[kind].get(href)
        if doc is None:
            return Reply(404, [{"token": "not_found", "message": f"{href} not found"}])
        if rule_kind is not None:
            return self._rules(doc, rule_kind, rule_id, request)
        if request.method == "GET":
            return Reply(200, doc)
        if doc["update_type"] == "delete":
            raise Refused(f"{href} is already deleted")
        if request.method == "PUT":
            self._check_object(kind, request.body, creating=False)
            doc.update(request.body)
            self._touch(kind, doc)
            return Reply(204)
        if request.method == "DELETE":
            if href.replace("/draft/", "/active/") in self.active[kind]:
                doc.update(update_type="delete", deleted_at="2026-01-01T00:00:00Z")
            else:
                del self.draft[kind][href]
            return Reply(204)
        return Reply(405, [{"token": "method_not_allowed", "message": "Method not allowed"}])

    def _touch(self, kind: str, doc: dict) -> None:
        doc["update_type"] = "update" if doc["href"].replace("/draft/", "/active/") in self.active[kind] else "create"

    def _create(self, kind: str, body) -> Reply:
        self._check_object(kind, body, creating=True)
        if self.find(kind, body["name"]):
            return Reply(406, [{"token": "name_must_be_unique", "message": f"name {body['name']!r} is already in use"}])
        doc = self.add(kind, **body)
        return Reply(201, doc)

    def _check_object(self, kind: str, body, creating: bool) -> None:
        if not isinstance(body, dict):
            raise Refused("body must be an object")
        unknown = set(body) - OBJECT_FIELDS[kind]
        if unknown:
            raise Refused(f"{kind}: property {sorted(unknown)[0]!r} is not allowed")
        if creating and not body.get("name"):
            raise Refused("name is required")
        if kind == "rule_sets" and "scopes" in body:
            for scope in body["scopes"]:
                keys = []
                for entry in scope:
                    keys.append(self._check_actor(entry, ("label", "label_group"), "scopes"))
                if len(keys) != len(set(keys)):
                    raise Refused("a scope names more than one label or label group of a key")
        if kind == "enforcement_boundaries":
            if creating:
                for field in ("providers", "consumers", "ingress_services"):
                    if field not in body:
                        raise Refused(f"{field} is required")
            for side in ("providers", "consumers"):
                for actor in body.get(side, []):
                    self._check_actor(actor, BOUNDARY_ACTOR_KINDS, side)
            self._check_services(body.get("ingress_services", []))

    def _check_actor(self, actor, allowed, what) -> str:
        if not isinstance(actor, dict) or len(actor) != 1 or next(iter(actor)) not in allowed:
            raise Refused(f"{what}: {actor!r} must be one of: {', '.join(allowed)}")
        kind, ref = next(iter(actor.items()))
        if kind == "actors":
            if ref != "ams":
                raise Refused(f"{what}: actors must be ams")
            return "ams"
        if set(ref) != {"href"}:
            raise Refused(f"{what}: a reference is {{href}} only, got {ref!r}")
        if kind == "label":
            if ref["href"] not in self.labels:
                raise Refused(f"{what}: {ref['href']} is not an existing label")
            return self.labels[ref["href"]]["key"]
        if kind == "workload":
            if ref["href"] not in self.workloads:
                raise Refused(f"{what}: {ref['href']} is not an existing workload")
            return "workload"
        found = self.draft[f"{kind}s"].get(ref["href"])
        if found is None or found["deleted_at"]:
            raise Refused(f"{what}: {ref['href']} is not an existing draft {kind}")
        return found.get("key", kind)

    def _check_services(self, services) -> None:
        for service in services:
            if "href" in service:
                if set(service) != {"href"} or service["href"] not in self.draft["services"]:
                    raise Refused(f"ingress_services: {service!r} is not an existing draft service")
            elif set(service) - {"port", "to_port", "proto", "icmp_type", "icmp_code"} or not isinstance(
                service.get("proto"), int
            ):
                raise Refused(f"ingress_services: {service!r} is not a valid service port")

    def _check_rule(self, rule_kind: str, body, creating: bool) -> None:
        if not isinstance(body, dict):
            raise Refused("rule must be an object")
        unknown = set(body) - RULE_FIELDS[rule_kind]
        if unknown:
            raise Refused(f"rule: property {sorted(unknown)[0]!r} is not allowed")
        if creating:
            for field in ("providers", "consumers", "ingress_services"):
                if field not in body:
                    raise Refused(f"rule: {field} is required")
        for side in ("providers", "consumers"):
            for actor in body.get(side, []):
                self._check_actor(actor, RULE_ACTOR_KINDS, side)
        self._check_services(body.get("ingress_services", []))

    def _rules(self, rule_set: dict, rule_kind: str, rule_id, request: Request) -> Reply:
        rules = rule_set[RULE_KINDS[rule_kind]]
        if rule_id is None:
            if request.method == "GET":
                return _listing(rules)
            if request.method == "POST":
                self._check_rule(rule_kind, request.body, creating=True)
                rule = self.add_rule(rule_set, rule_kind, **request.body)
                self._touch("rule_sets", rule_set)
                return Reply(201, rule)
            return Reply(405, [{"token": "method_not_allowed", "message": "Method not allowed"}])
        href = f"{rule_set['href']}/{rule_kind}/{rule_id}"
        rule = next((rule for rule in rules if rule["href"] == href), None)
        if rule is None:
            return Reply(404, [{"token": "not_found", "message": f"{href} not found"}])
        if request.method == "GET":
            return Reply(200, rule)
        if request.method == "PUT":
            self._check_rule(rule_kind, request.body, creating=False)
            rule.update(request.body)
            self._touch("rule_sets", rule_set)
            return Reply(204)
        if request.method == "DELETE":
            rules.remove(rule)
            self._touch("rule_sets", rule_set)
            return Reply(204)
        return Reply(405, [{"token": "method_not_allowed", "message": "Method not allowed"}])


def _listing(items: list) -> Reply:
    return Reply(200, items, {"X-Total-Count": str(len(items))})


def _to_active(doc: dict) -> dict:
    """A deep copy of a draft object as provisioned: every draft policy href inside becomes the active one."""

    def rewrite(value):
        if isinstance(value, dict):
            return {key: rewrite(item) for key, item in value.items()}
        if isinstance(value, list):
            return [rewrite(item) for item in value]
        if isinstance(value, str):
            return value.replace("/sec_policy/draft/", "/sec_policy/active/")
        return value

    return rewrite(doc)


def running_policy_pce(serve, tls_files) -> FakePolicyPce:
    """Start a fake PCE with labels, workloads and draft policy (use from a fixture: serve, tls_files)."""
    pce = FakePolicyPce()
    pce.server = serve(pce.handle)
    pce.server_ca = tls_files.ca_cert
    return pce
