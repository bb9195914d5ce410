"""Rules inside rule sets: .../rule_sets/{id}/sec_rules (allow) and .../rule_sets/{id}/deny_rules.

Rules are stored inside their rule set's document; changing one makes the rule set pending ("update").
"""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from pcelab import validate as v
from pcelab.contract import contract
from pcelab.errors import invalid, not_found
from pcelab.http import Call, endpoint, require_body
from pcelab.policy_model import (
    ACTIVE,
    DRAFT,
    NETWORK_TYPES,
    RESOLVE_AS,
    check_actors,
    check_services,
    href_of,
    mark_updated,
)
from pcelab.store import dumps

ORG = "/api/v2/orgs/{org_id:id}"
ALLOW, DENY = "sec_rules", "deny_rules"
LIST_FIELD = {ALLOW: "rules", DENY: "deny_rules"}
ACTOR_KINDS = ("actors", "label", "label_group", "ip_list", "workload", "virtual_service")
BOOLEAN_FIELDS = {
    ALLOW: ("enabled", "unscoped_consumers", "sec_connect", "stateless", "machine_auth"),
    DENY: ("enabled", "unscoped_consumers", "override"),
}
FIELDS = {
    ALLOW: contract("rules").writable(),
    DENY: (*BOOLEAN_FIELDS[DENY], "providers", "consumers", "ingress_services", "description", "network_type"),
}
DEFAULTS = {
    ALLOW: {
        "description": "",
        "enabled": True,
        "consuming_security_principals": [],
        "sec_connect": False,
        "stateless": False,
        "machine_auth": False,
        "unscoped_consumers": False,
        "network_type": "brn",
        "resolve_labels_as": {"providers": ["workloads"], "consumers": ["workloads"]},
    },
    DENY: {"description": "", "enabled": True, "override": False, "unscoped_consumers": False, "network_type": "brn"},
}


def check_rule(call: Call, rule_kind: str, body: Any, creating: bool) -> dict:
    what = "rule" if rule_kind == ALLOW else "deny rule"
    body = v.obj(what, body)
    v.known_fields(body, FIELDS[rule_kind], what)
    if creating:
        v.required(body, ("providers", "consumers", "ingress_services"), what)
    fields: dict = {}
    for name, value in body.items():
        if name in BOOLEAN_FIELDS[rule_kind]:
            fields[name] = v.boolean(name, value)
        elif name in ("providers", "consumers"):
            fields[name] = check_actors(call, name, value, ACTOR_KINDS)
            if not fields[name]:
                raise invalid(f"{what}: {name} must name at least one actor")
        elif name == "ingress_services":
            fields[name] = check_services(call, name, value)
        elif name == "resolve_labels_as":
            fields[name] = _resolve_labels_as(value)
        elif name == "network_type":
            fields[name] = v.choice(name, value, NETWORK_TYPES)
        elif name == "consuming_security_principals":
            fields[name] = _security_principals(call, name, value)
        else:
            fields[name] = v.optional_text(name, value)
    return fields


def _security_principals(call: Call, name: str, value: Any) -> list[dict]:
    """User-based rules: references to live security principals (api/security_principals.py)."""
    from pcelab.api.security_principals import live_principal

    hrefs = v.href_refs(name, value)
    for index, href in enumerate(hrefs):
        if live_principal(call.lab, call.org_id, href) is None:
            raise invalid(f"{name}[{index}]: {href} is not an existing security principal", "invalid_uri")
    return [{"href": href} for href in hrefs]


def _resolve_labels_as(value: Any) -> dict:
    entry = v.obj("resolve_labels_as", value)
    v.known_fields(entry, ("providers", "consumers"), "resolve_labels_as")
    v.required(entry, ("providers", "consumers"), "resolve_labels_as")
    result = {}
    for side in ("providers", "consumers"):
        items = v.array(f"resolve_labels_as.{side}", entry[side], 2)
        if not items:
            raise invalid(f"resolve_labels_as.{side} must not be empty")
        result[side] = [v.choice(f"resolve_labels_as.{side}", item, RESOLVE_AS) for item in items]
    return result


def _new_rule(call: Call, rule_set: dict, rule_kind: str, fields: dict) -> dict:
    rule_id = call.lab.store.next_id(call.org_id, rule_kind)
    stamp = call.lab.stamp()
    return {
        "href": f"{rule_set['href']}/{rule_kind}/{rule_id}",
        "created_at": stamp,
        "updated_at": stamp,
        "deleted_at": None,
        "created_by": {"href": call.user},
        "updated_by": {"href": call.user},
        "deleted_by": None,
        "update_type": "create",
        **{key: (dict(value) if isinstance(value, dict) else value) for key, value in DEFAULTS[rule_kind].items()},
        **fields,
    }


def new_rules(call: Call, rule_set: dict, rules: Any) -> list[dict]:
    """Rules given inline when a rule set is created or replaced."""
    bodies = v.array("rules", rules, 1000)
    return [_new_rule(call, rule_set, ALLOW, check_rule(call, ALLOW, body, True)) for body in bodies]


