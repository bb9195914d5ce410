"""Label dimensions: /orgs/{org}/label_dimensions. The keys labels may use; contract in contract/label_dimensions.json.

role, app, env and loc exist from the start and can't be deleted; custom dimensions are created, renamed
(display_name, display_info) and deleted while no label or label group uses them. A label's key must be a
live dimension (pcelab.api.labels asks `is_dimension`). Hrefs end in a UUID, like the PCE's (brian1917/illumioapi
keys its dimension map by href and key alike; the REST guide's examples show UUID hrefs).
"""

from __future__ import annotations

import uuid

from starlette.routing import Route

from pcelab import validate as v
from pcelab.contract import contract
from pcelab.errors import LabError, invalid, not_found
from pcelab.http import Call, endpoint, require_body
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
KIND = "label_dimensions"
CONTRACT = contract(KIND)
BUILTIN_USER = "/users/0"
# Built-in dimensions and how the PCE's UI shows them (display names and plurals from the REST guide's
# label dimension examples and the PCE UI's label types).
BUILTINS = (
    ("role", "Role", "Roles", "R"),
    ("app", "Application", "Applications", "A"),
    ("env", "Environment", "Environments", "E"),
    ("loc", "Location", "Locations", "L"),
)
FILTERS = ("key", "display_name", "external_data_set", "external_data_reference")


def setup(lab) -> None:
    """Create the four built-in dimensions once per org."""
    marker = f"label_dimensions_seeded:{lab.org_id}"
    if lab.store.meta(marker):
        return
    with lab.transaction():
        stamp = lab.stamp()
        for key, display_name, plural, initial in BUILTINS:
            dimension_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"pcelab/{lab.org_id}/label_dimensions/{key}"))
            fields = {
                "href": f"/orgs/{lab.org_id}/{KIND}/{dimension_id}",
                "key": key,
                "display_name": display_name,
                "display_info": {"initial": initial, "display_name_plural": plural},
                "caps": [],
                "created_at": stamp,
                "updated_at": stamp,
                "created_by": {"href": BUILTIN_USER},
                "updated_by": {"href": BUILTIN_USER},
            }
            lab.store.put(lab.org_id, KIND, dimension_id, CONTRACT.new_document(fields))
        lab.store.set_meta(marker, stamp)


def is_dimension(lab, org_id: int, key: str) -> bool:
    return bool(lab.store.find(org_id, KIND, key=key))


def _usage(call: Call, doc: dict) -> dict:
    key = doc["key"]
    return {
        "labels": bool(call.lab.store.find(call.org_id, "labels", key=key)),
        "label_groups": any(
            group.get("key") == key for group in call.lab.store.docs(call.org_id, "label_groups", "draft")
        ),
    }


def _dimension_or_404(call: Call) -> dict:
    doc = call.lab.store.doc(call.org_id, KIND, call.param("dimension_id"))
    if doc is None:
        raise not_found(f"label dimension /orgs/{call.org_id}/{KIND}/{call.param('dimension_id')}")
    return doc


def _unique(call: Call, fields: dict, own_href: str | None = None) -> None:
    for name in ("key", "display_name"):
        if name in fields:
            for doc in call.lab.store.find(call.org_id, KIND, **{name: fields[name]}):
                if doc["href"] != own_href:
                    raise invalid(f"a label dimension with {name} {fields[name]!r} already exists")


@endpoint
def list_dimensions(call: Call):
    query = CONTRACT.check_query(call.query)
    include_deleted, usage = v.query_flag(query, "include_deleted"), v.query_flag(query, "usage")

    def fetch() -> list[str]:
        docs = call.lab.store.docs(call.org_id, KIND, include_deleted=include_deleted)
        docs = [doc for doc in docs if all(doc[name] == query[name] for name in FILTERS if name in query)]
        if usage:
            docs = [{**doc, "usage": _usage(call, doc)} for doc in docs]
        return [dumps(doc) for doc in docs]

    return call.collection(fetch)


@endpoint
def get_dimension(call: Call):
    doc = _dimension_or_404(call)
    if v.query_flag(call.query, "usage"):
        doc["usage"] = _usage(call, doc)
    return doc


@endpoint
def create_dimension(call: Call):
    fields = CONTRACT.check_create(require_body(call))
    stamp = call.lab.stamp()
    with call.lab.transaction():
        _unique(call, fields)
        dimension_id = str(uuid.uuid4())
        doc = CONTRACT.new_document(
            {
                **fields,
                "href": f"/orgs/{call.org_id}/{KIND}/{dimension_id}",
                "caps": ["write"],
                "created_at": stamp,
                "updated_at": stamp,
                "created_by": {"href": call.user},
                "updated_by": {"href": call.user},
            }
        )
        call.lab.store.put(call.org_id, KIND, dimension_id, doc)
        call.event("label_dimension.create", {"label_dimension": _brief(doc)})
    return doc, 201


@endpoint
def update_dimension(call: Call):
    body = require_body(call)
    if "key" in body:
        raise invalid("the key of a label dimension can't be changed", "label_dimension_key_immutable")
    fields = CONTRACT.check_update(body)
    with call.lab.transaction():
        doc = _dimension_or_404(call)
        if doc["deleted"]:
            raise invalid(f"label dimension {doc['href']} is deleted", "already_deleted")
        _unique(call, fields, doc["href"])
        changes = {name: {"before": doc[name], "after": value} for name, value in fields.items() if doc[name] != value}
        doc.update(fields, updated_at=call.lab.stamp(), updated_by={"href": call.user})
        call.lab.store.put(call.org_id, KIND, call.param("dimension_id"), doc)
        call.event("label_dimension.update", {"label_dimension": _brief(doc)}, changes)
    return None, 204


@endpoint
def delete_dimension(call: Call):
    with call.lab.transaction():
        doc = _dimension_or_404(call)
        if doc["deleted"]:
            raise invalid(f"label dimension {doc['href']} is already deleted", "already_deleted")
        if doc["created_by"]["href"] == BUILTIN_USER:
            raise invalid(f"the built-in label dimension {doc['key']!r} can't be deleted")
        used = [kind for kind, in_use in _usage(call, doc).items() if in_use]
        if used:
            message = f"label dimension {doc['key']!r} is used by {' and '.join(used)} and can't be deleted"
            raise LabError("label_dimension_in_use", message)
        stamp = call.lab.stamp()
        doc.update(deleted=True, deleted_at=stamp, deleted_by={"href": call.user})
        call.lab.store.put(call.org_id, KIND, call.param("dimension_id"), doc, deleted=True)
        call.event("label_dimension.delete", {"label_dimension": _brief(doc)})
    return None, 204


def _brief(doc: dict) -> dict:
    return {"href": doc["href"], "key": doc["key"], "display_name": doc["display_name"]}


ROUTES = [
    Route(f"{ORG}/{KIND}", list_dimensions, methods=["GET"]),
    Route(f"{ORG}/{KIND}", create_dimension, methods=["POST"]),
    Route(f"{ORG}/{KIND}/{{dimension_id}}", get_dimension, methods=["GET"]),
    Route(f"{ORG}/{KIND}/{{dimension_id}}", update_dimension, methods=["PUT"]),
    Route(f"{ORG}/{KIND}/{{dimension_id}}", delete_dimension, methods=["DELETE"]),
]
