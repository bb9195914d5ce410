"""`GET labels?usage=true`: each label's `usage` object, one boolean per kind of object that can use a label.

The field list is the union of two public clients of the real API: brian1917/illumioapi (Go, labels.go,
`LabelUsage`: virtual_server, label_group, ruleset, static_policy_scopes, pairing_profile, permission, workload,
container_workload, firewall_coexistence_scope, containers_inherit_host_policy_scopes,
container_workload_profile, blocked_connection_reject_scope, enforcement_boundary,
loopback_interfaces_in_policy_scopes, virtual_service) and the official Python SDK (illumio 1.1.3,
`LabelUsage`, which adds `rule`), plus `label_mapping_rule` (the rule-based label mapping of the 25.x REST
guide; the lab has no label mapping rules, so it is always false). The REST guide describes the parameter:
"indicate label usage ... RBAC scope for user permissions, workload, virtual service, pairing profile, selective
enforcement, virtual server, or ruleset, and if the label belongs to a label group".

What the lab can use a label for, and so may answer true: workload (live workloads), label_group,
ruleset (anywhere in a rule set: scopes or rules), rule (a rule's or deny rule's providers/consumers),
enforcement_boundary, pairing_profile (through the pairing module's `label_usage` hook). Draft and active
policy both count, as they do for deleting a label. The other kinds do not exist in the lab: always false.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pcelab.core import Lab

FIELDS = (
    "label_group",
    "ruleset",
    "rule",
    "static_policy_scopes",
    "pairing_profile",
    "permission",
    "workload",
    "container_workload",
    "firewall_coexistence_scope",
    "containers_inherit_host_policy_scopes",
    "container_workload_profile",
    "blocked_connection_reject_scope",
    "enforcement_boundary",
    "loopback_interfaces_in_policy_scopes",
    "virtual_server",
    "virtual_service",
    "label_mapping_rule",
)
# (lab, org_id) -> {usage field: label hrefs in use that way}; endpoint modules add theirs (`label_usage`).
UsageSource = Callable[["Lab", int], "dict[str, set[str]]"]
_LABEL_HREF = re.compile(r'"(/orgs/\d+/labels/\d+)"')


def _hrefs(texts) -> set[str]:
    """Label hrefs named in JSON texts. A label href names only a label: a text search is exact."""
    found: set[str] = set()
    for text in texts:
        found.update(_LABEL_HREF.findall(text))
    return found


def in_use(lab: Lab, org_id: int) -> dict[str, set[str]]:
    """Usage field -> hrefs of the labels used that way, for the whole org (computed once per request)."""
    store = lab.store
    used: dict[str, set[str]] = {field: set() for field in FIELDS}
    used["workload"] = _hrefs(store.texts(org_id, "workloads"))
    for state in ("draft", "active"):
        used["label_group"] |= _hrefs(store.texts(org_id, "label_groups", state))
        used["enforcement_boundary"] |= _hrefs(store.texts(org_id, "enforcement_boundaries", state))
        for text in store.texts(org_id, "rule_sets", state):
            used["ruleset"] |= _hrefs([text])
            rule_set = json.loads(text)
            rules = [*rule_set.get("rules", []), *rule_set.get("deny_rules", [])]
            actors = [[rule.get("providers", []), rule.get("consumers", [])] for rule in rules]
            used["rule"] |= _hrefs([json.dumps(actors)])
    for source in lab.label_usage_sources:
        for field, hrefs in source(lab, org_id).items():
            used[field] |= set(hrefs)
    return used


def usage_of(href: str, used: dict[str, set[str]]) -> dict[str, bool]:
    return {field: href in used[field] for field in FIELDS}
