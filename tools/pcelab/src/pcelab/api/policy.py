"""Draft and active policy objects: ip_lists, services, label_groups, rule_sets, enforcement_boundaries,
virtual_services (policy_model.TYPES).

/orgs/{org}/sec_policy/draft/<kind>[/<id>] is writable; /sec_policy/active/... is read-only (405).
Built-in objects (the "Any" IP list and "All Services") exist in draft and active from the start.
"""

from __future__ import annotations

import json
import uuid as uuidlib

from starlette.routing import Route

from pcelab import validate as v
from pcelab.errors import LabError, invalid, not_found
from pcelab.http import Call, endpoint, require_body
from pcelab.policy_model import (
    ACTIVE,
    DRAFT,
    TYPES,
    PolicyType,
    draft_or_404,
    mark_updated,
    new_draft,
    render,
    to_active,
)
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
BUILTIN_USER = "/users/0"
BUILTINS = {
    "ip_lists": {
        "name": "Any (0.0.0.0/0 and ::/0)",
        "description": None,
        "ip_ranges": [{"from_ip": "0.0.0.0/0", "exclusion": False}, {"from_ip": "::/0", "exclusion": False}],
        "fqdns": [],
        "external_data_set": None,
        "external_data_reference": None,
    },
    "services": {
        "name": "All Services",
        "description": None,
        "description_url": None,
        "process_name": None,
        "service_ports": [{"proto": -1}],
        "external_data_set": None,
        "external_data_reference": None,
    },
}


def setup(lab) -> None:
    """Seed the built-in IP list and service (id 1 in draft and active) once per org."""
    marker = f"policy_builtins_seeded:{lab.org_id}"
    if lab.store.meta(marker):
        return
    with lab.transaction():
        stamp = lab.stamp()
        for kind, fields in BUILTINS.items():
            obj_id = lab.store.next_id(lab.org_id, kind)
            doc = {
                "href": f"/orgs/{lab.org_id}/sec_policy/draft/{kind}/{obj_id}",
                "created_at": stamp,
                "updated_at": stamp,
                "deleted_at": None,
                "created_by": {"href": BUILTIN_USER},
                "updated_by": {"href": BUILTIN_USER},
                "deleted_by": None,
                "update_type": None,
                **fields,
            }
            lab.store.put(lab.org_id, kind, obj_id, doc, DRAFT)
            lab.store.put(lab.org_id, kind, obj_id, json.loads(to_active(dumps(doc))), ACTIVE)
        lab.store.set_meta(marker, stamp)


def is_builtin(doc: dict) -> bool:
    return doc.get("created_by", {}).get("href") == BUILTIN_USER


def _ptype(call: Call) -> PolicyType:
    return TYPES[call.request.path_params["kind"]]


def _matches(doc: dict, query) -> bool:
    for name in ("name", "description"):
        if name in query and query[name].lower() not in (doc.get(name) or "").lower():
            return False
    for name in ("key", "external_data_set", "external_data_reference"):
        if name in query and doc.get(name) != query[name]:
            return False
    return True


FILTERS = ("name", "description", "key", "external_data_set", "external_data_reference")


def _lister(state: str):
    @endpoint
    def list_objects(call: Call):
        ptype = _ptype(call)
        kind, query = ptype.kind, call.query
        keep = ptype.matcher(call) if ptype.matcher else lambda doc: _matches(doc, query)
        filtered = ptype.matcher is not None or any(name in query for name in FILTERS)
        if not filtered and kind != "label_groups":
            # Pending deletions stay listed in draft (with deleted_at and update_type "delete").
            return call.collection(lambda: call.lab.store.texts(call.org_id, kind, state, include_deleted=True))

        def fetch() -> list[str]:
            docs = call.lab.store.docs(call.org_id, kind, state, include_deleted=True)
            return [dumps(render(call.lab, call.org_id, kind, doc)) for doc in docs if keep(doc)]

        return call.collection(fetch)

    return list_objects


def _getter(state: str):
    @endpoint
    def get_object(call: Call):
        kind, obj_id = _ptype(call).kind, call.param("obj_id")
        doc = call.lab.store.doc(call.org_id, kind, obj_id, state)
        if doc is None:
            raise not_found(f"/orgs/{call.org_id}/sec_policy/{state}/{kind}/{obj_id}")
        return render(call.lab, call.org_id, kind, doc)

    return get_object


def _check_body(call: Call, ptype: PolicyType, current: dict | None) -> dict:
    body = require_body(call)
    v.known_fields(body, ptype.fields, ptype.singular)
    if current is None:
        v.required(body, ptype.required, ptype.singular)
    fields = ptype.check(call, body, current)
    if "name" in fields:
        _unique_name(call, ptype.kind, fields["name"], current["href"] if current else None)
    return fields


def _unique_name(call: Call, kind: str, name: str, own_href: str | None) -> None:
    for doc in call.lab.store.find(call.org_id, kind, DRAFT, name=name):
        if doc["href"] != own_href:
            raise invalid(f"a draft {kind[:-1].replace('_', ' ')} named {name!r} already exists", "name_must_be_unique")


