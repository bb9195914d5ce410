# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Draft policy objects (label groups, IP lists, services) and the provisioning of draft policy.

These objects live under `sec_policy/draft/` and only take effect once provisioned into a new active policy
version. Users write names, `key: value` labels, addresses and protocol names; this module validates them,
turns them into the PCE's payloads, and shows PCE objects back in the same form.

Draft deletions: deleting a draft that was never provisioned removes it; deleting one that was provisioned
leaves it listed with `update_type: delete` (and `deleted_at`) until the deletion is provisioned. Such
pending deletions are treated as absent everywhere here.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import ipaddress
import json
import re

from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import key_value_pairs
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import (
    EXTERNAL_DATA,
    PceObjectType,
    create_once,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.protocols import (
    ICMP_PROTOCOLS,
    PORT_PROTOCOLS,
    protocol_name,
    protocol_number,
)
from ansible_collections.microseg.illumio.plugins.module_utils.pce.references import (
    ReferenceResolver,
    is_pending_deletion,
    the_live_one,
)

POLICY_VERSIONS = ("draft", "active")
# How messages name each kind of policy object, by collection.
WORDS = {
    "label_groups": "label group",
    "ip_lists": "IP list",
    "services": "service",
    "rule_sets": "rule set",
    "enforcement_boundaries": "enforcement boundary",
}


# --- the shared base of draft policy object types ------------------------------------------------------------
class DraftPolicyType(PceObjectType):
    """A draft policy object identified by its name; subclasses declare fields and how users write them."""

    draft = True
    identity = ("name",)
    renames = {"new_name": "name"}
    # Plural result key of the _info module: "ip_lists".
    plural = None
    # Kind in references.KINDS: "ip_list".
    kind = None
    # Name of the PCE's built-in object of this type, which can be read but never changed or deleted.
    builtin = None
    # Fields copied from the parameters as they are (strings).
    plain_fields = ("description", *EXTERNAL_DATA)

    def __init__(self, client, check_mode=False, policy_version="draft"):
        super(DraftPolicyType, self).__init__(client, check_mode=check_mode)
        if policy_version not in POLICY_VERSIONS:
            raise PceError("policy_version must be one of %s, got %r" % (", ".join(POLICY_VERSIONS), policy_version))
        self.policy_version = policy_version
        self.refs = ReferenceResolver(client, policy_version)

    # --- reading ----------------------------------------------------------------------------------------
    def collection_path(self):
        return self.client.org_path("sec_policy/%s/%s" % (self.policy_version, self.endpoint))

    def locate(self, name):
        """(the live object named `name` exactly or None, whether a deletion of that name is pending)."""
        return the_live_one(self.read_collection({"name": name}), name, self.word())

    def find(self, identity):
        return self.locate(identity["name"])[0]

    def search(self, name=None, name_match="exact", include_pending_deletions=False):
        """Objects for an _info module: all, by exact name, or by name containing `name` (ignoring case)."""
        found = self.read_collection({"name": name} if name else None)
        if name is not None and name_match == "exact":
            found = [obj for obj in found if obj.get("name") == name]
        elif name is not None:
            found = [obj for obj in found if name.lower() in (obj.get("name") or "").lower()]
        if not include_pending_deletions:
            found = [obj for obj in found if not is_pending_deletion(obj)]
        found.sort(key=lambda obj: (obj.get("name") or "", obj.get("href") or ""))
        return [self.info_view(obj) for obj in found]

    def word(self):
        return WORDS.get(self.plural, self.name.replace("_", " "))

    # --- presenting -------------------------------------------------------------------------------------
    def view(self, obj):
        """The object as modules return it: href, name and fields, everything in the form users write."""
        if not obj:
            return {}
        shown = {"href": obj.get("href"), "name": obj.get("name")}
        for field in self.fields:
            shown[field] = self.present(field, obj.get(field))
        return shown

    def info_view(self, obj):
        shown = self.view(obj)
        shown["update_type"] = obj.get("update_type")
        return shown

    def present(self, field, value):
        return value

    def diff_view(self, obj):
        """What diff mode shows: the view without hrefs."""
        shown = self.view(obj)
        shown.pop("href", None)
        return shown

    def result(self, changed, before, after, pending=False):
        return {
            "changed": changed,
            self.name: self.view(after),
            "provision_pending": bool(pending),
            "diff": {"before": self.diff_view(before), "after": self.diff_view(after)},
        }

    # --- wanted state -----------------------------------------------------------------------------------
    def wanted_fields(self, params, current=None):
        """The fields the user gave, validated and in the PCE's form; `current` is the object (or None)."""
        return dict((field, params[field]) for field in self.plain_fields if params.get(field) is not None)

    def normalized(self, field, value):
        """A form of a field's value in which values the PCE treats as equal compare equal."""
        if field == "description" and value is None:
            return ""
        return _canonical(value)

    def changes(self, current, wanted):
        return dict(
            (field, value)
            for field, value in wanted.items()
            if self.normalized(field, current.get(field)) != self.normalized(field, value)
        )

    def check(self, params):
        """Validate what can be checked without the PCE; called before any request (PceError if invalid)."""
        self.wanted_identity(params)
        new_name = params.get("new_name")
        if new_name is not None and not str(new_name).strip():
            raise PceError("new_name must not be empty")
        if params.get("state") == "absent" and new_name is not None:
            raise PceError("new_name renames the %s and only goes with state=present" % self.word())

    # --- plan, then apply -------------------------------------------------------------------------------
    def ensure(self, params):
        self.check(params)
        identity = self.wanted_identity(params)
        renames = self.wanted_renames(params)
        if params.get("state") == "absent":
            return self.ensure_absent(identity)
        current, _deleting = self.locate(identity["name"])
        if renames and renames["name"] != identity["name"]:
            renamed, _deleting = self.locate(renames["name"])
            if current is not None and renamed is not None:
                raise PceError(
                    "cannot rename %s %r to %r: both exist (%s, %s)"
                    % (self.word(), identity["name"], renames["name"], current["href"], renamed["href"])
                )
            # Already renamed (or never existed): the object to keep up to date is the renamed one.
            current = current if renamed is None else renamed
            identity = dict(identity, **renames)
        wanted = self.wanted_fields(params, current)
        if current is None:
            return self.create(dict(identity, **wanted))
        wanted.update(identity)
        changes = self.changes(current, wanted)
        if not changes:
            return self.result(False, current, current, pending=current.get("update_type") is not None)
        self.refuse_builtin(current, "change")
        return self.update(current, changes)

    def ensure_absent(self, identity):
        current, deleting = self.locate(identity["name"])
        if current is None:
            return self.result(False, None, None, pending=deleting)
        self.refuse_builtin(current, "delete")
        if not self.check_mode and not self.delete(current, lambda: self.find(identity)):
            return self.result(False, None, None, pending=True)
        # A draft never provisioned is simply gone; a provisioned one stays until its deletion is provisioned.
        return self.result(True, current, None, pending=current.get("update_type") != "create")

    def refuse_builtin(self, current, what):
        if self.builtin is not None and current.get("name") == self.builtin:
            raise PceError(
                "%s %r is built into the PCE and cannot be %s; create your own %s instead"
                % (self.word(), self.builtin, "deleted" if what == "delete" else "changed or renamed", self.word())
            )

    def create(self, payload):
        if self.check_mode:
            return self.result(True, None, payload, pending=True)
        name = payload["name"]
        created, ours = create_once(
            self.client,
            self.collection_path(),
            payload,
            lambda: self.find({"name": name}),
            "%s %r" % (self.word(), name),
        )
        self.refs.forget()
        if ours:
            return self.result(True, None, created or payload, pending=True)
        # Names are unique: another run made it in the meantime, so it only has to be brought to the wanted state.
        changes = self.changes(created, payload)
        if not changes:
            return self.result(False, created, created, pending=True)
        return self.update(created, changes)

    def update(self, current, changes):
        if not self.check_mode:
            self.client.put(current["href"], changes)
        # The PCE answers a PUT with 204 No Content, so the new state is the old one plus the changes.
        return self.result(True, current, dict(current, **changes), pending=True)


def _canonical(value):
    """Lists compare as sets and references by href (the PCE adds names and keys to them)."""
    if isinstance(value, dict):
        if "href" in value:
            return value["href"]
        return tuple(sorted((key, _canonical(item)) for key, item in value.items() if item is not None))
    if isinstance(value, (list, tuple)):
        return tuple(sorted((_canonical(item) for item in value), key=lambda item: json.dumps(item, default=str)))
    return value


def _plain_scalar(value, what):
    if isinstance(value, (dict, list, tuple)) or value is None:
        raise PceError("%s must be a string, got %r" % (what, value))
    return value if isinstance(value, str) else str(value)


def _dedupe(items):
    seen, unique = set(), []
    for item in items:
        marker = json.dumps(item, sort_keys=True)
        if marker not in seen:
            seen.add(marker)
            unique.append(item)
    return unique


# --- label groups ---------------------------------------------------------------------------------------------
class LabelGroup(DraftPolicyType):
    name = "label_group"
    plural = "label_groups"
    endpoint = "label_groups"
    kind = "label_group"
    fields = ("key", "description", "labels", "sub_groups", *EXTERNAL_DATA)

    def search(self, name=None, name_match="exact", include_pending_deletions=False, key=None):
        found = super(LabelGroup, self).search(name, name_match, include_pending_deletions)
        return [group for group in found if key is None or group.get("key") == key]

    def present(self, field, value):
        if field == "labels":
            shown = []
            for ref in value or []:
                if ref.get("key") is not None and ref.get("value") is not None:
                    shown.append({"key": ref["key"], "value": ref["value"]})
                else:
                    shown.append(self.labels.describe(ref["href"]))
            return shown
        if field == "sub_groups":
            return [ref.get("name") or self.refs.name(self.kind, ref["href"]) for ref in value or []]
        return value

    def check(self, params):
        super(LabelGroup, self).check(params)
        if params.get("key") is not None and not params["key"].strip():
            raise PceError("key must not be empty")
        name = params.get("new_name") or params["name"]
        labels = params.get("labels")
        for label in [] if isinstance(labels, dict) else labels or []:
            if isinstance(label, dict):
                key_value_pairs([label])
            else:
                _plain_scalar(label, "a label of label group %r" % name)
        for sub_name in params.get("sub_groups") or []:
            if not _plain_scalar(sub_name, "a sub-group of label group %r" % name).strip():
                raise PceError("sub_groups of label group %r must be names, not empty strings" % name)

    def wanted_fields(self, params, current=None):
        wanted = super(LabelGroup, self).wanted_fields(params, current)
        name = params.get("new_name") or params["name"]
        key = params.get("key")
        if key is not None and not key.strip():
            raise PceError("key must not be empty")
        if current is not None and key is not None and key != current.get("key"):
            raise PceError(
                "label group %r has key %r, and the key of a label group cannot be changed; delete the group and "
                "create it again with key %r" % (current.get("name"), current.get("key"), key)
            )
        group_key = key if key is not None else (current or {}).get("key")
        if current is None and group_key is None:
            raise PceError("key is required to create label group %r (for example key: loc)" % name)
        if key is not None:
            wanted["key"] = key
        if params.get("labels") is not None:
            wanted["labels"] = self.label_refs(name, group_key, params["labels"])
        if params.get("sub_groups") is not None:
            wanted["sub_groups"] = self.sub_group_refs(name, group_key, params["sub_groups"], current)
        return wanted

    def label_refs(self, name, group_key, labels):
        """[{"href"}] for members written as `{key: value}`, `{key: ..., value: ...}` or values of the group's key."""
        pairs = key_value_pairs(labels) if isinstance(labels, dict) else []
        for label in [] if isinstance(labels, dict) else labels:
            if isinstance(label, dict):
                pairs.extend(key_value_pairs([label]))
            else:
                pairs.append((group_key, _plain_scalar(label, "a label of label group %r" % name)))
        refs = []
        for key, value in pairs:
            if key != group_key:
                raise PceError(
                    "label %s=%s cannot be a member of label group %r: every member must have the group's key %r"
                    % (key, value, name, group_key)
                )
            refs.append({"href": self.labels.href(key, value)})
        return _dedupe(refs)

    def sub_group_refs(self, name, group_key, names, current):
        own_href = current["href"] if current else None
        refs = []
        for sub_name in names:
            sub_name = _plain_scalar(sub_name, "a sub-group of label group %r" % name)
            if sub_name in (name, (current or {}).get("name")):
                raise PceError("label group %r cannot contain itself as a sub-group" % name)
            group = self.refs.find(self.kind, sub_name)
            if group is None:
                raise PceError(
                    "label group %r (named in sub_groups) does not exist on the PCE (create it with "
                    "microseg.illumio.label_group first)" % sub_name
                )
            if group.get("key") != group_key:
                raise PceError(
                    "label group %r has key %r and cannot be a sub-group of label group %r, whose key is %r"
                    % (sub_name, group.get("key"), name, group_key)
                )
            if own_href is not None and self.contains(group, own_href):
                raise PceError(
                    "label group %r already contains label group %r (through its sub-groups); a group cannot "
                    "contain itself" % (sub_name, name)
                )
            refs.append({"href": group["href"]})
        return _dedupe(refs)

    def contains(self, group, href):
        """Whether `group` has the label group `href` among its sub-groups, at any depth."""
        by_href = dict((obj["href"], obj) for obj in self.refs.objects(self.kind))
        pending, seen = [group], set()
        while pending:
            current = pending.pop()
            for ref in current.get("sub_groups") or []:
                if ref["href"] == href:
                    return True
                if ref["href"] not in seen and ref["href"] in by_href:
                    seen.add(ref["href"])
                    pending.append(by_href[ref["href"]])
        return False


# --- IP lists -------------------------------------------------------------------------------------------------
FQDN_PATTERN = re.compile(r"^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?\.)*[A-Za-z0-9_-]{1,63}\.?$")
IP_RANGE_KEYS = ("from_ip", "to_ip", "description", "exclusion")
FQDN_KEYS = ("fqdn", "description")


class IpList(DraftPolicyType):
    name = "ip_list"
    plural = "ip_lists"
    endpoint = "ip_lists"
    kind = "ip_list"
    builtin = "Any (0.0.0.0/0 and ::/0)"
    fields = ("description", "ip_ranges", "fqdns", *EXTERNAL_DATA)

    def wanted_fields(self, params, current=None):
        wanted = super(IpList, self).wanted_fields(params, current)
        if params.get("ip_ranges") is not None:
            wanted["ip_ranges"] = [ip_range(entry, index) for index, entry in enumerate(params["ip_ranges"])]
        if params.get("fqdns") is not None:
            wanted["fqdns"] = [fqdn_entry(entry, index) for index, entry in enumerate(params["fqdns"])]
        return wanted

    def check(self, params):
        super(IpList, self).check(params)
        if params.get("state") != "absent":
            self.wanted_fields(params)

    def normalized(self, field, value):
        if field == "ip_ranges":
            return _canonical([_settled_range(entry) for entry in value or []])
        if field == "fqdns":
            return _canonical([_without_empty(entry) for entry in value or []])
        return super(IpList, self).normalized(field, value)

    def present(self, field, value):
        if field == "ip_ranges":
            return [_shown_range(entry) for entry in value or []]
        if field == "fqdns":
            return [{"fqdn": entry.get("fqdn"), "description": entry.get("description")} for entry in value or []]
        return value


def ip_range(entry, index=0):
    """One IP range in the PCE's form from `10.0.0.0/8`, `10.1.1.1-10.1.1.9`, `!10.0.0.5` or a dict."""
    what = "ip_ranges[%d]" % index
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - set(IP_RANGE_KEYS))
        if unknown:
            raise PceError("%s: unknown key %r; an IP range has %s" % (what, unknown[0], ", ".join(IP_RANGE_KEYS)))
        if entry.get("from_ip") in (None, ""):
            raise PceError("%s: from_ip is required" % what)
        from_ip = _plain_scalar(entry["from_ip"], "%s.from_ip" % what)
        to_ip = entry.get("to_ip")
        to_ip = None if to_ip in (None, "") else _plain_scalar(to_ip, "%s.to_ip" % what)
        exclusion = entry.get("exclusion")
        exclusion = False if exclusion is None else _boolean(exclusion, "%s.exclusion" % what)
        description = entry.get("description")
    else:
        text = _plain_scalar(entry, what).strip()
        exclusion = text.startswith("!")
        text = text[1:].strip() if exclusion else text
        from_ip, dash, to_ip = (part.strip() for part in text.partition("-"))
        if dash and not (from_ip and to_ip):
            raise PceError("%s: the range %r needs an address on both sides of '-'" % (what, text))
        to_ip = to_ip or None
        description = None
    result = {"from_ip": _address_or_network(from_ip, what)}
    if to_ip is not None:
        if "/" in result["from_ip"]:
            raise PceError("%s: a range %s-%s cannot start with a CIDR block" % (what, from_ip, to_ip))
        low = ipaddress.ip_address(result["from_ip"])
        high = ipaddress.ip_address(_address_or_network(to_ip, what, cidr=False))
        if low.version != high.version:
            raise PceError("%s: %s and %s are not the same IP version" % (what, low, high))
        if high < low:
            raise PceError("%s: the range %s-%s ends before it starts" % (what, low, high))
        if high != low:
            result["to_ip"] = str(high)
    if description is not None:
        result["description"] = _plain_scalar(description, "%s.description" % what)
    result["exclusion"] = exclusion
    return result


