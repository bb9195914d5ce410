# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Workloads: one at a time (create / update / delete / unpair) and in bulk, planned before anything is sent.

Users write labels as `{key: value}` and interfaces as `{name, address, cidr_block, default_gateway_address}`;
results and diffs show workloads that way too, never with label hrefs. Unmanaged workloads (made through
the API) can change in every field; managed ones (paired VENs) only in labels, enforcement_mode,
visibility_level, name and description, and they leave the PCE by unpairing their VEN.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import ipaddress
import json

from ansible_collections.microseg.illumio.plugins.module_utils.pce.client import UncertainOutcome
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import LabelResolver
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import (
    CREATE_RESENDS,
    EXTERNAL_DATA,
    changed_then_failed,
    create_once,
)

ENFORCEMENT_MODES = ("idle", "visibility_only", "selective", "full")
VISIBILITY_LEVELS = ("flow_summary", "flow_drops", "flow_off", "enhanced_data_collection", "flow_full_detail")
FIREWALL_RESTORE = ("saved", "default", "disable")
# What the VEN of a managed workload does not own (everything else it reports itself).
MANAGED_WRITABLE = ("labels", "enforcement_mode", "visibility_level", "name", "description")
TEXT_FIELDS = (
    "name",
    "description",
    "os_id",
    "os_detail",
    "data_center",
    "data_center_zone",
    "service_provider",
    *EXTERNAL_DATA,
)
# Every field a workload task or bulk item may set, besides hostname and labels.
SETTABLE_FIELDS = (
    *TEXT_FIELDS,
    "enforcement_mode",
    "visibility_level",
    "public_ip",
    "interfaces",
    "ignored_interface_names",
)
ITEM_FIELDS = ("hostname", "labels", *SETTABLE_FIELDS)
INTERFACE_FIELDS = ("name", "address", "cidr_block", "default_gateway_address")
BULK_LIMIT = 1000
DIFF_HOSTNAMES = 100
BULK_DONE = {"bulk_create": "created", "bulk_update": "updated", "bulk_delete": "deleted"}
# How long a run whose new workload ties with another run's (same created_at) waits for that run to give way.
TIE_WAIT_SECONDS = 1.0


# --- user form -> PCE form ------------------------------------------------------------------------------------
def canonical_ip(value, option):
    """An IP address in the form the PCE answers with (`2001:db8::1`, not `2001:DB8:0::1`)."""
    try:
        return str(ipaddress.ip_address(str(value).strip()))
    except ValueError:
        raise PceError("%s is not a valid IP address: %r" % (option, value)) from None


def normalize_interface(entry, option):
    """One interface as the PCE takes it, with only the four fields users set (None when not given)."""
    if not isinstance(entry, dict):
        raise PceError("%s must be a dict with name and address, got %r" % (option, entry))
    unknown = sorted(set(entry) - set(INTERFACE_FIELDS))
    if unknown:
        raise PceError("%s: unknown field %s (allowed: %s)" % (option, unknown[0], ", ".join(INTERFACE_FIELDS)))
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PceError("%s.name is required (the interface name, for example eth0)" % option)
    if entry.get("address") in (None, ""):
        raise PceError("%s.address is required" % option)
    address = canonical_ip(entry["address"], option + ".address")
    max_prefix = 128 if ":" in address else 32
    cidr = entry.get("cidr_block")
    if cidr is not None:
        text = str(cidr).strip()
        if isinstance(cidr, bool) or not text.isdigit() or not 0 <= int(text) <= max_prefix:
            raise PceError("%s.cidr_block must be a prefix length from 0 to %d, got %r" % (option, max_prefix, cidr))
        cidr = int(text)
    gateway = entry.get("default_gateway_address")
    if gateway is not None and gateway != "":
        gateway = canonical_ip(gateway, option + ".default_gateway_address")
        if (":" in gateway) != (":" in address):
            raise PceError("%s: default_gateway_address and address must both be IPv4 or both IPv6" % option)
    else:
        gateway = None
    return {"name": name, "address": address, "cidr_block": cidr, "default_gateway_address": gateway}


def interface_payload(interface):
    return dict((field, value) for field, value in interface.items() if value is not None)


def _interface_key(interface):
    address = interface.get("address")
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        pass
    gateway = interface.get("default_gateway_address")
    if gateway:
        try:
            gateway = str(ipaddress.ip_address(gateway))
        except ValueError:
            pass
    return (interface.get("name") or "", address or "", interface.get("cidr_block"), gateway or None)


