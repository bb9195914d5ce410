"""Workloads: list with the PCE's filters, create unmanaged ones, update, delete, and the bulk calls."""

from __future__ import annotations

import json
import uuid as uuidlib
from typing import Any

from starlette.routing import Route

from pcelab import validate as v
from pcelab import workload_model as model
from pcelab.errors import LabError, invalid, not_found
from pcelab.http import Call, endpoint, require_body

ORG = "/api/v2/orgs/{org_id:id}"
KIND = "workloads"
BULK_LIMIT = 1000
PARTIAL_FILTERS = ("hostname", "name", "description")
EXACT_FILTERS = ("enforcement_mode", "visibility_level", "external_data_set", "external_data_reference", "os_id")
BOOLEAN_FILTERS = ("managed", "online")


def _workload_href(call: Call, uuid: str) -> str:
    return f"/orgs/{call.org_id}/workloads/{uuid}"


def _uuid_of(call: Call, href: Any) -> str:
    prefix = f"/orgs/{call.org_id}/workloads/"
    if not isinstance(href, str) or not href.startswith(prefix):
        raise invalid(f"{href!r} is not a workload href", "invalid_uri")
    return href[len(prefix) :]


# --- filters --------------------------------------------------------------------------------------------------
def _label_filter(query) -> list[list[str]] | None:
    """`labels=[["/orgs/1/labels/1","/orgs/1/labels/2"],[...]]`: any inner list, all labels of it."""
    if "labels" not in query:
        return None
    try:
        groups = json.loads(query["labels"])
    except ValueError:
        raise invalid("labels must be a JSON list of lists of label hrefs") from None
    if not isinstance(groups, list) or not all(
        isinstance(group, list) and all(isinstance(href, str) for href in group) for group in groups
    ):
        raise invalid("labels must be a JSON list of lists of label hrefs")
    return groups


def _boolean_filter(query, name: str) -> bool | None:
    if name not in query:
        return None
    # Either case: the SDK's own example (illumio 1.1.3, pce.py) filters with params={"managed": True}, which
    # requests sends as "True".
    if query[name].lower() not in ("true", "false"):
        raise invalid(f"{name} must be true or false")
    return query[name].lower() == "true"


def _matcher(query):
    """A predicate on (json text, parsed doc or None), or None when nothing filters."""
    label_groups = _label_filter(query)
    booleans = {name: _boolean_filter(query, name) for name in BOOLEAN_FILTERS}
    partial = {name: query[name].lower() for name in PARTIAL_FILTERS if name in query}
    exact = {name: query[name] for name in EXACT_FILTERS if name in query}
    address = v.ip_address("ip_address", query["ip_address"]) if "ip_address" in query else None
    needs_doc = bool(partial or exact or address or any(value is not None for value in booleans.values()))
    if label_groups is None and not needs_doc:
        return None

    def matches(text: str) -> bool:
        # Label hrefs appear in a workload's JSON only inside its labels: a text search is exact and cheap.
        if label_groups is not None and not any(
            all(f'"href":"{href}"' in text for href in group) for group in label_groups
        ):
            return False
        if not needs_doc:
            return True
        doc = json.loads(text)
        if booleans["managed"] is not None and model.is_managed(doc) != booleans["managed"]:
            return False
        if booleans["online"] is not None and bool(doc.get("online")) != booleans["online"]:
            return False
        if any(value not in (doc.get(name) or "").lower() for name, value in partial.items()):
            return False
        if any(doc.get(name) != value for name, value in exact.items()):
            return False
        return address is None or address in model.addresses(doc)

    return matches


@endpoint
def list_workloads(call: Call):
    matches = _matcher(call.query)
    # include_deleted (REST guide, workloads GET: "include deleted workloads"): deleted workloads stay stored,
    # marked `deleted: true`, and are listed only when asked for.
    include_deleted = v.query_flag(call.query, "include_deleted")
    # Managed workloads are brought up to date first (online from heartbeats, policy sync state), so the
    # `online` filter sees what the answer shows; unmanaged texts pass through unparsed (fast for 25k workloads).
    texts = lambda: call.lab.live_workload_texts(  # noqa: E731
        call.org_id, call.lab.store.texts(call.org_id, KIND, include_deleted=include_deleted)
    )
    if matches is None:
        return call.collection(texts)
    return call.collection(lambda: [text for text in texts() if matches(text)])


# --- single objects -------------------------------------------------------------------------------------------
def _create(call: Call, body: Any, labels: dict) -> dict:
    changes = model.check_changes(call.lab, call.org_id, body, managed=False, creating=True, labels=labels)
    return model.unmanaged(call.org_id, str(uuidlib.uuid4()), changes, call.user, call.lab.stamp())


def _live(call: Call, uuid: str) -> dict:
    doc = call.lab.store.doc(call.org_id, KIND, uuid)
    if doc is None:
        raise not_found(_workload_href(call, uuid))
    if doc.get("deleted"):
        raise invalid(f"workload {doc['href']} is already deleted", "already_deleted")
    return doc


def _update(call: Call, doc: dict, body: Any, labels: dict) -> tuple[dict, dict]:
    changes = model.check_changes(call.lab, call.org_id, body, model.is_managed(doc), creating=False, labels=labels)
    before = {
        name: {"before": doc.get(name), "after": value} for name, value in changes.items() if doc.get(name) != value
    }
    updated = {**doc, **changes, "updated_at": call.lab.stamp(), "updated_by": {"href": call.user}}
    return updated, before