def _boolean(value, what):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise PceError("%s must be true or false, got %r" % (what, value))


def _address_or_network(text, what, cidr=True):
    text = text.strip()
    if not text:
        raise PceError("%s: an IP address is missing" % what)
    try:
        if "/" in text and cidr:
            return str(ipaddress.ip_network(text, strict=True))
        return str(ipaddress.ip_address(text))
    except ValueError as error:
        if "/" in text and cidr and "has host bits set" in str(error):
            network = ipaddress.ip_network(text, strict=False)
            raise PceError("%s: %s has host bits set; did you mean %s?" % (what, text, network)) from None
        kind = "an IP address or CIDR block" if cidr else "an IP address"
        raise PceError("%s: %r is not %s" % (what, text, kind)) from None


def _settled_range(entry):
    """An IP range as stored, for comparison: addresses canonical, empty description and to_ip == from_ip gone."""
    settled = {"from_ip": entry.get("from_ip"), "exclusion": bool(entry.get("exclusion"))}
    try:
        from_ip = settled["from_ip"]
        settled["from_ip"] = str(
            ipaddress.ip_network(from_ip, strict=False) if "/" in from_ip else ipaddress.ip_address(from_ip)
        )
    except (TypeError, ValueError):
        pass
    if entry.get("to_ip"):
        try:
            to_ip = str(ipaddress.ip_address(entry["to_ip"]))
        except ValueError:
            to_ip = entry["to_ip"]
        if to_ip != settled["from_ip"]:
            settled["to_ip"] = to_ip
    if entry.get("description"):
        settled["description"] = entry["description"]
    return settled