def same_interfaces(current, wanted):
    """Interfaces compare as sets of (name, address, cidr_block, gateway); the PCE's other fields don't count."""
    return sorted(_interface_key(i) for i in current or []) == sorted(_interface_key(i) for i in wanted or [])


def label_spec(labels, option, purge):
    """`{key: value}` -> {key: value or None}; None means "no label of this key" (only with purge_labels=false)."""
    if labels is None:
        return None
    if not isinstance(labels, dict):
        raise PceError("%s must be a dict of label key: value, got %r" % (option, labels))
    spec = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key.strip():
            raise PceError("%s: label keys must be non-empty strings, got %r" % (option, key))
        if value is None:
            spec[key] = None
            continue
        if isinstance(value, (dict, list, bool)) or str(value).strip() == "":
            raise PceError("%s: the value of label key %s must be a non-empty string, got %r" % (option, key, value))
        spec[key] = str(value)
    if purge:
        spec = dict((key, value) for key, value in spec.items() if value is not None)
    return spec


def _same_text(current, wanted):
    return (current or "") == (wanted or "")


class WorkloadPlanner(object):
    """Turns workloads written in user form into PCE payloads and changes; reads labels once per run."""

    def __init__(self, client, purge_labels=True):
        self.client = client
        self.purge_labels = purge_labels
        self.labels = LabelResolver(client)

    # --- reading -------------------------------------------------------------------------------------------
    def collection_path(self):
        return self.client.org_path("workloads")

    def read(self, query=None, include_deleted=False):
        """Workloads that are not deleted, and with `include_deleted` the deleted ones too (the PCE lists them,
        marked `deleted: true`, only when asked with its include_deleted query parameter)."""
        if include_deleted:
            return self.client.get_collection(self.collection_path(), dict(query or {}, include_deleted="true"))
        return [doc for doc in self.client.get_collection(self.collection_path(), query) if not doc.get("deleted")]

    def find(self, field, value):
        """The one workload whose `field` (hostname or name) equals `value` exactly, or None."""
        matches = [doc for doc in self.read({field: value}) if doc.get(field) == value]
        if len(matches) > 1:
            raise PceError(
                "%d workloads have %s %r; name one by a unique %s: %s"
                % (len(matches), field, value, field, ", ".join(doc["href"] for doc in matches))
            )
        return matches[0] if matches else None

    def same_named(self, field, value):
        """The live workloads whose `field` (hostname or name) equals `value` exactly."""
        return [doc for doc in self.read({field: value}) if doc.get(field) == value]

    # --- wanted state --------------------------------------------------------------------------------------
    def wanted(self, item, where="workload"):
        """The fields `item` sets, checked and in PCE form (labels separately, see label_spec)."""
        wanted = {}
        for field in SETTABLE_FIELDS:
            value = item.get(field)
            if value is None:
                continue
            option = "%s: %s" % (where, field)
            if field in TEXT_FIELDS:
                if isinstance(value, (dict, list)):
                    raise PceError("%s must be a string" % option)
                value = str(value)
            elif field == "enforcement_mode":
                _choice(value, ENFORCEMENT_MODES, option)
            elif field == "visibility_level":
                _choice(value, VISIBILITY_LEVELS, option)
            elif field == "public_ip":
                value = canonical_ip(value, option)
            elif field == "interfaces":
                if not isinstance(value, list):
                    raise PceError("%s must be a list of interfaces" % option)
                value = [normalize_interface(entry, "%s[%d]" % (option, n)) for n, entry in enumerate(value)]
            elif field == "ignored_interface_names":
                if not isinstance(value, list) or not all(isinstance(name, str) and name for name in value):
                    raise PceError("%s must be a list of interface names" % option)
                value = list(value)
            wanted[field] = value
        return wanted

    def label_hrefs(self, spec, current=None):
        """Hrefs of the labels a workload should carry: spec replaces them all (purge) or per key."""
        if self.purge_labels or current is None:
            chosen = dict((key, value) for key, value in spec.items() if value is not None)
        else:
            chosen = dict(self.label_pairs(current))
            for key, value in spec.items():
                if value is None:
                    chosen.pop(key, None)
                else:
                    chosen[key] = value
        return [self.labels.href(key, value) for key, value in sorted(chosen.items())]

    def existing_label_href(self, key, value):
        """The href of label key=value, or None when the PCE has no such label."""
        self.labels.describe("")  # reads the labels (once); a failure to read them is raised, not hidden
        try:
            return self.labels.href(key, value)
        except PceError:
            return None

    def label_pairs(self, doc):
        """(key, value) of each label of a workload document."""
        pairs = []
        for label in doc.get("labels") or []:
            if label.get("key") is not None and label.get("value") is not None:
                pairs.append((label["key"], label["value"]))
            else:
                described = self.labels.describe(label.get("href"))
                pairs.append((described.get("key", label.get("href")), described.get("value", label.get("href"))))
        return pairs

    def create_payload(self, identity, wanted, spec):
        payload = dict(identity)
        for field, value in wanted.items():
            payload[field] = [interface_payload(i) for i in value] if field == "interfaces" else value
        if spec is not None:
            payload["labels"] = [{"href": href} for href in self.label_hrefs(spec)]
        return payload

    def changes(self, current, wanted, spec):
        """The PCE fields to send so that `current` becomes what `wanted` and `spec` say."""
        changed = {}
        for field, value in wanted.items():
            now = current.get(field)
            if field in TEXT_FIELDS:
                differs = not _same_text(now, value)
            elif field == "interfaces":
                differs = not same_interfaces(now, value)
                value = [interface_payload(i) for i in value]
            elif field == "ignored_interface_names":
                differs = sorted(now or []) != sorted(value)
            else:
                differs = now != value
            if differs:
                changed[field] = value
        if spec is not None:
            hrefs = self.label_hrefs(spec, current)
            if sorted(hrefs) != sorted(label.get("href") for label in current.get("labels") or []):
                changed["labels"] = [{"href": href} for href in hrefs]
        return changed

    # --- presenting ----------------------------------------------------------------------------------------
    def view(self, doc):
        """A workload in user form: labels as {key: value}, interfaces with their four fields."""
        if not doc:
            return {}
        shown = {
            "href": doc.get("href"),
            "hostname": doc.get("hostname"),
            "managed": is_managed(doc),
            "online": doc.get("online"),
            "ven_href": (doc.get("ven") or {}).get("href"),
            "labels": dict(self.label_pairs(doc)),
            "interfaces": [
                dict((field, interface.get(field)) for field in INTERFACE_FIELDS)
                for interface in doc.get("interfaces") or []
            ],
        }
        for field in (*TEXT_FIELDS, "enforcement_mode", "visibility_level", "public_ip"):
            shown[field] = doc.get(field)
        shown["ignored_interface_names"] = list(doc.get("ignored_interface_names") or [])
        return shown

    def diff_view(self, doc):
        """What diff shows: user form without hrefs and without what only the VEN reports."""
        shown = self.view(doc)
        for field in ("href", "ven_href", "online"):
            shown.pop(field, None)
        return shown


