# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The PCE's active policy and its workloads, read once: what the compiler works from.

A snapshot is a dict of the PCE's own collections, in the PCE's own shapes (see tools/pcelab/tests/pce_samples):

    {"labels": [...], "label_groups": [...], "ip_lists": [...], "services": [...],
     "rule_sets": [...  each with its "rules" and "deny_rules" ...], "enforcement_boundaries": [...],
     "workloads": [...]}

It comes from the PCE (Snapshot.from_client, one read per collection, async for big ones) or from a dict /
JSON file (Snapshot.from_dict), so tests and offline runs use exactly what the PCE would answer.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import json

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

POLICY_COLLECTIONS = ("label_groups", "ip_lists", "services", "rule_sets", "enforcement_boundaries")
COLLECTIONS = ("labels", *POLICY_COLLECTIONS, "workloads")
# Collections a PCE may not have (enforcement boundaries became deny rules in newer releases).
OPTIONAL_COLLECTIONS = ("enforcement_boundaries",)
ACTIVE_MARK = "/sec_policy/active/"
DRAFT_MARK = "/sec_policy/draft/"


class PolicyError(PceError):
    """Bad input to the policy engine (a malformed snapshot, an unknown option value)."""


def policy_key(href):
    """The version-free key of a policy href: draft and active copies of one object share it."""
    if not isinstance(href, str):
        return href
    return href.replace(DRAFT_MARK, ACTIVE_MARK, 1)


class Snapshot(object):
    """One consistent read of the policy objects and workloads of an org, indexed by href.

    Policy objects are keyed by policy_key(href); when both a draft and an active copy are present (as in
    the PCE's sample payloads), the active one wins. Deleted objects and workloads are left out.
    """

    def __init__(self, data):
        if not isinstance(data, dict):
            raise PolicyError("a policy snapshot must be a JSON object of collections, got %s" % type(data).__name__)
        self.data = {}
        for name in COLLECTIONS:
            items = data.get(name)
            if items is None:
                items = []
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise PolicyError("snapshot collection %r must be a list of objects" % name)
            self.data[name] = items
        self.labels = {}
        for label in self.data["labels"]:
            if label.get("href") and not label.get("deleted"):
                self.labels[label["href"]] = label
        self.label_groups = _policy_objects(self.data["label_groups"])
        self.ip_lists = _policy_objects(self.data["ip_lists"])
        self.services = _policy_objects(self.data["services"])
        self.rule_sets = _sorted_values(_policy_objects(self.data["rule_sets"]))
        self.enforcement_boundaries = _sorted_values(_policy_objects(self.data["enforcement_boundaries"]))
        workloads = {}
        for workload in self.data["workloads"]:
            if workload.get("href") and not workload.get("deleted"):
                workloads[workload["href"]] = workload
        self.workloads = _sorted_values(workloads)

    @classmethod
    def from_dict(cls, data):
        return cls(data)

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except ValueError as error:
            raise PolicyError("the policy snapshot is not valid JSON: %s" % error) from None
        return cls(data)

    @classmethod
    def from_file(cls, path):
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8")
        except (OSError, UnicodeError) as error:
            raise PolicyError("cannot read the policy snapshot %s: %s" % (path, error)) from None
        return cls.from_json(text)

    @classmethod
    def from_client(cls, client, version="active"):
        """Read every collection once (the client switches to async requests for big ones)."""
        return cls(read_collections(client, version))

    def to_dict(self):
        """The collections as read: what from_dict() takes back."""
        return dict((name, list(self.data[name])) for name in COLLECTIONS)

    def counts(self):
        return {
            "labels": len(self.labels),
            "label_groups": len(self.label_groups),
            "ip_lists": len(self.ip_lists),
            "services": len(self.services),
            "rule_sets": len(self.rule_sets),
            "enforcement_boundaries": len(self.enforcement_boundaries),
            "workloads": len(self.workloads),
        }


def read_collections(client, version="active"):
    """The snapshot dict of the PCE that `client` talks to: labels, `version` policy, workloads."""
    data = {"labels": client.get_collection("labels")}
    for name in POLICY_COLLECTIONS:
        path = "sec_policy/%s/%s" % (version, name)
        try:
            data[name] = client.get_collection(path)
        except PceError as error:
            if name in OPTIONAL_COLLECTIONS and error.status == 404:
                data[name] = []
                continue
            raise
    for rule_set in data["rule_sets"]:
        # The PCE answers rule sets with their rules inline; fetch them only from one that left them out.
        if "rules" not in rule_set and rule_set.get("href"):
            rule_set["rules"] = client.get_collection(rule_set["href"] + "/sec_rules")
    data["workloads"] = client.get_collection("workloads")
    return data


def _policy_objects(items):
    found = {}
    for item in items:
        href = item.get("href")
        if not href or item.get("deleted_at") or item.get("update_type") == "delete":
            continue
        key = policy_key(href)
        current = found.get(key)
        if current is not None and ACTIVE_MARK in current.get("href", "") and ACTIVE_MARK not in href:
            continue  # an active copy is already there: it wins over the draft
        found[key] = item
    return found


def _sorted_values(objects):
    return [objects[key] for key in sorted(objects)]