def _shown_range(entry):
    return {
        "from_ip": entry.get("from_ip"),
        "to_ip": entry.get("to_ip"),
        "description": entry.get("description"),
        "exclusion": bool(entry.get("exclusion")),
    }


def _without_empty(entry):
    return dict((key, value) for key, value in entry.items() if value not in (None, ""))


def fqdn_entry(entry, index=0):
    what = "fqdns[%d]" % index
    if isinstance(entry, dict):
        unknown = sorted(set(entry) - set(FQDN_KEYS))
        if unknown:
            raise PceError("%s: unknown key %r; an FQDN entry has fqdn and description" % (what, unknown[0]))
        if entry.get("fqdn") in (None, ""):
            raise PceError("%s: fqdn is required" % what)
        fqdn = _plain_scalar(entry["fqdn"], "%s.fqdn" % what).strip()
        description = entry.get("description")
    else:
        fqdn = _plain_scalar(entry, what).strip()
        description = None
    if not FQDN_PATTERN.match(fqdn) or len(fqdn) > 255:
        raise PceError("%s: %r is not a valid domain name (like app.example.com or *.example.com)" % (what, fqdn))
    result = {"fqdn": fqdn}
    if description is not None:
        result["description"] = _plain_scalar(description, "%s.description" % what)
    return result