@endpoint
def create_object(call: Call):
    ptype = _ptype(call)
    with call.lab.transaction():
        fields = _check_body(call, ptype, None)
        rules = fields.pop("rules", None) if ptype.kind == "rule_sets" else None
        obj_id = str(uuidlib.uuid4()) if ptype.uuid_ids else call.lab.store.next_id(call.org_id, ptype.kind)
        doc = new_draft(call, ptype, obj_id, fields)
        if rules:
            from pcelab.api.rules import new_rules

            doc["rules"] = new_rules(call, doc, rules)
        call.lab.store.put(call.org_id, ptype.kind, obj_id, doc, DRAFT)
        call.event(f"{ptype.singular}.create", {ptype.singular: {"href": doc["href"], "name": doc.get("name")}})
    return render(call.lab, call.org_id, ptype.kind, doc), 201


def _writable_draft(call: Call, ptype: PolicyType) -> dict:
    doc = draft_or_404(call, ptype.kind, call.param("obj_id"))
    if doc["update_type"] == "delete":
        raise invalid(f"{doc['href']} is deleted (pending provisioning)", "already_deleted")
    if is_builtin(doc):
        raise invalid(f"{doc['href']} is built in and can't be changed", "builtin_object_read_only")
    return doc


@endpoint
def update_object(call: Call):
    ptype = _ptype(call)
    with call.lab.transaction():
        doc = _writable_draft(call, ptype)
        fields = _check_body(call, ptype, doc)
        if "rules" in fields:
            from pcelab.api.rules import new_rules

            fields["rules"] = new_rules(call, doc, fields["rules"])
        changes = {
            name: {"before": doc.get(name), "after": value} for name, value in fields.items() if doc.get(name) != value
        }
        doc.update(fields)
        mark_updated(call, doc)
        call.lab.store.put(call.org_id, ptype.kind, call.param("obj_id"), doc, DRAFT)
        call.event(
            f"{ptype.singular}.update", {ptype.singular: {"href": doc["href"], "name": doc.get("name")}}, changes
        )
    return None, 204


@endpoint
def delete_object(call: Call):
    ptype = _ptype(call)
    obj_id = call.param("obj_id")
    with call.lab.transaction():
        doc = draft_or_404(call, ptype.kind, obj_id)
        if doc["update_type"] == "delete":
            raise invalid(f"{doc['href']} is already deleted (pending provisioning)", "already_deleted")
        if is_builtin(doc):
            raise invalid(f"{doc['href']} is built in and can't be deleted", "builtin_object_read_only")
        _refuse_if_used(call, doc)
        if call.lab.store.row(call.org_id, ptype.kind, obj_id, ACTIVE) is None:
            call.lab.store.remove(call.org_id, ptype.kind, obj_id, DRAFT)  # never provisioned: simply gone
        else:
            doc.update(update_type="delete", deleted_at=call.lab.stamp(), deleted_by={"href": call.user})
            call.lab.store.put(call.org_id, ptype.kind, obj_id, doc, DRAFT, deleted=True)
        call.event(f"{ptype.singular}.delete", {ptype.singular: {"href": doc["href"], "name": doc.get("name")}})
    return None, 204


def _refuse_if_used(call: Call, doc: dict) -> None:
    users = call.lab.store.referencing(
        call.org_id, ("label_groups", "rule_sets", "enforcement_boundaries", "virtual_services"), DRAFT, doc["href"]
    )
    users = [user for user in users if user["href"] != doc["href"]]
    if users:
        names = ", ".join(sorted(user.get("name") or user["href"] for user in users)[:5])
        raise LabError("object_in_use", f"{doc['href']} is used by draft policy ({names}) and can't be deleted")


def _routes() -> list[Route]:
    routes = []
    kinds = "{kind:policy_kind}"
    for state in (DRAFT, ACTIVE):
        base = f"{ORG}/sec_policy/{state}/{kinds}"
        routes.append(Route(base, _lister(state), methods=["GET"]))
        routes.append(Route(f"{base}/{{obj_id}}", _getter(state), methods=["GET"]))
    base = f"{ORG}/sec_policy/{DRAFT}/{kinds}"
    routes += [
        Route(base, create_object, methods=["POST"]),
        Route(f"{base}/{{obj_id}}", update_object, methods=["PUT"]),
        Route(f"{base}/{{obj_id}}", delete_object, methods=["DELETE"]),
    ]
    return routes


def _register_kind_convertor() -> None:
    from starlette.convertors import Convertor, register_url_convertor

    class PolicyKind(Convertor):
        regex = "|".join(TYPES)

        def convert(self, value: str) -> str:
            return value

        def to_string(self, value: str) -> str:
            return value

    register_url_convertor("policy_kind", PolicyKind())


_register_kind_convertor()
ROUTES = _routes()