def is_managed(doc):
    """A workload with a VEN (or an agent href) is managed: paired, not made through the API."""
    return bool((doc.get("ven") or {}).get("href") or (doc.get("agent") or {}).get("href"))


def refused_managed_changes(changes):
    return sorted(field for field in changes if field not in MANAGED_WRITABLE)


def _choice(value, choices, option):
    if value not in choices:
        raise PceError("%s must be one of %s, got %r" % (option, ", ".join(choices), value))


def managed_refusal(doc, refused):
    return PceError(
        "workload %s is managed by a VEN, which reports its %s: that cannot be changed here (only %s can)"
        % (doc.get("hostname") or doc.get("name") or doc.get("href"), ", ".join(refused), ", ".join(MANAGED_WRITABLE)),
        token="managed_workload_property_read_only",  # noqa: S106 - a PCE error token, not a secret
    )


# --- one workload --------------------------------------------------------------------------------------------
def ensure_workload(client, params, check_mode=False):
    """Bring one workload (found by hostname, else by name) to params["state"]; return the module result."""
    planner = WorkloadPlanner(client, purge_labels=params.get("purge_labels", True) is not False)
    field = "hostname" if params.get("hostname") is not None else "name"
    value = params.get(field)
    if value is None or not str(value).strip():
        raise PceError("hostname or name must be given and not empty")
    current = planner.find(field, value)
    if params.get("state") == "absent":
        return _ensure_absent(client, planner, current, params.get("firewall_restore") or "saved", check_mode)
    wanted = planner.wanted(params)
    spec = label_spec(params.get("labels"), "labels", planner.purge_labels)
    if current is None:
        payload = planner.create_payload({field: value}, wanted, spec)
        if check_mode:
            return _result(planner, True, None, payload)
        # Looked up again right before creating: another run may have made it while this one planned.
        current = oldest(planner.same_named(field, value))
    if current is None:
        return _create_workload(client, planner, field, value, payload, wanted, spec)
    return _converge(client, planner, current, wanted, spec, check_mode)


