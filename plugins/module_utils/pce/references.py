# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Named PCE objects (IP lists, services, label groups, workloads ...) <-> hrefs, matched exactly.

Users write names, never hrefs. The PCE's `name` filters match partially and collections are capped,
so every lookup reads the whole (filtered) collection and keeps only exact matches. A resolver reads
each collection at most once per module run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError

# kind -> (collection under the org, field that names an object, is a draft policy object)
KINDS = {
    "ip_list": ("ip_lists", "name", True),
    "service": ("services", "name", True),
    "label_group": ("label_groups", "name", True),
    "rule_set": ("rule_sets", "name", True),
    "enforcement_boundary": ("enforcement_boundaries", "name", True),
    "virtual_service": ("virtual_services", "name", True),
    "workload": ("workloads", "hostname", False),
    "pairing_profile": ("pairing_profiles", "name", False),
}
# How users create each kind, for "does not exist" messages.
CREATED_BY = {
    "ip_list": "microseg.illumio.ip_list",
    "service": "microseg.illumio.service",
    "label_group": "microseg.illumio.label_group",
    "rule_set": "microseg.illumio.rule_set",
    "enforcement_boundary": "microseg.illumio.deny_rule",
    "workload": "microseg.illumio.workload",
    "pairing_profile": "microseg.illumio.pairing_profile",
}


class ReferenceResolver(object):
    """Resolves names of one org's objects to hrefs and back, with one read per collection and run."""

    def __init__(self, client, policy_version="draft"):
        self.client = client
        self.policy_version = policy_version
        self._collections = {}

    def collection_path(self, kind):
        endpoint, _field, is_policy = _kind(kind)
        prefix = "sec_policy/%s/" % self.policy_version if is_policy else ""
        return self.client.org_path(prefix + endpoint)

    def objects(self, kind):
        """Every live object of a kind (read once, then cached); drafts whose deletion is pending are left out."""
        if kind not in self._collections:
            found = self.client.get_collection(self.collection_path(kind))
            self._collections[kind] = [obj for obj in found if not is_pending_deletion(obj)]
        return self._collections[kind]

    def forget(self, kind=None):
        """Drop cached collections (one kind, or all) after objects were created, renamed or deleted."""
        if kind is None:
            self._collections.clear()
        else:
            self._collections.pop(kind, None)

    def find(self, kind, name):
        """The one object of `kind` whose name (hostname for workloads) equals `name` exactly, or None."""
        _endpoint, field, _is_policy = _kind(kind)
        return the_live_one(self.objects(kind), name, _word(kind), field)[0]

    def href(self, kind, name):
        """The href of the object of `kind` named `name`; a PceError that says how to create it otherwise."""
        found = self.find(kind, name)
        if found is None:
            hint = " (create it with %s first)" % CREATED_BY[kind] if kind in CREATED_BY else ""
            raise PceError("%s %r does not exist on the PCE%s" % (_word(kind), name, hint))
        return found["href"]

    def name(self, kind, href):
        """The name of the object an href points to, or the href itself when it is not in the collection."""
        _endpoint, field, is_policy = _kind(kind)
        wanted = _version_free(href) if is_policy else href
        for obj in self.objects(kind):
            if (_version_free(obj["href"]) if is_policy else obj["href"]) == wanted:
                return obj.get(field)
        return href


def the_live_one(candidates, name, word, field="name"):
    """(the one live candidate whose `field` equals `name` exactly, or None; whether one is pending deletion).

    The PCE's name filters match partially, so whatever was read is filtered here for an exact match; two
    live objects of the same name are an error rather than a guess.
    """
    named = [obj for obj in candidates if obj.get(field) == name]
    live = [obj for obj in named if not is_pending_deletion(obj)]
    if len(live) > 1:
        raise PceError(
            "%d %ss are named %r; rename or delete all but one on the PCE: %s"
            % (len(live), word, name, ", ".join(obj["href"] for obj in live))
        )
    return (live[0] if live else None), len(live) < len(named)


def is_pending_deletion(obj):
    """A deleted workload, or a provisioned policy object deleted in draft: the PCE still lists it (until the
    deletion is provisioned), but it is gone for every other purpose."""
    return obj.get("update_type") == "delete" or bool(obj.get("deleted_at")) or obj.get("deleted") is True


def _kind(kind):
    if kind not in KINDS:
        raise PceError("unknown kind of PCE object %r" % (kind,))
    return KINDS[kind]


def _word(kind):
    return kind.replace("_", " ")


def _version_free(href):
    """`/orgs/1/sec_policy/draft/ip_lists/7` and `.../active/ip_lists/7` name the same IP list."""
    parts = href.split("/")
    if len(parts) > 4 and parts[3] == "sec_policy":
        parts[4] = "*"
    return "/".join(parts)