# A managed workload can't be deleted, only unpaired (REST guide, "Workload Bulk Operations": "When you use this
# API to delete a collection of workloads, those workloads can only be unmanaged"; "Delete a workload record
# (unmanaged workloads only)"). The token is the PCE's as a client of the real API reads it: pylo (cpainchaud/pylo,
# APIConnector.WorkloadMultiDeleteTracker.execute) looks for "method_not_allowed_error" in a bulk_delete item's
# `errors` to find the managed workloads it must unpair instead. No public source shows the status of a single
# DELETE; the lab answers it with the same token and 405 (Method Not Allowed), which is what the token names.
MANAGED_DELETE_TOKEN = "method_not_allowed_error"  # noqa: S105 - a PCE error token, not a secret


def _deleted(call: Call, doc: dict) -> dict:
    if model.is_managed(doc):
        raise LabError(
            MANAGED_DELETE_TOKEN,
            f"workload {doc['href']} is managed by a VEN and can't be deleted: unpair its VEN instead",
            status=405,
        )
    return {**doc, "deleted": True, "updated_at": call.lab.stamp(), "updated_by": {"href": call.user}}


def _brief(doc: dict) -> dict:
    return {"href": doc["href"], "hostname": doc.get("hostname"), "name": doc.get("name")}


@endpoint
def create_workload(call: Call):
    with call.lab.transaction():
        doc = _create(call, require_body(call), {})
        call.lab.store.put(call.org_id, KIND, doc["href"].rsplit("/", 1)[-1], doc)
        call.event("workload.create", {"workload": _brief(doc)})
    return doc, 201


@endpoint
def get_workload(call: Call):
    doc = call.lab.store.doc(call.org_id, KIND, call.param("uuid"))
    if doc is None:
        raise not_found(_workload_href(call, call.param("uuid")))
    return call.lab.live_workload(call.org_id, doc)


@endpoint
def update_workload(call: Call):
    with call.lab.transaction():
        doc, changes = _update(call, _live(call, call.param("uuid")), require_body(call), {})
        call.lab.store.put(call.org_id, KIND, call.param("uuid"), doc)
        call.event("workload.update", {"workload": _brief(doc)}, changes)
    return None, 204


@endpoint
def delete_workload(call: Call):
    with call.lab.transaction():
        doc = _deleted(call, _live(call, call.param("uuid")))
        call.lab.store.put(call.org_id, KIND, call.param("uuid"), doc, deleted=True)
        call.event("workload.delete", {"workload": _brief(doc)})
    return None, 204


# --- bulk -----------------------------------------------------------------------------------------------------
def _bulk_items(call: Call) -> list:
    items = require_body(call, list)
    if not 1 <= len(items) <= BULK_LIMIT:
        raise invalid(f"a bulk request takes 1 to {BULK_LIMIT} workloads, not {len(items)}")
    return items


def _error_result(href: Any, error: LabError) -> dict:
    problem = {"token": error.token, "message": error.message}
    return {"href": href if isinstance(href, str) else None, "status": "error", **problem, "errors": [problem]}


def _bulk(call: Call, action: str, handle) -> list[dict]:
    """Run `handle(item, labels_cache) -> (uuid, doc, deleted)` per item; failures don't stop the others."""
    items = _bulk_items(call)
    results, done, labels = [], 0, {}
    with call.lab.transaction():
        for item in items:
            try:
                uuid, doc, deleted = handle(item, labels)
            except LabError as error:
                results.append(_error_result(item.get("href") if isinstance(item, dict) else None, error))
                continue
            # Written at once, so an item naming the same workload again sees this change.
            call.lab.store.put(call.org_id, KIND, uuid, doc, deleted=deleted)
            results.append({"href": doc["href"], "status": action})
            done += 1
        if done:
            call.event(f"workloads.bulk_{action[:-1]}", {"workloads": {"count": done}})
    return results


def _item_with_href(call: Call, item: Any) -> tuple[str, dict]:
    item = v.obj("item", item)
    uuid = _uuid_of(call, item.get("href"))
    return uuid, {key: value for key, value in item.items() if key != "href"}


@endpoint
def bulk_create(call: Call):
    def create(item, labels):
        doc = _create(call, item, labels)
        return doc["href"].rsplit("/", 1)[-1], doc, False

    return _bulk(call, "created", create)


@endpoint
def bulk_update(call: Call):
    def update(item, labels):
        uuid, body = _item_with_href(call, item)
        return uuid, _update(call, _live(call, uuid), body, labels)[0], False

    return _bulk(call, "updated", update)


@endpoint
def bulk_delete(call: Call):
    def delete(item, labels):
        uuid, body = _item_with_href(call, item)
        if body:
            raise invalid("bulk_delete items carry only an href")
        return uuid, _deleted(call, _live(call, uuid)), True

    return _bulk(call, "deleted", delete)


ROUTES = [
    Route(f"{ORG}/workloads", list_workloads, methods=["GET"]),
    Route(f"{ORG}/workloads", create_workload, methods=["POST"]),
    # The bulk calls come before /workloads/{uuid} so their names are never taken for UUIDs.
    Route(f"{ORG}/workloads/bulk_create", bulk_create, methods=["PUT"]),
    Route(f"{ORG}/workloads/bulk_update", bulk_update, methods=["PUT"]),
    Route(f"{ORG}/workloads/bulk_delete", bulk_delete, methods=["PUT"]),
    Route(f"{ORG}/workloads/{{uuid}}", get_workload, methods=["GET"]),
    Route(f"{ORG}/workloads/{{uuid}}", update_workload, methods=["PUT"]),
    Route(f"{ORG}/workloads/{{uuid}}", delete_workload, methods=["DELETE"]),
]