# --- services ---------------------------------------------------------------------------------------------------
PORT_KEYS = ("port", "to_port", "proto", "icmp_type", "icmp_code")
WINDOWS_SERVICE_KEYS = ("service_name", "process_name", *PORT_KEYS)


class Service(DraftPolicyType):
    name = "service"
    plural = "services"
    endpoint = "services"
    kind = "service"
    builtin = "All Services"
    fields = ("description", "process_name", "service_ports", "windows_services", *EXTERNAL_DATA)
    plain_fields = ("description", "process_name", *EXTERNAL_DATA)

    def wanted_fields(self, params, current=None):
        wanted = super(Service, self).wanted_fields(params, current)
        if params.get("service_ports") is not None and params.get("windows_services") is not None:
            raise PceError("a service has either service_ports or windows_services, not both")
        if params.get("service_ports") is not None:
            wanted["service_ports"] = _dedupe(
                [
                    service_port(entry, "service_ports[%d]" % index)
                    for index, entry in enumerate(params["service_ports"])
                ]
            )
        if params.get("windows_services") is not None:
            wanted["windows_services"] = _dedupe(
                [
                    windows_service(entry, "windows_services[%d]" % index)
                    for index, entry in enumerate(params["windows_services"])
                ]
            )
        return wanted

    def check(self, params):
        super(Service, self).check(params)
        if params.get("state") != "absent":
            self.wanted_fields(params)

    def normalized(self, field, value):
        if field in ("service_ports", "windows_services"):
            return _canonical([_settled_port(entry) for entry in value or []])
        return super(Service, self).normalized(field, value)

    def present(self, field, value):
        if field in ("service_ports", "windows_services"):
            return [_shown_port(entry) for entry in value or []]
        return value