def _create_workload(client, planner, field, value, payload, wanted, spec):
    created, ours = create_once(
        client,
        planner.collection_path(),
        payload,
        lambda: oldest(planner.same_named(field, value)),
        "a workload with %s %s" % (field, value),
    )
    if not ours:
        # Made by another run since this one looked: only bring it to the wanted state.
        return _converge(client, planner, created, wanted, spec, False)
    if not created or not created.get("href"):
        return _result(planner, True, None, created or payload)
    try:
        winner, removed = settle_duplicates(client, planner, field, value, [created])
        if not removed:
            return _result(planner, True, None, created)
        result = _converge(client, planner, winner, wanted, spec, False)
    except PceError as error:
        made = {"workload": planner.view(created)}
        raise changed_then_failed(error, [created["href"]], "workloads (created)", made) from None
    result.setdefault("warnings", []).append(_race_warning(field, value, winner, removed))
    return result


def _converge(client, planner, current, wanted, spec, check_mode):
    changes = planner.changes(current, wanted, spec)
    if not changes:
        return _result(planner, False, current, current)
    refused = refused_managed_changes(changes) if is_managed(current) else []
    if refused:
        raise managed_refusal(current, refused)
    if not check_mode:
        client.put(current["href"], changes)
    # The PCE answers a PUT with 204 No Content: the new state is the old one plus the changes.
    return _result(planner, True, current, dict(current, **changes))


# --- concurrent runs ---------------------------------------------------------------------------------------------
# The PCE does not keep hostnames unique, so two runs that both found no workload named h.example both create
# one. After creating, a run looks again; when there are more, the oldest (created_at, then href) stays, and each
# run deletes the ones it made that are not the oldest. The run that made the newer one always sees the older
# one (it was stored first), so two runs end with one workload.
def _age(doc):
    return (doc.get("created_at") or "", doc.get("href") or "")


def oldest(docs):
    """The workload created first (by created_at, then href), or None."""
    return min(docs, key=_age) if docs else None


def settle_duplicates(client, planner, field, value, own):
    """(workload that stays, hrefs deleted) when a concurrent run made a workload of the same `field` value.

    `own` are the workloads this run made; only those are ever deleted.
    """
    own_hrefs = set(doc.get("href") for doc in own)
    docs = planner.same_named(field, value)
    winner = oldest(docs)
    if winner is None or len(docs) == 1:
        return winner or own[0], []
    if winner["href"] in own_hrefs:
        ties = [doc for doc in docs if doc["href"] not in own_hrefs and _age(doc)[0] == _age(winner)[0]]
        if not ties:
            return winner, []  # the other run made a newer one and deletes it itself
        # Created in the same millisecond: the other run may have looked before this one's was stored, and will
        # then not give way. Wait for it; if its workload is still there, this run gives way instead.
        client.sleep(TIE_WAIT_SECONDS)
        docs = planner.same_named(field, value)
        others = [doc for doc in docs if doc["href"] not in own_hrefs]
        if not others:
            return winner, []
        winner = oldest(others)
    removed = []
    for doc in docs:
        if doc["href"] in own_hrefs and doc["href"] != winner["href"]:
            client.delete(doc["href"])
            removed.append(doc["href"])
    return winner, removed


def _race_warning(field, value, winner, removed):
    return (
        "another run created a workload with %s %s at the same time; the older one (%s) was kept and the one "
        "this run had made was deleted (%s)" % (field, value, winner.get("href"), ", ".join(removed))
    )


def _ensure_absent(client, planner, current, firewall_restore, check_mode):
    if current is None:
        return _result(planner, False, None, None)
    if firewall_restore not in FIREWALL_RESTORE:
        raise PceError("firewall_restore must be one of %s" % ", ".join(FIREWALL_RESTORE))
    result = _result(planner, True, current, None)
    result["unpaired"] = is_managed(current)
    if check_mode:
        return result
    if is_managed(current):
        unpair(client, current, firewall_restore)
    else:
        try:
            client.delete(current["href"])
        except PceError as error:
            # Deleted by another run since this one looked (the PCE then says not found or already deleted).
            if error.status not in (404, 406) or any(doc["href"] == current["href"] for doc in planner.read()):
                raise
            return _result(planner, False, None, None)
    return result


