"""Provisioning: GET sec_policy/pending, POST sec_policy (draft -> new active version), versions."""

from __future__ import annotations

import json

from starlette.routing import Route

from pcelab import validate as v
from pcelab.errors import LabError, invalid, not_found
from pcelab.http import NO_BODY, Call, endpoint
from pcelab.policy_model import ACTIVE, DRAFT, TYPES, referenced_policy_hrefs, render, to_active
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
PROVISION_ORDER = ("label_groups", "ip_lists", "services", "virtual_services", "rule_sets", "enforcement_boundaries")


def pending_drafts(call: Call) -> dict[str, list[dict]]:
    """Draft objects that differ from active, by kind (only kinds with pending changes)."""
    pending = {}
    for kind in PROVISION_ORDER:
        docs = [
            doc for doc in call.lab.store.docs(call.org_id, kind, DRAFT, include_deleted=True) if doc["update_type"]
        ]
        if docs:
            pending[kind] = docs
    return pending


@endpoint
def get_pending(call: Call):
    return {
        kind: [render(call.lab, call.org_id, kind, doc) for doc in docs] for kind, docs in pending_drafts(call).items()
    }


def _subset(call: Call, body: dict) -> set[str] | None:
    if body.get("change_subset") is None:
        return None
    subset = v.obj("change_subset", body["change_subset"])
    hrefs = set()
    for kind, refs in subset.items():
        if kind not in TYPES:
            raise invalid(f"change_subset: unknown object type {kind!r}")
        for href in v.href_refs(f"change_subset.{kind}", refs):
            if f"/sec_policy/draft/{kind}/" not in href:
                raise invalid(
                    f"change_subset.{kind}: {href} is not a draft {kind[:-1].replace('_', ' ')}", "invalid_uri"
                )
            hrefs.add(href)
    return hrefs


@endpoint
def provision(call: Call):
    body = {} if call.body is NO_BODY else v.obj("body", call.body)
    v.known_fields(body, ("update_description", "change_subset"), "provision")
    message = v.optional_text("update_description", body.get("update_description"), 4096)
    with call.lab.transaction():
        subset = _subset(call, body)
        pending = pending_drafts(call)
        chosen = {
            kind: [doc for doc in docs if subset is None or doc["href"] in subset] for kind, docs in pending.items()
        }
        chosen = {kind: docs for kind, docs in chosen.items() if docs}
        if subset is not None:
            _refuse_unknown_subset(subset, pending)
        if not chosen:
            raise LabError("nothing_to_provision", "there are no pending changes to provision")
        active = _active_after(call, chosen)
        _refuse_missing_dependencies(call, active)
        _write_active(call, chosen)
        version = _record_version(call, message, chosen, active)
        call.event(
            "sec_policy.create",
            {"sec_policy": {"href": version["href"]}},
            {"commit_message": {"before": None, "after": message}},
        )
    return version, 201


def _refuse_unknown_subset(subset: set[str], pending: dict[str, list[dict]]) -> None:
    pending_hrefs = {doc["href"] for docs in pending.values() for doc in docs}
    stray = sorted(subset - pending_hrefs)
    if stray:
        raise invalid(
            f"change_subset names objects without pending changes: {', '.join(stray[:5])}", "not_pending_change"
        )


def _active_after(call: Call, chosen: dict[str, list[dict]]) -> dict[tuple[str, str], str]:
    """(kind, id) -> active JSON text as it will be once `chosen` is provisioned."""
    active = {}
    for kind in PROVISION_ORDER:
        for text in call.lab.store.texts(call.org_id, kind, ACTIVE):
            active[(kind, json.loads(text)["href"].rsplit("/", 1)[-1])] = text
    for kind, docs in chosen.items():
        for doc in docs:
            key = (kind, doc["href"].rsplit("/", 1)[-1])
            if doc["update_type"] == "delete":
                active.pop(key, None)
            else:
                active[key] = to_active(dumps(_settled(doc)))
    return active


def _settled(doc: dict) -> dict:
    """A draft as provisioned: no pending update_type, on the object nor on its rules."""
    settled = {**doc, "update_type": None}
    for field in ("rules", "deny_rules"):
        if field in settled:
            settled[field] = [{**rule, "update_type": None} for rule in settled[field]]
    return settled