def service_port(entry, what="service_ports[0]", extra=()):
    """One service port in the PCE's form: proto as a number, port range or ICMP type/code checked."""
    if not isinstance(entry, dict):
        raise PceError("%s must be a dict with proto and port (and to_port), or proto and icmp_type" % what)
    entry = dict((key, value) for key, value in entry.items() if value is not None)
    unknown = sorted(set(entry) - set(PORT_KEYS) - set(extra))
    if unknown:
        raise PceError("%s: unknown key %r; a service port has %s" % (what, unknown[0], ", ".join(PORT_KEYS)))
    if "proto" not in entry:
        raise PceError("%s: proto is required (tcp, udp, icmp, icmpv6 or a protocol number)" % what)
    try:
        proto = protocol_number(entry["proto"])
    except PceError as error:
        raise PceError("%s: %s" % (what, error)) from None
    result = {"proto": proto}
    if "port" in entry or "to_port" in entry:
        if proto not in PORT_PROTOCOLS:
            raise PceError(
                "%s: port and to_port need a protocol with ports (tcp, udp), not %s" % (what, protocol_name(proto))
            )
        if "port" not in entry:
            raise PceError("%s: to_port needs port (the first port of the range)" % what)
        result["port"] = _number(entry["port"], "%s.port" % what, 0, 65535)
        if "to_port" in entry:
            to_port = _number(entry["to_port"], "%s.to_port" % what, 0, 65535)
            if to_port < result["port"]:
                raise PceError("%s: the port range %d-%d ends before it starts" % (what, result["port"], to_port))
            if to_port != result["port"]:
                result["to_port"] = to_port
    if "icmp_type" in entry or "icmp_code" in entry:
        if proto not in ICMP_PROTOCOLS:
            raise PceError(
                "%s: icmp_type and icmp_code need proto icmp or icmpv6, not %s" % (what, protocol_name(proto))
            )
        if "icmp_type" not in entry:
            raise PceError("%s: icmp_code needs icmp_type" % what)
        result["icmp_type"] = _number(entry["icmp_type"], "%s.icmp_type" % what, 0, 255)
        if "icmp_code" in entry:
            result["icmp_code"] = _number(entry["icmp_code"], "%s.icmp_code" % what, 0, 255)
    return result