def unpair(client, doc, firewall_restore="saved"):
    """Unpair the VEN of a managed workload; the PCE then removes the workload."""
    ven_href = (doc.get("ven") or {}).get("href")
    if not ven_href:
        raise PceError("workload %s has no VEN href to unpair" % doc.get("href"))
    answer = client.put(
        client.org_path("vens/unpair"), {"vens": [{"href": ven_href}], "firewall_restore": firewall_restore}
    )
    errors = (answer or {}).get("errors") if isinstance(answer, dict) else None
    if errors:
        raise PceError(
            "the PCE did not unpair the VEN of %s: %s" % (doc.get("hostname") or doc.get("href"), _messages(errors)),
            token=errors[0].get("token") if isinstance(errors[0], dict) else None,
        )


def _messages(errors):
    parts = []
    for error in errors:
        if isinstance(error, dict):
            parts.append("%s (%s)" % (error.get("message"), error.get("token")))
        else:
            parts.append(str(error))
    return "; ".join(parts)


def _result(planner, changed, before, after):
    return {
        "changed": changed,
        "workload": planner.view(after),
        "diff": {"before": planner.diff_view(before), "after": planner.diff_view(after)},
    }


# --- many workloads --------------------------------------------------------------------------------------------
class BulkPlan(object):
    """What a bulk run will do: PCE payloads per operation, hostnames, and the items that cannot be done."""

    def __init__(self):
        self.create = []  # (hostname, payload)
        self.wanted = {}  # hostname -> (wanted fields, label spec) of each item to create
        self.update = []  # (hostname, payload with href)
        self.delete = []  # (hostname, {"href": ...})
        self.unchanged = []
        self.failed = []  # {"hostname", "token", "message"}
        self.existing = 0  # listed hostnames that exist now

    def fail(self, hostname, token, message):
        self.failed.append({"hostname": hostname, "token": token, "message": message})


ITEM_ALIASES = {"os_type": "os_id"}


def given_fields(item):
    """An item with only the fields given (null means not given) and aliases folded into their fields."""
    if not isinstance(item, dict):
        return item
    given = {}
    for key, value in item.items():
        if value is None:
            continue
        field = ITEM_ALIASES.get(key, key)
        if field in given and given[field] != value:
            raise PceError("%s and its alias %s differ; give one of them" % (field, key))
        given[field] = value
    return given


def plan_bulk(planner, items, state, existing_docs):
    """Compare the listed workloads with the existing ones (by hostname); nothing is sent here."""
    plan = BulkPlan()
    checked = []
    for index, item in enumerate(items):
        try:
            checked.append(given_fields(item))
        except PceError as error:
            hostname = item.get("hostname") if isinstance(item.get("hostname"), str) else None
            plan.fail(hostname, "invalid_item", "workloads[%d]: %s" % (index, error))
            checked.append(None)
    items = checked
    by_hostname = {}
    for doc in existing_docs:
        if doc.get("hostname"):
            by_hostname.setdefault(doc["hostname"], []).append(doc)
    counts = {}
    for item in items:
        hostname = item.get("hostname") if isinstance(item, dict) else None
        if isinstance(hostname, str):
            counts[hostname] = counts.get(hostname, 0) + 1
    for index, item in enumerate(items):
        where = "workloads[%d]" % index
        if item is None:
            continue  # already reported
        if not isinstance(item, dict):
            plan.fail(None, "invalid_item", "%s must be a dict, got %r" % (where, item))
            continue
        hostname = item.get("hostname")
        if not isinstance(hostname, str) or not hostname.strip():
            plan.fail(hostname, "invalid_item", "%s: hostname is required" % where)
            continue
        if counts[hostname] > 1:
            plan.fail(hostname, "duplicate_hostname", "hostname %s is listed %d times" % (hostname, counts[hostname]))
            continue
        found = by_hostname.get(hostname, [])
        if len(found) > 1:
            hrefs = ", ".join(doc["href"] for doc in found)
            plan.fail(
                hostname, "ambiguous_hostname", "%d workloads have hostname %s: %s" % (len(found), hostname, hrefs)
            )
            continue
        current = found[0] if found else None
        if current is not None:
            plan.existing += 1
        try:
            _plan_item(planner, plan, item, hostname, current, state, "%s (%s)" % (where, hostname))
        except PceError as error:
            plan.fail(hostname, error.token or "invalid_item", str(error))
    return plan