def _refuse_missing_dependencies(call: Call, active: dict[tuple[str, str], str]) -> None:
    missing = set()
    for text in active.values():
        for _state, kind, obj_id in referenced_policy_hrefs(text):
            if (kind, obj_id) not in active:
                missing.add(f"/orgs/{call.org_id}/sec_policy/draft/{kind}/{obj_id}")
    if missing:
        raise invalid(
            "provisioning would leave active policy referring to objects that are not provisioned; include them"
            f" in the change subset: {', '.join(sorted(missing)[:10])}",
            "provision_dependency_missing",
        )


def _write_active(call: Call, chosen: dict[str, list[dict]]) -> None:
    store = call.lab.store
    for kind, docs in chosen.items():
        for doc in docs:
            obj_id = doc["href"].rsplit("/", 1)[-1]
            if doc["update_type"] == "delete":
                store.remove(call.org_id, kind, obj_id, ACTIVE)
                store.remove(call.org_id, kind, obj_id, DRAFT)
                continue
            settled = _settled(doc)
            store.put(call.org_id, kind, obj_id, settled, DRAFT)
            store.put(call.org_id, kind, obj_id, json.loads(to_active(dumps(settled))), ACTIVE)


def _record_version(call: Call, message: str | None, chosen: dict, active: dict) -> dict:
    version = call.lab.store.next_id(call.org_id, "sec_policy_version")
    counts = {kind: 0 for kind in PROVISION_ORDER}
    for kind, _obj_id in active:
        counts[kind] += 1
    doc = {
        "href": f"/orgs/{call.org_id}/sec_policy/{version}",
        "commit_message": message,
        "version": version,
        "workloads_affected": _workloads_affected(call, chosen),
        "object_counts": counts,
        "created_at": call.lab.stamp(),
        "created_by": {"href": call.user},
    }
    with call.lab.transaction() as db:
        db.execute(
            "INSERT INTO policy_versions (org_id, version, doc) VALUES (?, ?, ?)", (call.org_id, version, dumps(doc))
        )
    return doc


def _workloads_affected(call: Call, chosen: dict[str, list[dict]]) -> int:
    """Workloads inside the scopes of the rule sets this provisioning changes (directly or through objects
    they use). Enforcement boundaries have no scope: changing one affects every workload."""
    lab, org_id = call.lab, call.org_id
    workloads = lab.store.docs(org_id, "workloads")
    if chosen.get("enforcement_boundaries"):
        return len(workloads)
    changed = {doc["href"] for docs in chosen.values() for doc in docs}
    rule_sets = [doc for doc in chosen.get("rule_sets", [])]
    for doc in lab.store.docs(org_id, "rule_sets", DRAFT):
        if doc["href"] not in changed and any(href in dumps(doc) for href in changed):
            rule_sets.append(doc)
    scopes = [scope for rule_set in rule_sets for scope in rule_set.get("scopes", [])]
    if any(not scope for scope in scopes):
        return len(workloads)
    needs = [[_scope_labels(lab, org_id, entry) for entry in scope] for scope in scopes]
    return sum(
        1
        for workload in workloads
        if any(all(labels & {ref["href"] for ref in workload["labels"]} for labels in scope) for scope in needs)
    )


def _scope_labels(lab, org_id: int, entry: dict) -> set[str]:
    if "label" in entry:
        return {entry["label"]["href"]}
    return set(lab.label_group_members(org_id, entry["label_group"]["href"]))


@endpoint
def list_versions(call: Call):
    with call.lab.transaction() as db:
        texts = [
            row[0]
            for row in db.execute(
                "SELECT doc FROM policy_versions WHERE org_id=? ORDER BY version DESC", (call.org_id,)
            )
        ]
    return call.collection(lambda: texts)


@endpoint
def get_version(call: Call):
    with call.lab.transaction() as db:
        row = db.execute(
            "SELECT doc FROM policy_versions WHERE org_id=? AND version=?", (call.org_id, int(call.param("version")))
        ).fetchone()
    if row is None:
        raise not_found(f"/orgs/{call.org_id}/sec_policy/{call.param('version')}")
    return json.loads(row[0])


ROUTES = [
    Route(f"{ORG}/sec_policy/pending", get_pending, methods=["GET"]),
    Route(f"{ORG}/sec_policy", provision, methods=["POST"]),
    Route(f"{ORG}/sec_policy", list_versions, methods=["GET"]),
    Route(f"{ORG}/sec_policy/{{version:id}}", get_version, methods=["GET"]),
]