def windows_service(entry, what="windows_services[0]"):
    """A Windows service entry: service_name and/or process_name, optionally with a port or ICMP entry."""
    if not isinstance(entry, dict):
        raise PceError("%s must be a dict with service_name or process_name" % what)
    entry = dict((key, value) for key, value in entry.items() if value is not None)
    unknown = sorted(set(entry) - set(WINDOWS_SERVICE_KEYS))
    if unknown:
        raise PceError(
            "%s: unknown key %r; a Windows service has %s" % (what, unknown[0], ", ".join(WINDOWS_SERVICE_KEYS))
        )
    names = dict(
        (key, _plain_scalar(entry[key], "%s.%s" % (what, key)))
        for key in ("service_name", "process_name")
        if str(entry.get(key) or "").strip()
    )
    if not names:
        raise PceError("%s: service_name or process_name is required" % what)
    ports = dict((key, value) for key, value in entry.items() if key in PORT_KEYS)
    if ports:
        if "proto" not in ports:
            raise PceError("%s: proto is required with %s" % (what, ", ".join(sorted(ports))))
        names.update(service_port(ports, what))
    return names


def _number(value, what, low, high):
    if isinstance(value, bool):
        raise PceError("%s must be a whole number from %d to %d, got %r" % (what, low, high, value))
    try:
        number = int(str(value).strip())
    except ValueError:
        raise PceError("%s must be a whole number from %d to %d, got %r" % (what, low, high, value)) from None
    if not low <= number <= high:
        raise PceError("%s must be a whole number from %d to %d, got %r" % (what, low, high, value))
    return number


def _settled_port(entry):
    settled = _without_empty(entry)
    if settled.get("to_port") is not None and settled.get("to_port") == settled.get("port"):
        del settled["to_port"]
    return settled


def _shown_port(entry):
    shown = _without_empty(entry)
    if "proto" in shown:
        shown["proto"] = protocol_name(shown["proto"])
    return shown