def _plan_item(planner, plan, item, hostname, current, state, where):
    unknown = sorted(set(item) - set(ITEM_FIELDS))
    if unknown:
        raise PceError("%s: unknown field %s (allowed: %s)" % (where, unknown[0], ", ".join(ITEM_FIELDS)))
    if state == "absent":
        if current is None:
            return
        if is_managed(current):
            raise PceError(
                "%s is managed by a VEN and is not deleted in bulk: unpair it with microseg.illumio.workload "
                "state=absent" % hostname,
                token="managed_workload_unpair_required",  # noqa: S106 - a PCE error token, not a secret
            )
        plan.delete.append((hostname, {"href": current["href"]}))
        return
    wanted = planner.wanted(item, where)
    spec = label_spec(item.get("labels"), where + ": labels", planner.purge_labels)
    if current is None:
        plan.create.append((hostname, planner.create_payload({"hostname": hostname}, wanted, spec)))
        plan.wanted[hostname] = (wanted, spec)
        return
    changes = planner.changes(current, wanted, spec)
    if not changes:
        plan.unchanged.append(hostname)
        return
    refused = refused_managed_changes(changes) if is_managed(current) else []
    if refused:
        raise managed_refusal(current, refused)
    plan.update.append((hostname, dict(changes, href=current["href"])))


def run_bulk(client, planner, operation, entries, batch_size, failed):
    """Send `entries` ((hostname, payload) pairs) in chunks; return the hostnames done, add failures."""
    done = []
    path = client.org_path("workloads/" + operation)
    for start in range(0, len(entries), batch_size):
        chunk = entries[start : start + batch_size]
        try:
            answer = client.put(path, [payload for _hostname, payload in chunk])
        except PceError as error:
            for hostname, _payload in chunk:
                failed.append({"hostname": hostname, "token": error.token or "request_failed", "message": str(error)})
            continue
        answers = answer if isinstance(answer, list) else []
        for position, (hostname, _payload) in enumerate(chunk):
            outcome = answers[position] if position < len(answers) else None
            problem = _bulk_problem(outcome, BULK_DONE[operation])
            if problem is None:
                done.append(hostname)
            else:
                failed.append(dict(problem, hostname=hostname))
    return done


def _bulk_problem(outcome, expected):
    """None when the PCE reports the item done, else {"token", "message"}."""
    if not isinstance(outcome, dict):
        return {"token": "no_result", "message": "the PCE returned no result for this item"}
    errors = outcome.get("errors") or []
    if outcome.get("status") == expected and not errors:
        return None
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    token = outcome.get("token") or first.get("token") or outcome.get("status") or "error"
    message = outcome.get("message") or first.get("message") or json.dumps(outcome, sort_keys=True)
    return {"token": token, "message": message}


def ensure_bulk(client, params, check_mode=False):
    """Create / update (state=present) or delete (state=absent) the listed workloads in bulk.

    Returns the module result; when items fail and fail_on_item_errors is set, it carries `msg` for
    fail_json. Items that fail validation stop the run before anything is sent (fail_on_item_errors) or
    are left out (otherwise).
    """
    batch_size = params.get("batch_size") or BULK_LIMIT
    if not 1 <= batch_size <= BULK_LIMIT:
        raise PceError("batch_size must be from 1 to %d (the PCE's limit per bulk request)" % BULK_LIMIT)
    fail_on_errors = params.get("fail_on_item_errors", True) is not False
    items = params.get("workloads") or []
    planner = WorkloadPlanner(client, purge_labels=params.get("purge_labels", True) is not False)
    state = params.get("state") or "present"
    plan = plan_bulk(planner, items, state, planner.read() if items else [])
    failed = list(plan.failed)
    if failed and fail_on_errors:
        result = _bulk_result(plan, [], [], [], failed, changed=False)
        result["msg"] = "%d of %d listed workloads cannot be %s, so nothing was changed; first: %s" % (
            len(failed),
            len(items),
            "deleted" if state == "absent" else "created or updated",
            failed[0]["message"],
        )
        return result
    if check_mode:
        created = [hostname for hostname, _payload in plan.create]
        updated = [hostname for hostname, _payload in plan.update]
        deleted = [hostname for hostname, _payload in plan.delete]
        return _bulk_result(plan, created, updated, deleted, failed, changed=bool(created or updated or deleted))
    created, updated, deleted, warnings = [], [], [], []
    try:
        created.extend(_bulk_create(client, planner, plan, batch_size, failed, warnings))
        updated.extend(run_bulk(client, planner, "bulk_update", plan.update, batch_size, failed))
        deleted.extend(_bulk_delete(client, planner, plan, batch_size, failed))
    except PceError as error:
        result = _bulk_result(plan, created, updated, deleted, failed, changed=bool(created or updated or deleted))
        raise changed_then_failed(error, _changed_hostnames(result), "these workloads", result) from None
    result = _bulk_result(plan, created, updated, deleted, failed, changed=bool(created or updated or deleted))
    if warnings:
        result["warnings"] = warnings
    if failed and fail_on_errors:
        result["msg"] = "%d of %d listed workloads failed on the PCE; first: %s: %s" % (
            len(failed),
            len(items),
            failed[0]["hostname"],
            failed[0]["message"],
        )
        done = _changed_hostnames(result)
        if done:
            result["msg"] += ". The others were changed: %s" % ", ".join(_capped(done))
    return result