def _rule_set(call: Call, state: str, writable: bool = False) -> dict:
    rule_set_id = call.param("rule_set_id")
    doc = call.lab.store.doc(call.org_id, "rule_sets", rule_set_id, state)
    if doc is None:
        raise not_found(href_of(call.org_id, state, "rule_sets", rule_set_id))
    if writable and doc["update_type"] == "delete":
        raise invalid(f"{doc['href']} is deleted (pending provisioning)", "already_deleted")
    return doc


def _find(rule_set: dict, rule_kind: str, rule_id: str) -> tuple[int, dict]:
    for index, rule in enumerate(rule_set.get(LIST_FIELD[rule_kind], [])):
        if rule["href"].rsplit("/", 1)[-1] == rule_id:
            return index, rule
    raise not_found(f"{rule_set['href']}/{rule_kind}/{rule_id}")


def _in_active(call: Call, rule_href: str) -> bool:
    active = call.lab.store.doc(call.org_id, "rule_sets", call.param("rule_set_id"), ACTIVE)
    active_href = rule_href.replace("/sec_policy/draft/", "/sec_policy/active/")
    return bool(active) and any(
        rule["href"] == active_href for kind in LIST_FIELD.values() for rule in active.get(kind, [])
    )


def creation_changes(rule_set: dict, rule: dict) -> dict:
    """What a rule's create event says changed, in the PCE's own terms (pce_samples/events.json, sec_rule.create):
    the rule list (its rule set) and type set, resolve_labels from resolve_labels_as, and the actors as
    `{"created": [...]}` each marked with the side it is on."""
    return {
        "rule_list": {"before": None, "after": {"href": rule_set["href"]}},
        "type": {"before": None, "after": "SecRule"},
        "resolve_labels": {"before": None, "after": rule.get("resolve_labels_as")},
        "providers": {"created": [{"provider": True, **actor} for actor in rule.get("providers", [])]},
        "consumers": {"created": [{"provider": False, **actor} for actor in rule.get("consumers", [])]},
    }


def _save(call: Call, rule_set: dict, event: str, rule: dict, changes: dict | None = None) -> None:
    mark_updated(call, rule_set)
    call.lab.store.put(call.org_id, "rule_sets", call.param("rule_set_id"), rule_set, DRAFT)
    call.event(event, {event.split(".")[0]: {"href": rule["href"]}}, changes)


def _handlers(rule_kind: str, state: str):
    field = LIST_FIELD[rule_kind]
    event_base = "sec_rule" if rule_kind == ALLOW else "deny_rule"

    @endpoint
    def list_rules(call: Call):
        rules = _rule_set(call, state).get(field, [])
        return call.collection(lambda: [dumps(rule) for rule in rules])

    @endpoint
    def get_rule(call: Call):
        return _find(_rule_set(call, state), rule_kind, call.param("rule_id"))[1]

    @endpoint
    def create_rule(call: Call):
        with call.lab.transaction():
            rule_set = _rule_set(call, DRAFT, writable=True)
            rule = _new_rule(call, rule_set, rule_kind, check_rule(call, rule_kind, require_body(call), True))
            rule_set.setdefault(field, []).append(rule)
            # Only an allow rule's create event has a public sample; deny rules record the create alone.
            changes = creation_changes(rule_set, rule) if rule_kind == ALLOW else None
            _save(call, rule_set, f"{event_base}.create", rule, changes)
        return rule, 201

    @endpoint
    def update_rule(call: Call):
        with call.lab.transaction():
            rule_set = _rule_set(call, DRAFT, writable=True)
            index, rule = _find(rule_set, rule_kind, call.param("rule_id"))
            fields = check_rule(call, rule_kind, require_body(call), False)
            changes = {
                key: {"before": rule.get(key), "after": value}
                for key, value in fields.items()
                if rule.get(key) != value
            }
            rule.update(
                fields,
                updated_at=call.lab.stamp(),
                updated_by={"href": call.user},
                update_type="update" if _in_active(call, rule["href"]) else "create",
            )
            rule_set[field][index] = rule
            _save(call, rule_set, f"{event_base}.update", rule, changes)
        return None, 204

    @endpoint
    def delete_rule(call: Call):
        with call.lab.transaction():
            rule_set = _rule_set(call, DRAFT, writable=True)
            index, rule = _find(rule_set, rule_kind, call.param("rule_id"))
            del rule_set[field][index]
            _save(call, rule_set, f"{event_base}.delete", rule)
        return None, 204

    return list_rules, get_rule, create_rule, update_rule, delete_rule


def _routes() -> list[Route]:
    routes = []
    for rule_kind in (ALLOW, DENY):
        for state in (DRAFT, ACTIVE):
            list_rules, get_rule, create_rule, update_rule, delete_rule = _handlers(rule_kind, state)
            base = f"{ORG}/sec_policy/{state}/rule_sets/{{rule_set_id:id}}/{rule_kind}"
            routes.append(Route(base, list_rules, methods=["GET"]))
            routes.append(Route(f"{base}/{{rule_id:id}}", get_rule, methods=["GET"]))
            if state == DRAFT:
                routes.append(Route(base, create_rule, methods=["POST"]))
                routes.append(Route(f"{base}/{{rule_id:id}}", update_rule, methods=["PUT"]))
                routes.append(Route(f"{base}/{{rule_id:id}}", delete_rule, methods=["DELETE"]))
    return routes


ROUTES = _routes()
