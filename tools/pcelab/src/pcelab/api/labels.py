"""Labels: /orgs/{org}/labels; contract in contract/labels.json. A label's key must be a label dimension
(role, app, env, loc, or one created through label_dimensions): others are refused with label_key_not_supported."""

from __future__ import annotations

from starlette.routing import Route

from pcelab import label_usage as usage_model
from pcelab import validate as v
from pcelab.api import label_dimensions
from pcelab.contract import contract
from pcelab.errors import LabError, invalid, not_found
from pcelab.http import Call, endpoint, require_body
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
KIND = "labels"
CONTRACT = contract(KIND)


def label_href(org_id: int, label_id: int | str) -> str:
    return f"/orgs/{org_id}/labels/{label_id}"


def _check(call: Call, body: dict, creating: bool) -> dict:
    if not creating:
        # A client may send the key back unchanged (the whole object it read); changing it is refused.
        return CONTRACT.check_update({name: value for name, value in body.items() if name != "key"})
    fields = CONTRACT.check_create(body)
    if not label_dimensions.is_dimension(call.lab, call.org_id, fields["key"]):
        message = f"label key {fields['key']!r} is not a label dimension; create the dimension first (label_dimensions)"
        raise invalid(message, "label_key_not_supported")
    return fields


def _unique(call: Call, key: str, value: str, own_href: str | None = None) -> None:
    for doc in call.lab.store.find(call.org_id, KIND, key=key, value=value):
        if doc["href"] != own_href:
            raise invalid(f"a {key} label with value {value!r} already exists", "label_key_value_not_unique")


def _label_or_404(call: Call) -> dict:
    doc = call.lab.store.doc(call.org_id, KIND, call.param("label_id"))
    if doc is None:
        raise not_found(f"label {label_href(call.org_id, call.param('label_id'))}")
    return doc


def _matches(doc: dict, query) -> bool:
    if "key" in query and doc["key"] != query["key"]:
        return False
    if "value" in query and query["value"].lower() not in doc["value"].lower():
        return False
    return all(
        name not in query or doc[name] == query[name] for name in ("external_data_set", "external_data_reference")
    )


@endpoint
def list_labels(call: Call):
    query = CONTRACT.check_query(call.query)
    include_deleted, usage = v.query_flag(query, "include_deleted"), v.query_flag(query, "usage")
    filtered = any(name in query for name in ("key", "value", "external_data_set", "external_data_reference"))
    if not filtered and not usage:
        return call.collection(lambda: call.lab.store.texts(call.org_id, KIND, include_deleted=include_deleted))

    def fetch() -> list[str]:
        docs = call.lab.store.docs(call.org_id, KIND, include_deleted=include_deleted)
        docs = [doc for doc in docs if _matches(doc, query)]
        if usage:
            used = usage_model.in_use(call.lab, call.org_id)
            docs = [{**doc, "usage": usage_model.usage_of(doc["href"], used)} for doc in docs]
        return [dumps(doc) for doc in docs]

    return call.collection(fetch)


@endpoint
def create_label(call: Call):
    fields = _check(call, require_body(call), creating=True)
    stamp = call.lab.stamp()
    with call.lab.transaction():
        _unique(call, fields["key"], fields["value"])
        label_id = call.lab.store.next_id(call.org_id, KIND)
        doc = CONTRACT.new_document(
            {
                **fields,
                "href": label_href(call.org_id, label_id),
                "created_at": stamp,
                "updated_at": stamp,
                "created_by": {"href": call.user},
                "updated_by": {"href": call.user},
            }
        )
        call.lab.store.put(call.org_id, KIND, label_id, doc)
        call.event("label.create", {"label": _brief(doc)})
    return doc, 201


@endpoint
def get_label(call: Call):
    doc = _label_or_404(call)
    if v.query_flag(call.query, "usage"):
        doc["usage"] = usage_model.usage_of(doc["href"], usage_model.in_use(call.lab, call.org_id))
    return doc


@endpoint
def update_label(call: Call):
    body = require_body(call)
    fields = _check(call, body, creating=False)
    with call.lab.transaction():
        doc = _label_or_404(call)
        if doc["deleted"]:
            raise invalid(f"label {doc['href']} is deleted", "already_deleted")
        if "key" in body and body["key"] != doc["key"]:
            raise invalid("the key of a label can't be changed", "label_key_immutable")
        if "value" in fields:
            _unique(call, doc["key"], fields["value"], doc["href"])
        changes = {name: {"before": doc[name], "after": value} for name, value in fields.items() if doc[name] != value}
        doc.update(fields, updated_at=call.lab.stamp(), updated_by={"href": call.user})
        call.lab.store.put(call.org_id, KIND, call.param("label_id"), doc)
        if "value" in changes:
            _refresh_workload_copies(call, doc)
        call.event("label.update", {"label": _brief(doc)}, changes)
    return None, 204


def _refresh_workload_copies(call: Call, label: dict) -> None:
    """Workloads keep their labels expanded (so collections are served as stored text); keep them current."""
    updated = []
    for workload in call.lab.store.referencing(call.org_id, ["workloads"], "", label["href"]):
        workload.pop("kind")
        workload["labels"] = [_brief(label) if ref["href"] == label["href"] else ref for ref in workload["labels"]]
        updated.append((workload["href"].rsplit("/", 1)[-1], workload, False))
    call.lab.store.put_many(call.org_id, "workloads", updated)


@endpoint
def delete_label(call: Call):
    with call.lab.transaction():
        doc = _label_or_404(call)
        if doc["deleted"]:
            raise invalid(f"label {doc['href']} is already deleted", "already_deleted")
        user = call.lab.label_in_use(call.org_id, doc["href"])
        if user:
            raise LabError("label_in_use", f"label {doc['href']} is in use by {user} and can't be deleted")
        doc.update(deleted=True, updated_at=call.lab.stamp(), updated_by={"href": call.user})
        call.lab.store.put(call.org_id, KIND, call.param("label_id"), doc, deleted=True)
        call.event("label.delete", {"label": _brief(doc)})
    return None, 204


def _brief(doc: dict) -> dict:
    return {"href": doc["href"], "key": doc["key"], "value": doc["value"]}


ROUTES = [
    Route(f"{ORG}/labels", list_labels, methods=["GET"]),
    Route(f"{ORG}/labels", create_label, methods=["POST"]),
    Route(f"{ORG}/labels/{{label_id:id}}", get_label, methods=["GET"]),
    Route(f"{ORG}/labels/{{label_id:id}}", update_label, methods=["PUT"]),
    Route(f"{ORG}/labels/{{label_id:id}}", delete_label, methods=["DELETE"]),
]
