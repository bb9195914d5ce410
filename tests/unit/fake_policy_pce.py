"""A fake PCE with labels and draft/active policy objects, for unit tests of the policy object modules.

It answers in the PCE's shapes (see tools/pcelab/tests/pce_samples) and refuses what the PCE refuses, the way the
lab PCE (tools/pcelab) does: drafts carry `update_type`; a provisioned draft deleted in draft stays listed
with `update_type: delete`; built-in objects are read-only; provisioning a subset that leaves active policy
pointing at unprovisioned objects is a 406 `provision_dependency_missing`, nothing pending a 406
`nothing_to_provision`.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import uuid

from pce_test_server import Reply, Request

KINDS = ("label_groups", "ip_lists", "services", "rule_sets", "enforcement_boundaries")
REFERABLE = re.compile(r"/orgs/1/sec_policy/(?:draft|active)/(label_groups|ip_lists|services)/([^\"/]+)\"")
POLICY = re.compile(r"^/api/v2/orgs/1/sec_policy/(draft|active)/(" + "|".join(KINDS) + r")(?:/([^/]+))?$")
BUILTIN_USER = "/users/0"
STAMP = "2026-01-01T00:00:00.000Z"


def refused(token: str, message: str, status: int = 406) -> Reply:
    return Reply(status, [{"token": token, "message": message}])


class FakePolicyPce:
    username = "api_1f00dcafe1234"
    secret = "9c3e7f1d0b8a4e6f2a5c7d9e1b3f5a7c-unit-test-secret"

    def __init__(self):
        self.labels: list[dict] = []
        # (kind, id) -> doc, per state
        self.draft: dict[tuple[str, str], dict] = {}
        self.active: dict[tuple[str, str], dict] = {}
        self.versions: list[dict] = []
        self.next_id = 100
        self.server = None
        self.server_ca = None
        self.intercept = None  # a function(request) -> Reply | None, consulted first
        self._lock = threading.RLock()
        for kind, fields in (
            ("ip_lists", {"name": "Any (0.0.0.0/0 and ::/0)", "description": None, "fqdns": [],
                          "ip_ranges": [{"from_ip": "0.0.0.0/0", "exclusion": False},
                                        {"from_ip": "::/0", "exclusion": False}]}),
            ("services", {"name": "All Services", "description": None, "description_url": None,
                          "process_name": None, "service_ports": [{"proto": -1}]}),
        ):  # fmt: skip
            doc = self._new_doc(kind, "1", dict(fields, external_data_set=None, external_data_reference=None))
            doc.update(update_type=None, created_by={"href": BUILTIN_USER})
            self.draft[(kind, "1")] = doc
            self.active[(kind, "1")] = self._to_active(doc)

    # --- test-side helpers -------------------------------------------------------------------------------------
    def connection(self, **overrides) -> dict:
        return {
            "pce_host": "127.0.0.1",
            "pce_port": self.server.port,
            "api_key_username": self.username,
            "api_key_secret": self.secret,
            "ca_path": str(self.server_ca),
            **overrides,
        }

    def add_label(self, key: str, value: str) -> dict:
        label = {"href": f"/orgs/1/labels/{len(self.labels) + 1}", "key": key, "value": value}
        self.labels.append(label)
        return label

    def add(self, kind: str, provisioned: bool = False, **fields) -> dict:
        """A draft object as if created through the API (and provisioned when asked)."""
        with self._lock:
            obj_id = self._id(kind)
            doc = self._new_doc(kind, obj_id, {**self._defaults(kind), **fields})
            self.draft[(kind, obj_id)] = doc
            if provisioned:
                doc["update_type"] = None
                self.active[(kind, obj_id)] = self._to_active(doc)
            return self.render(doc)

    def get(self, kind: str, name: str, state: str = "draft") -> dict | None:
        store = self.draft if state == "draft" else self.active
        found = [doc for (k, _obj_id), doc in store.items() if k == kind and doc["name"] == name]
        live = [doc for doc in found if doc["update_type"] != "delete"] if state == "draft" else found
        return self.render(live[0]) if live else (self.render(found[0]) if found else None)

    @property
    def requests(self) -> list[Request]:
        return self.server.requests

    def changes(self) -> list[Request]:
        return [request for request in self.requests if request.method != "GET"]

    # --- documents ---------------------------------------------------------------------------------------------
    def _id(self, kind: str) -> str:
        if kind == "label_groups":
            return str(uuid.uuid4())
        self.next_id += 1
        return str(self.next_id)

    @staticmethod
    def _defaults(kind: str) -> dict:
        return {
            "label_groups": {"description": "", "labels": [], "sub_groups": []},
            "ip_lists": {"description": None, "ip_ranges": [], "fqdns": []},
            "services": {"description": None, "description_url": None, "process_name": None, "service_ports": []},
            "rule_sets": {"description": "", "enabled": True, "scopes": [], "rules": []},
            "enforcement_boundaries": {"providers": [], "consumers": [], "ingress_services": []},
        }[kind] | {"external_data_set": None, "external_data_reference": None}

    @staticmethod
    def _new_doc(kind: str, obj_id: str, fields: dict) -> dict:
        return {
            "href": f"/orgs/1/sec_policy/draft/{kind}/{obj_id}",
            "created_at": STAMP,
            "updated_at": STAMP,
            "deleted_at": None,
            "created_by": {"href": "/users/1"},
            "updated_by": {"href": "/users/1"},
            "deleted_by": None,
            "update_type": "create",
            **copy.deepcopy(fields),
        }

    @staticmethod
    def _to_active(doc: dict) -> dict:
        return json.loads(json.dumps({**doc, "update_type": None}).replace("/sec_policy/draft/", "/sec_policy/active/"))

    def render(self, doc: dict) -> dict:
        """Label groups answer their labels expanded (href, key, value) and sub-groups with names."""
        doc = copy.deepcopy(doc)
        if "/label_groups/" in doc["href"]:
            by_href = {label["href"]: label for label in self.labels}
            doc["labels"] = [dict(by_href.get(ref["href"], ref)) for ref in doc.get("labels", [])]
            state = self.draft if "/draft/" in doc["href"] else self.active
            names = {d["href"]: d["name"] for d in state.values()}
            doc["sub_groups"] = [{"href": ref["href"], "name": names.get(ref["href"])} for ref in doc["sub_groups"]]
        return doc

    # --- the API -----------------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        expected = "Basic " + base64.b64encode(f"{self.username}:{self.secret}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Reply(401, {"error": "Authentication required"})
        with self._lock:
            if self.intercept is not None:
                reply = self.intercept(request)
                if reply is not None:
                    return reply
            if request.path == "/api/v2/orgs/1/labels" and request.method == "GET":
                return self._listing(self.labels, request)
            if request.path == "/api/v2/orgs/1/sec_policy/pending" and request.method == "GET":
                return Reply(200, self._pending())
            if request.path == "/api/v2/orgs/1/sec_policy" and request.method == "POST":
                return self._provision(request.body or {})
            match = POLICY.match(request.path)
            if not match:
                return refused("not_found", f"{request.path} not found", 404)
            state, kind, obj_id = match.groups()
            if state == "active" and request.method != "GET":
                return refused("method_not_allowed", "active policy is read-only", 405)
            store = self.draft if state == "draft" else self.active
            if obj_id is None and request.method == "GET":
                docs = [self.render(doc) for (k, _obj_id), doc in store.items() if k == kind]
                wanted = request.query.get("name", "").lower()
                return self._listing([doc for doc in docs if wanted in doc["name"].lower()], request)
            if obj_id is None and request.method == "POST":
                return self._create(kind, request.body or {})
            doc = store.get((kind, obj_id))
            if doc is None:
                return refused("not_found", f"{request.path} not found", 404)
            if request.method == "GET":
                return Reply(200, self.render(doc))
            if request.method == "PUT":
                return self._update(kind, obj_id, doc, request.body or {})
            if request.method == "DELETE":
                return self._delete(kind, obj_id, doc)
        return refused("method_not_allowed", "method not allowed", 405)

    @staticmethod
    def _listing(items: list, request: Request) -> Reply:
        limit = int(request.query.get("max_results", 500))
        return Reply(200, items[:limit], {"X-Total-Count": str(len(items))})

    def _check(self, kind: str, body: dict, own_href: str | None) -> Reply | None:
        if "name" in body:
            for doc in self.draft.values():
                same_kind = f"/{kind}/" in doc["href"]
                if same_kind and doc["name"] == body["name"] and doc["href"] != own_href and not doc["deleted_at"]:
                    return refused("name_must_be_unique", f"a draft named {body['name']!r} already exists")
        label_hrefs = {label["href"] for label in self.labels}
        for ref in body.get("labels", []):
            if ref.get("href") not in label_hrefs:
                return refused("invalid_uri", f"labels: {ref.get('href')} is not an existing label")
        for ref in body.get("sub_groups", []):
            found = next((d for d in self.draft.values() if d["href"] == ref.get("href")), None)
            if found is None or found["deleted_at"]:
                return refused("invalid_uri", f"sub_groups: {ref.get('href')} is not an existing draft label group")
        for entry in body.get("service_ports", []):
            if not isinstance(entry.get("proto"), int):
                return refused("input_validation_error", "service_ports: proto must be a number")
        return None

    def _create(self, kind: str, body: dict) -> Reply:
        problem = self._check(kind, body, None)
        if problem:
            return problem
        obj_id = self._id(kind)
        doc = self._new_doc(kind, obj_id, {**self._defaults(kind), **body})
        self.draft[(kind, obj_id)] = doc
        return Reply(201, self.render(doc))

    def _writable(self, doc: dict) -> Reply | None:
        if doc["update_type"] == "delete":
            return refused("already_deleted", f"{doc['href']} is deleted (pending provisioning)")
        if doc["created_by"]["href"] == BUILTIN_USER:
            return refused("builtin_object_read_only", f"{doc['href']} is built in and can't be changed")
        return None

    def _update(self, kind: str, obj_id: str, doc: dict, body: dict) -> Reply:
        problem = self._writable(doc) or self._check(kind, body, doc["href"])
        if problem:
            return problem
        if kind == "label_groups" and "key" in body and body["key"] != doc["key"]:
            return refused("label_group_key_immutable", "the key of a label group can't be changed")
        doc.update(copy.deepcopy(body))
        doc["update_type"] = "update" if (kind, obj_id) in self.active else "create"
        return Reply(204)

    def _delete(self, kind: str, obj_id: str, doc: dict) -> Reply:
        problem = self._writable(doc)
        if problem:
            return problem
        quoted = json.dumps(doc["href"])
        users = [
            d["name"] for d in self.draft.values() if not d["deleted_at"] and d is not doc and quoted in json.dumps(d)
        ]
        if users:
            return refused("object_in_use", f"{doc['href']} is used by draft policy ({', '.join(users)})")
        if (kind, obj_id) in self.active:
            doc.update(update_type="delete", deleted_at=STAMP, deleted_by={"href": "/users/1"})
        else:
            del self.draft[(kind, obj_id)]
        return Reply(204)

    # --- provisioning ------------------------------------------------------------------------------------------
    def _pending(self) -> dict:
        pending = {}
        for kind in KINDS:
            docs = [self.render(doc) for (k, _obj_id), doc in self.draft.items() if k == kind and doc["update_type"]]
            if docs:
                pending[kind] = docs
        return pending

    def _provision(self, body: dict) -> Reply:
        pending = [(key, doc) for key, doc in self.draft.items() if doc["update_type"]]
        subset = body.get("change_subset")
        if subset is not None:
            hrefs = {ref["href"] for refs in subset.values() for ref in refs}
            stray = hrefs - {doc["href"] for _kind, doc in pending}
            if stray:
                return refused("not_pending_change", f"change_subset names objects without pending changes: {stray}")
            pending = [(key, doc) for key, doc in pending if doc["href"] in hrefs]
        if not pending:
            return refused("nothing_to_provision", "there are no pending changes to provision")
        after = dict(self.active)
        for key, doc in pending:
            if doc["update_type"] == "delete":
                after.pop(key, None)
            else:
                after[key] = self._to_active(doc)
        missing = sorted(
            f"/orgs/1/sec_policy/draft/{kind}/{obj_id}"
            for doc in after.values()
            for kind, obj_id in REFERABLE.findall(json.dumps(doc))
            if (kind, obj_id) not in after
        )
        if missing:
            return refused(
                "provision_dependency_missing",
                "provisioning would leave active policy referring to objects that are not provisioned; include "
                f"them in the change subset: {', '.join(missing)}",
            )
        for key, doc in pending:
            if doc["update_type"] == "delete":
                self.active.pop(key, None)
                del self.draft[key]
            else:
                doc["update_type"] = None
                self.active[key] = self._to_active(doc)
        version = {
            "href": f"/orgs/1/sec_policy/{len(self.versions) + 1}",
            "commit_message": body.get("update_description"),
            "version": len(self.versions) + 1,
            "workloads_affected": 3,
            "object_counts": {},
            "created_at": STAMP,
            "created_by": {"href": "/users/1"},
        }
        self.versions.append(version)
        return Reply(201, version)
