"""Org settings: GET/PUT /orgs/{org}/settings/workloads; `timers()` gives the VEN side the timers in force.

Sources for the shape (public):
- Illumio REST API guide, "Workload Settings" (21.5: example response body; 22.5-25.x: the field list): each
  timer is a list of `{"scope": [{"href": <label>}...], "value": N}`, an empty scope being the org default
  ("each setting must have a default"); -1 disables a timer. 23.x adds `ven_type` ("server" or "endpoint")
  and two more fields, `workload_disconnected_notification_seconds` and `ven_uninstall_timeout_hours`.
- terraform-provider-illumio-core, models/workload_settings.go and resource_illumio_workload_settings.go:
  entries `{scope, value, ven_type}`, a missing ven_type means "server", the PUT is a partial update that
  replaces the entry with the same ven type and scope and keeps the others.
- The official Python SDK (illumio 1.1.3) calls GET /orgs/{org}/settings/workloads in check_connection().

Defaults: disconnected 3600 s (the VEN operations guide in shared/reference: a workload that stops sending
heartbeats is marked offline after one hour), goodbye 900 s (the terraform provider's example).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.routing import Route

from pcelab import validate as v
from pcelab.errors import invalid
from pcelab.http import Call, endpoint, require_body

ORG = "/api/v2/orgs/{org_id:id}"
VEN_TYPES = ("server", "endpoint")
MAX_VALUE = 2_147_483_647
# field -> lowest value besides -1 ("never"). The terraform provider checks 300 for both timers; the REST
# guide's own example sets the goodbye timer to 60 and 0, so the goodbye timer takes any value from 0.
TIMERS = {"workload_disconnected_timeout_seconds": 300, "workload_goodbye_timeout_seconds": 0}
# Listed by the 22.5+ guides; their entry shape is not pinned down by a public sample, so the lab keeps what a
# client stores there (each entry an object with an optional label scope and ven_type) and answers it back.
OTHER_LISTS = ("workload_disconnected_notification_seconds", "ven_uninstall_timeout_hours")
DEFAULTS = {"workload_disconnected_timeout_seconds": 3600, "workload_goodbye_timeout_seconds": 900}


def _meta_name(org_id: int) -> str:
    return f"settings_workloads:{org_id}"


def current(lab, org_id: int) -> dict:
    stored = lab.store.meta(_meta_name(org_id))
    if stored:
        return json.loads(stored)
    doc: dict[str, Any] = {"href": f"/orgs/{org_id}/settings/workloads"}
    for name, value in DEFAULTS.items():
        doc[name] = [{"scope": [], "value": value, "ven_type": "server"}]
    return doc


class Timers:
    """The heartbeat timers for server VENs (the lab's VENs are servers), read once per request.

    An entry with a label scope applies to workloads that have all its labels; the most specific matching entry
    wins and the entry with an empty scope is the default (REST guide, "Workload Settings": "each setting must have
    a default"; the terraform provider's workload_settings resource). -1 means never: `seconds()` answers None.
    """

    def __init__(self, lab, org_id: int):
        doc = current(lab, org_id)
        self._entries = {}
        for field in TIMERS:
            entries = [e for e in doc.get(field, []) if e.get("ven_type", "server") == "server"]
            scoped = [(frozenset(ref["href"] for ref in e["scope"]), e["value"]) for e in entries]
            self._entries[field] = sorted(scoped, key=lambda pair: -len(pair[0]))

    def seconds(self, field: str, label_hrefs: frozenset[str]) -> int | None:
        value = next((value for scope, value in self._entries[field] if scope <= label_hrefs), DEFAULTS[field])
        return None if value == -1 else value


def timers(lab, org_id: int) -> Timers:
    return Timers(lab, org_id)


def _scope(call: Call, name: str, value: Any) -> list[dict]:
    hrefs = v.href_refs(name, value)
    keys = set()
    for href in hrefs:
        label = call.lab.label(call.org_id, href)
        if label is None:
            raise invalid(f"{name}: {href} is not an existing label", "invalid_uri")
        if label["key"] in keys:
            raise invalid(f"{name} names more than one {label['key']} label", "scope_key_not_unique")
        keys.add(label["key"])
    return [{"href": href} for href in hrefs]


def _entry(call: Call, field: str, index: int, value: Any) -> dict:
    what = f"{field}[{index}]"
    entry = v.obj(what, value)
    scope = _scope(call, f"{what}.scope", entry.get("scope", []))
    ven_type = v.choice(f"{what}.ven_type", entry.get("ven_type") or "server", VEN_TYPES)
    if field not in TIMERS:
        return {**entry, "scope": scope, "ven_type": ven_type}
    v.known_fields(entry, ("scope", "value", "ven_type"), what)
    v.required(entry, ("value",), what)
    number = entry["value"]
    if number != -1:
        number = v.integer(f"{what}.value", number, TIMERS[field], MAX_VALUE)
    return {"scope": scope, "value": number, "ven_type": ven_type}


def _key(entry: dict) -> tuple[str, frozenset[str]]:
    return entry["ven_type"], frozenset(ref["href"] for ref in entry["scope"])


@endpoint
def get_workload_settings(call: Call):
    return current(call.lab, call.org_id)


@endpoint
def update_workload_settings(call: Call):
    body = require_body(call)
    v.known_fields(body, (*TIMERS, *OTHER_LISTS), "workload settings")
    with call.lab.transaction():
        doc = current(call.lab, call.org_id)
        for field, value in body.items():
            entries = [_entry(call, field, index, item) for index, item in enumerate(v.array(field, value, 1000))]
            keys = [_key(entry) for entry in entries]
            if len(set(keys)) != len(keys):
                raise invalid(f"{field} lists the same ven_type and scope twice")
            # Partial update: an entry replaces the one with the same ven_type and scope, the others stay.
            merged = {_key(entry): entry for entry in doc.get(field, [])}
            merged.update(zip(keys, entries, strict=True))
            doc[field] = list(merged.values())
        call.lab.store.set_meta(_meta_name(call.org_id), json.dumps(doc))
    return None, 204


ROUTES = [
    Route(f"{ORG}/settings/workloads", get_workload_settings, methods=["GET"]),
    Route(f"{ORG}/settings/workloads", update_workload_settings, methods=["PUT"]),
]