def _changed_hostnames(result):
    return sorted(set(result["created"]) | set(result["updated"]) | set(result["deleted"]))


def _by_hostname(docs):
    found = {}
    for doc in docs:
        if doc.get("hostname"):
            found.setdefault(doc["hostname"], []).append(doc)
    return found


def _bulk_create(client, planner, plan, batch_size, failed, warnings):
    """Create the planned workloads; return the hostnames created by this run.

    Right before, the workloads are read again: one that another run made since the plan is updated instead
    of made twice. After, duplicates made by a concurrent run are settled as settle_duplicates does.
    """
    if not plan.create:
        return []
    existing = _by_hostname(planner.read())
    entries = []
    for hostname, payload in plan.create:
        if existing.get(hostname):
            plan.existing += 1
            _plan_convergence(planner, plan, hostname, oldest(existing[hostname]))
        else:
            entries.append((hostname, payload))
    known = set(doc["href"] for docs in existing.values() for doc in docs)
    made = {}  # hostname -> href of the workload this run made
    try:
        for start in range(0, len(entries), batch_size):
            made.update(_send_creates(client, planner, entries[start : start + batch_size], known, failed))
        removed = _settle_bulk_duplicates(client, planner, plan, made, warnings)
    except PceError as error:
        raise changed_then_failed(error, sorted(made.values()), "workloads (created)") from None
    return sorted(hostname for hostname in made if hostname not in removed)


def _plan_convergence(planner, plan, hostname, doc):
    """Plan the update of a workload another run made in the meantime (or nothing when it is as wanted)."""
    wanted, spec = plan.wanted[hostname]
    changes = planner.changes(doc, wanted, spec)
    if changes:
        plan.update.append((hostname, dict(changes, href=doc["href"])))
    else:
        plan.unchanged.append(hostname)


def _send_creates(client, planner, chunk, known, failed):
    """Send one bulk_create chunk; {hostname: href} of what it made. A lost answer is looked up, never resent
    blindly: only the workloads that are not on the PCE afterwards are sent again."""
    path = client.org_path("workloads/bulk_create")
    made, pending, resends = {}, list(chunk), 0
    while pending:
        try:
            answer = client.put(path, [payload for _hostname, payload in pending])
        except UncertainOutcome as error:
            found = _by_hostname(_read_after(planner, error, "the workloads of this chunk"))
            still = []
            for hostname, payload in pending:
                new = [doc for doc in found.get(hostname, []) if doc["href"] not in known]
                if new:
                    made[hostname] = oldest(new)["href"]
                else:
                    still.append((hostname, payload))
            pending = still
            if pending and resends >= CREATE_RESENDS:
                for hostname, _payload in pending:
                    failed.append({"hostname": hostname, "token": "no_answer", "message": str(error)})
                break
            resends += 1
            continue
        except PceError as error:
            for hostname, _payload in pending:
                failed.append({"hostname": hostname, "token": error.token or "request_failed", "message": str(error)})
            break
        answers = answer if isinstance(answer, list) else []
        for position, (hostname, _payload) in enumerate(pending):
            outcome = answers[position] if position < len(answers) else None
            problem = _bulk_problem(outcome, "created")
            if problem is None:
                made[hostname] = outcome.get("href")
            else:
                failed.append(dict(problem, hostname=hostname))
        break
    return made


def _read_after(planner, error, what):
    try:
        return planner.read()
    except PceError as failure:
        raise UncertainOutcome(
            "%s. Reading the workloads to see what it did failed too: %s. Run the task again once the PCE answers: "
            "it reads the workloads before it changes anything." % (str(error).rstrip("."), failure),
            status=error.status,
            token=error.token,
        ) from None