# --- provisioning -----------------------------------------------------------------------------------------------
# Kinds of draft policy that can be provisioned by name: collection -> kind in references.KINDS.
PROVISION_KINDS = (
    ("label_groups", "label_group"),
    ("ip_lists", "ip_list"),
    ("services", "service"),
    ("rule_sets", "rule_set"),
    ("enforcement_boundaries", "enforcement_boundary"),
)
POLICY_HREF = re.compile(r"/orgs/\d+/sec_policy/(?:draft|active)/(label_groups|ip_lists|services)/([^\"/\s,;.()]+)")
# Error tokens of POST sec_policy (not secrets).
NOTHING_TO_PROVISION = "nothing_to_provision"
DEPENDENCY_MISSING = "provision_dependency_missing"
ANY_POLICY_HREF = re.compile(r"/orgs/\d+/sec_policy/(?:draft|active)/([a-z_]+)/([^\"/\s,;.()]+)")


def _key(href):
    """(collection, id) of a draft or active policy href: both versions of an object share it."""
    found = ANY_POLICY_HREF.search(href or "")
    return (found.group(1), found.group(2)) if found else (None, href)


def _word(collection):
    return WORDS.get(collection, collection.rstrip("s").replace("_", " "))


class PolicyProvisioner(object):
    """Lists pending draft changes and provisions all of them, or those of the objects named."""

    def __init__(self, client, check_mode=False):
        self.client = client
        self.check_mode = check_mode
        self.refs = ReferenceResolver(client)

    def pending(self):
        """Pending draft objects by collection (every known collection present, possibly empty)."""
        answer = self.client.get(self.client.org_path("sec_policy/pending"))
        answer = {} if answer is None else answer
        if not isinstance(answer, dict):
            raise PceError("the PCE answered sec_policy/pending with something unexpected: %r" % (answer,))
        pending = dict((collection, []) for collection, _kind in PROVISION_KINDS)
        for collection, objects in answer.items():
            if isinstance(objects, list):
                pending[collection] = [obj for obj in objects if isinstance(obj, dict)]
        return pending

    def provision(self, update_description, names=None):
        """Provision everything pending (names None) or the pending changes of the objects named.

        `names` maps collections (ip_lists ...) to lists of names. Returns the module result.
        """
        pending = self.pending()
        skipped = {}
        if names is None:
            chosen = pending
        else:
            chosen, skipped = self.choose(pending, names)
        result = {
            "changed": False,
            "policy_version": None,
            "workloads_affected": None,
            "pending": self.shown(pending),
            "provisioned": self.shown({}),
            "not_pending": skipped,
        }
        if not any(chosen.values()):
            result["diff"] = {"before": {"pending": result["pending"]}, "after": {"pending": result["pending"]}}
            return result
        if names is not None:
            self.check_dependencies(pending, chosen)
        remaining = self.shown(
            dict(
                (collection, [obj for obj in objects if obj not in chosen.get(collection, [])])
                for collection, objects in pending.items()
            )
        )
        result.update(changed=True, provisioned=self.shown(chosen))
        result["diff"] = {"before": {"pending": result["pending"]}, "after": {"pending": remaining}}
        if self.check_mode:
            return result
        body = {"update_description": update_description}
        if names is not None:
            body["change_subset"] = dict(
                (collection, [{"href": obj["href"]} for obj in objects])
                for collection, objects in chosen.items()
                if objects
            )
        try:
            version = self.client.post(self.client.org_path("sec_policy"), body) or {}
        except PceError as error:
            if error.token == NOTHING_TO_PROVISION:
                result.update(changed=False, provisioned=self.shown({}))
                result["diff"]["after"] = result["diff"]["before"]
                return result
            if error.token == DEPENDENCY_MISSING:
                raise PceError(self.explain_refusal(error, pending, chosen)) from None
            raise
        result.update(policy_version=version.get("version"), workloads_affected=version.get("workloads_affected"))
        if result["policy_version"] is None and version.get("href"):
            result["policy_version"] = _version_number(version["href"])
        return result

    # --- choosing what to provision ---------------------------------------------------------------------------
    def choose(self, pending, names):
        """(pending objects of the named ones by collection, names without pending changes by collection)."""
        chosen, skipped = {}, {}
        for collection, wanted in names.items():
            for name in wanted or []:
                matches = [obj for obj in pending.get(collection, []) if obj.get("name") == name]
                if matches:
                    chosen.setdefault(collection, [])
                    chosen[collection].extend(obj for obj in matches if obj not in chosen[collection])
                else:
                    # Unchanged, or gone for good (a deletion provisioned before): nothing to do, so that a
                    # play that deletes an object and provisions it by name can run again.
                    skipped.setdefault(collection, []).append(name)
        return chosen, skipped

    # --- dependencies -----------------------------------------------------------------------------------------
    def check_dependencies(self, pending, chosen):
        """Refuse (PceError) a subset that would leave active policy referring to objects not provisioned."""
        active = {}
        for collection, _kind in PROVISION_KINDS:
            path = self.client.org_path("sec_policy/active/%s" % collection)
            try:
                objects = self.client.get_collection(path)
            except PceError as error:
                # Newer PCEs have no enforcement_boundaries collection (they became deny rules in rule sets).
                if error.status != 404 or collection != "enforcement_boundaries":
                    raise
                objects = []
            for obj in objects:
                active[_key(obj["href"])] = obj
        for objects in chosen.values():
            for obj in objects:
                if is_pending_deletion(obj):
                    active.pop(_key(obj["href"]), None)
                else:
                    active[_key(obj["href"])] = obj
        missing = {}
        for obj in active.values():
            for used in set(POLICY_HREF.findall(json.dumps(obj))):
                if used not in active:
                    missing.setdefault(used, []).append(obj)
        if missing:
            raise PceError(self.explain(missing, pending, chosen))

    def explain_refusal(self, error, pending, chosen):
        """The PCE's provision_dependency_missing, said with names: what has to be provisioned with what."""
        text = "%s %s" % (error.message, error.details or "")
        missing = {}
        for collection, obj_id in set(POLICY_HREF.findall(text)):
            users = [
                obj
                for objects in list(chosen.values()) + list(pending.values())
                for obj in objects
                if _key(obj["href"]) != (collection, obj_id)
                and (collection, obj_id) in set(POLICY_HREF.findall(json.dumps(obj)))
            ]
            missing[(collection, obj_id)] = _dedupe(users)
        if not missing:
            return (
                "the PCE refuses to provision only these changes, because other pending changes depend on them: %s"
                % (error.message)
            )
        return self.explain(missing, pending, chosen)

    def explain(self, missing, pending, chosen):
        by_key = {}
        for collection, objects in pending.items():
            for obj in objects:
                by_key[_key(obj["href"])] = (collection, obj)
        chosen_keys = set(_key(obj["href"]) for objects in chosen.values() for obj in objects)
        reasons, to_add = [], {}
        for key in sorted(missing):
            collection, obj = by_key.get(key, (key[0], None))
            label = "%s %r" % (_word(collection), obj.get("name") if obj else self.name_of(collection, key[1]))
            users = ", ".join(
                sorted(set("%s %r" % (_word(_key(user["href"])[0]), user.get("name")) for user in missing[key]))
            )
            if obj is not None and key not in chosen_keys and not is_pending_deletion(obj):
                reasons.append("%s has pending changes (%s) and is used by %s" % (label, obj.get("update_type"), users))
                to_add.setdefault(collection, set()).add(obj.get("name"))
            else:
                reasons.append("%s is to be deleted but %s still uses it" % (label, users))
                for user in missing[key]:
                    user_key = _key(user["href"])
                    if user_key in by_key and user_key not in chosen_keys:
                        to_add.setdefault(user_key[0], set()).add(user.get("name"))
        advice = "; ".join(
            "%s: %s" % (collection, ", ".join(repr(name) for name in sorted(names)))
            for collection, names in sorted(to_add.items())
        )
        message = (
            "cannot provision only the objects named, because active policy would then refer to objects that are "
            "not provisioned: %s." % "; ".join(reasons)
        )
        if advice:
            message += " Provision them together: add %s." % advice
        return message + " Or name no objects at all to provision every pending change."

    def name_of(self, collection, obj_id):
        kind = dict(PROVISION_KINDS).get(collection)
        if kind is None:
            return obj_id
        href = self.client.org_path("sec_policy/draft/%s/%s" % (collection, obj_id))
        return self.refs.name(kind, href)

    # --- presenting ---------------------------------------------------------------------------------------------
    @staticmethod
    def shown(by_collection):
        """{collection: [{name, update_type}]} for every collection, sorted by name."""
        shown = dict((collection, []) for collection, _kind in PROVISION_KINDS)
        for collection, objects in by_collection.items():
            shown[collection] = sorted(
                (
                    {"name": obj.get("name") or obj.get("href"), "update_type": obj.get("update_type")}
                    for obj in objects
                ),
                key=lambda item: (str(item["name"]), str(item["update_type"])),
            )
        return shown


def _version_number(href):
    tail = href.rstrip("/").rsplit("/", 1)[-1]
    return int(tail) if tail.isdigit() else None