def _settle_bulk_duplicates(client, planner, plan, made, warnings):
    """Delete the workloads this run made that another run had made first (see settle_duplicates); return
    their hostnames, whose older workload is then updated if it differs from the item."""
    if not made:
        return set()
    own = set(href for href in made.values() if href)
    by_hostname = _by_hostname(planner.read())
    raced = dict((hostname, by_hostname[hostname]) for hostname in made if len(by_hostname.get(hostname, [])) > 1)
    tied = [
        hostname
        for hostname, docs in raced.items()
        if oldest(docs)["href"] in own
        and any(doc["href"] not in own and _age(doc)[0] == _age(oldest(docs))[0] for doc in docs)
    ]
    if tied:
        client.sleep(TIE_WAIT_SECONDS)
        by_hostname = _by_hostname(planner.read())
        for hostname in tied:
            raced[hostname] = by_hostname.get(hostname, [])
    removed, gave_way = set(), []
    for hostname, docs in sorted(raced.items()):
        others = [doc for doc in docs if doc["href"] not in own]
        if not others:
            continue
        winner = oldest(docs)
        if winner["href"] in own and hostname not in tied:
            continue  # the other run made the newer one and deletes it itself
        winner = oldest(others) if hostname in tied else winner
        mine = [doc["href"] for doc in docs if doc["href"] in own and doc["href"] != winner["href"]]
        for href in mine:
            client.delete(href)
        if mine:
            removed.add(hostname)
            gave_way.extend(mine)
            plan.existing += 1
            _plan_convergence(planner, plan, hostname, winner)
    if removed:
        warnings.append(
            "another run created workloads with %d of these hostnames at the same time; the older ones were kept and "
            "the %d this run had made were deleted (hostnames: %s)"
            % (len(removed), len(gave_way), ", ".join(_capped(removed)))
        )
    return removed


def _bulk_delete(client, planner, plan, batch_size, failed):
    """Delete the planned workloads; return the hostnames this run deleted.

    After a lost answer the workloads are read again: those gone were deleted, only the others are sent again.
    An item the PCE refuses because it is gone already (another run deleted it) is not a failure.
    """
    path = client.org_path("workloads/bulk_delete")
    deleted = []
    for start in range(0, len(plan.delete), batch_size):
        pending, resends = list(plan.delete[start : start + batch_size]), 0
        while pending:
            try:
                answer = client.put(path, [payload for _hostname, payload in pending])
            except UncertainOutcome as error:
                live = set(doc["href"] for doc in _read_after(planner, error, "the workloads of this chunk"))
                deleted.extend(hostname for hostname, payload in pending if payload["href"] not in live)
                pending = [(hostname, payload) for hostname, payload in pending if payload["href"] in live]
                if pending and resends >= CREATE_RESENDS:
                    for hostname, _payload in pending:
                        failed.append({"hostname": hostname, "token": "no_answer", "message": str(error)})
                    break
                resends += 1
                continue
            except PceError as error:
                for hostname, _payload in pending:
                    failed.append(
                        {"hostname": hostname, "token": error.token or "request_failed", "message": str(error)}
                    )
                break
            answers = answer if isinstance(answer, list) else []
            problems = []
            for position, (hostname, payload) in enumerate(pending):
                outcome = answers[position] if position < len(answers) else None
                problem = _bulk_problem(outcome, "deleted")
                if problem is None:
                    deleted.append(hostname)
                else:
                    problems.append((hostname, payload, problem))
            if problems:
                live = set(doc["href"] for doc in planner.read())
                for hostname, payload, problem in problems:
                    if payload["href"] in live:
                        failed.append(dict(problem, hostname=hostname))
                    else:
                        plan.unchanged.append(hostname)  # gone already: deleted by another run
                        plan.existing -= 1
            break
    return deleted


def _capped(hostnames):
    hostnames = sorted(hostnames)
    if len(hostnames) <= DIFF_HOSTNAMES:
        return hostnames
    return [*hostnames[:DIFF_HOSTNAMES], "... and %d more" % (len(hostnames) - DIFF_HOSTNAMES)]


def _bulk_result(plan, created, updated, deleted, failed, changed):
    after = plan.existing + len(created) - len(deleted)
    return {
        "changed": changed,
        "summary": {
            "created": len(created),
            "updated": len(updated),
            "deleted": len(deleted),
            "unchanged": len(plan.unchanged),
            "failed": len(failed),
        },
        "created": created,
        "updated": updated,
        "deleted": deleted,
        "failed_items": failed,
        "diff": {
            "before": {"workloads": plan.existing, "hostnames": _capped(updated + deleted)},
            "after": {"workloads": after, "hostnames": _capped(created + updated)},
        },
    }
