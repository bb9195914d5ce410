"""Draft/active policy objects: what each type accepts, how references are checked, how drafts change.

Draft objects live in the object store with state "draft", provisioned copies with state "active" (their
hrefs, and the policy hrefs inside them, say /sec_policy/active/). `update_type` on a draft says how it
differs from active: "create", "update", "delete" (pending deletion, still listed with deleted_at), or null.
Rules and deny rules are kept inside their rule set's document, so provisioning a rule set carries them.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pcelab import validate as v
from pcelab import virtual_service_model
from pcelab.contract import contract
from pcelab.errors import invalid, not_found

if TYPE_CHECKING:
    from pcelab.core import Lab
    from pcelab.http import Call

DRAFT, ACTIVE = "draft", "active"
EXTERNAL = ("external_data_set", "external_data_reference")
REFERABLE = ("label_groups", "ip_lists", "services")
NETWORK_TYPES = ("brn", "non_brn", "all")
RESOLVE_AS = ("workloads", "virtual_services")
POLICY_HREF = re.compile(
    r'/orgs/(\d+)/sec_policy/(draft|active)/(label_groups|ip_lists|services|virtual_services)/([^"/]+)"'
)


@dataclass(frozen=True)
class PolicyType:
    kind: str  # collection name in the URL, e.g. "ip_lists"
    singular: str
    uuid_ids: bool
    fields: tuple[str, ...]
    required: tuple[str, ...]
    check: Callable[[Call, dict, dict | None], dict]  # (call, body, current draft or None) -> fields
    defaults: dict = field(default_factory=dict)
    caps: tuple[str, ...] | None = None
    # (call) -> predicate on stored drafts for the listing's query, where the type has its own filters
    matcher: Callable[[Call], Callable[[dict], bool]] | None = None


def href_of(org_id: int, state: str, kind: str, obj_id: Any) -> str:
    return f"/orgs/{org_id}/sec_policy/{state}/{kind}/{obj_id}"


def to_active(text: str) -> str:
    """An active copy's JSON: every draft policy href inside becomes the active one."""
    return text.replace("/sec_policy/draft/", "/sec_policy/active/")


def parse_draft_href(org_id: int, href: str, kind: str, states: tuple[str, ...] = (DRAFT,)) -> str | None:
    """The object id in a policy href of one of `states` (draft by default), else None."""
    if not isinstance(href, str):
        return None
    for state in states:
        prefix = f"/orgs/{org_id}/sec_policy/{state}/{kind}/"
        if href.startswith(prefix) and "/" not in href[len(prefix) :]:
            return href[len(prefix) :] or None
    return None


def live_draft(lab: Lab, org_id: int, kind: str, href: str, what: str) -> dict:
    """The live draft object a reference names, or a 406 naming the field. Callers store the answer's href.

    The reference may be the draft href or the active href of the same object: the official SDK's documented
    Rule.build and EnforcementBoundary.build examples, and its integration tests against real PCEs
    (illumio-py tests/integration/test_intg_rules.py), name `pce.get_default_ip_list()`, whose href is
    /sec_policy/active/ip_lists/1. What a draft object names is its draft self, so the lab stores the draft href
    (no public source shows the PCE's answer back; a draft rule naming draft objects is what the PCE's UI makes).
    """
    obj_id = parse_draft_href(org_id, href, kind, (DRAFT, ACTIVE))
    row = lab.store.row(org_id, kind, obj_id, DRAFT) if obj_id else None
    named_active = obj_id is not None and parse_draft_href(org_id, href, kind) is None
    if named_active and lab.store.row(org_id, kind, obj_id, ACTIVE) is None:
        row = None  # an active href must name something provisioned
    if row is None or row["deleted"]:
        raise invalid(f"{what}: {href} is not an existing draft {kind[:-1].replace('_', ' ')}", "invalid_uri")
    return json.loads(row["doc"])


def live_label(lab: Lab, org_id: int, href: str, what: str) -> dict:
    label = lab.label(org_id, href)
    if label is None:
        raise invalid(f"{what}: {href} is not an existing label", "invalid_uri")
    return label


# --- field checks per type ------------------------------------------------------------------------------------
def _common(body: dict) -> dict:
    fields = {}
    if "name" in body:
        fields["name"] = v.text("name", body["name"])
    if "description" in body:
        fields["description"] = v.optional_text("description", body["description"])
    for name in EXTERNAL:
        if name in body:
            fields[name] = v.optional_text(name, body[name], 255)
    return fields


def check_ip_list(call: Call, body: dict, current: dict | None) -> dict:
    fields = _common(body)
    if "ip_ranges" in body:
        fields["ip_ranges"] = [
            _ip_range(f"ip_ranges[{i}]", item) for i, item in enumerate(v.array("ip_ranges", body["ip_ranges"]))
        ]
    if "fqdns" in body:
        fields["fqdns"] = [_fqdn(f"fqdns[{i}]", item) for i, item in enumerate(v.array("fqdns", body["fqdns"]))]
    return fields


def _ip_range(name: str, value: Any) -> dict:
    entry = v.obj(name, value)
    v.known_fields(entry, ("from_ip", "to_ip", "description", "exclusion"), name)
    v.required(entry, ("from_ip",), name)
    result = {"from_ip": v.ip_or_network(f"{name}.from_ip", entry["from_ip"])}
    if entry.get("to_ip") is not None:
        if "/" in result["from_ip"]:
            raise invalid(f"{name}: to_ip can't be combined with a CIDR from_ip")
        low = ipaddress.ip_address(result["from_ip"])
        high = ipaddress.ip_address(v.ip_address(f"{name}.to_ip", entry["to_ip"]))
        if low.version != high.version or high < low:
            raise invalid(f"{name}: to_ip must be the same IP version as from_ip and not below it")
        result["to_ip"] = str(high)
    if entry.get("description") is not None:
        result["description"] = v.optional_text(f"{name}.description", entry["description"])
    result["exclusion"] = v.boolean(f"{name}.exclusion", entry.get("exclusion", False))
    return result


FQDN_PATTERN = re.compile(r"^(\*\.)?([A-Za-z0-9_]([A-Za-z0-9_-]{0,62})?\.)*[A-Za-z0-9_-]{1,63}\.?$")


def _fqdn(name: str, value: Any) -> dict:
    entry = v.obj(name, value)
    v.known_fields(entry, ("fqdn", "description"), name)
    v.required(entry, ("fqdn",), name)
    fqdn = v.text(f"{name}.fqdn", entry["fqdn"])
    if not FQDN_PATTERN.match(fqdn):
        raise invalid(f"{name}.fqdn is not a valid domain name: {fqdn!r}")
    result = {"fqdn": fqdn}
    if entry.get("description") is not None:
        result["description"] = v.optional_text(f"{name}.description", entry["description"])
    return result


def check_service(call: Call, body: dict, current: dict | None) -> dict:
    fields = _common(body)
    for name in ("description_url", "process_name"):
        if name in body:
            fields[name] = v.optional_text(name, body[name], 1024)
    if "service_ports" in body:
        items = v.array("service_ports", body["service_ports"])
        fields["service_ports"] = [service_port(f"service_ports[{i}]", item) for i, item in enumerate(items)]
    if "windows_services" in body:
        items = v.array("windows_services", body["windows_services"])
        fields["windows_services"] = [_windows_service(f"windows_services[{i}]", item) for i, item in enumerate(items)]
    return fields


PORT_FIELDS = ("port", "to_port", "proto", "icmp_type", "icmp_code")


def service_port(name: str, value: Any, extra: tuple[str, ...] = ()) -> dict:
    """{proto, port?, to_port?, icmp_type?, icmp_code?}; proto -1 means all services."""
    entry = v.obj(name, value)
    v.known_fields(entry, (*PORT_FIELDS, *extra), name)
    v.required(entry, ("proto",), name)
    result = {"proto": v.integer(f"{name}.proto", entry["proto"], -1, 255)}
    if entry.get("port") is not None:
        if result["proto"] not in (6, 17):
            raise invalid(f"{name}: port is only allowed with proto 6 (TCP) or 17 (UDP)")
        result["port"] = v.integer(f"{name}.port", entry["port"], 0, 65535)
    if entry.get("to_port") is not None:
        if "port" not in result:
            raise invalid(f"{name}: to_port needs port")
        result["to_port"] = v.integer(f"{name}.to_port", entry["to_port"], result["port"], 65535)
    for icmp in ("icmp_type", "icmp_code"):
        if entry.get(icmp) is not None:
            if result["proto"] not in (1, 58):
                raise invalid(f"{name}: {icmp} is only allowed with proto 1 (ICMP) or 58 (ICMPv6)")
            result[icmp] = v.integer(f"{name}.{icmp}", entry[icmp], 0, 255)
    return result


def _windows_service(name: str, value: Any) -> dict:
    entry = v.obj(name, value)
    names = {key: entry[key] for key in ("service_name", "process_name") if entry.get(key) is not None}
    if not names:
        raise invalid(f"{name}: service_name or process_name is required")
    result = {key: v.text(f"{name}.{key}", text) for key, text in names.items()}
    if "proto" in entry:
        result.update(service_port(name, {k: entry[k] for k in PORT_FIELDS if k in entry}))
    else:
        v.known_fields(entry, ("service_name", "process_name"), name)
    return result


def check_label_group(call: Call, body: dict, current: dict | None) -> dict:
    fields = _common(body)
    if "key" in body:
        key = v.text("key", body["key"], 64)
        if current is not None and key != current["key"]:
            raise invalid("the key of a label group can't be changed", "label_group_key_immutable")
        if current is None and not call.lab.store.find(call.org_id, "label_dimensions", key=key):
            raise invalid(f"label key {key!r} is not a label dimension", "label_key_not_supported")
        fields["key"] = key
    key = fields.get("key") or (current or {}).get("key")
    if "labels" in body:
        hrefs = v.href_refs("labels", body["labels"])
        for href in hrefs:
            if live_label(call.lab, call.org_id, href, "labels")["key"] != key:
                raise invalid(f"label {href} does not have the group's key {key!r}", "label_group_key_mismatch")
        fields["labels"] = [{"href": href} for href in hrefs]
    if "sub_groups" in body:
        hrefs = v.href_refs("sub_groups", body["sub_groups"])
        groups = [live_draft(call.lab, call.org_id, "label_groups", href, "sub_groups") for href in hrefs]
        for group in groups:
            if group["key"] != key:
                message = f"label group {group['href']} does not have the group's key {key!r}"
                raise invalid(message, "label_group_key_mismatch")
        hrefs = [group["href"] for group in groups]
        if current is not None:
            _refuse_cycle(call.lab, call.org_id, current["href"], hrefs)
        fields["sub_groups"] = [{"href": href} for href in hrefs]
    return fields


def _refuse_cycle(lab: Lab, org_id: int, own_href: str, sub_groups: list[str]) -> None:
    pending, seen = list(sub_groups), set()
    while pending:
        href = pending.pop()
        if href == own_href:
            raise invalid("a label group can't contain itself, directly or through sub-groups", "label_group_cycle")
        if href in seen:
            continue
        seen.add(href)
        found = lab.policy_doc(org_id, href)
        if found:
            pending.extend(ref["href"] for ref in found[2].get("sub_groups", []))


def check_rule_set(call: Call, body: dict, current: dict | None) -> dict:
    fields = _common(body)
    if "enabled" in body:
        fields["enabled"] = v.boolean("enabled", body["enabled"])
    if "scopes" in body:
        scopes = v.array("scopes", body["scopes"], 1000)
        fields["scopes"] = [_scope(call, f"scopes[{i}]", scope) for i, scope in enumerate(scopes)]
    if "rules" in body:
        # Checked and given hrefs by the caller (api.rules.new_rules), which needs the rule set's href.
        fields["rules"] = body["rules"]
    if "ip_tables_rules" in body:
        rules = v.array("ip_tables_rules", body["ip_tables_rules"], 1000)
        fields["ip_tables_rules"] = [v.obj(f"ip_tables_rules[{i}]", rule) for i, rule in enumerate(rules)]
    return fields


def _scope(call: Call, name: str, value: Any) -> list[dict]:
    entries, keys = [], set()
    for index, item in enumerate(v.array(name, value, 64)):
        what = f"{name}[{index}]"
        entry = v.obj(what, item)
        if len(entry) != 1 or next(iter(entry)) not in ("label", "label_group"):
            raise invalid(f"{what} must be {{'label': {{'href': ...}}}} or {{'label_group': {{'href': ...}}}}")
        kind, ref = next(iter(entry.items()))
        href = v.href_ref(what, ref)
        if kind == "label":
            key = live_label(call.lab, call.org_id, href, what)["key"]
        else:
            group = live_draft(call.lab, call.org_id, "label_groups", href, what)
            key, href = group["key"], group["href"]
        if key in keys:
            raise invalid(f"{name} names more than one {key} label or label group", "scope_key_not_unique")
        keys.add(key)
        entries.append({kind: {"href": href}})
    return entries


def check_actors(call: Call, name: str, value: Any, allowed: tuple[str, ...]) -> list[dict]:
    actors = []
    for index, item in enumerate(v.array(name, value, 1000)):
        what = f"{name}[{index}]"
        entry = v.obj(what, item)
        if len(entry) != 1 or next(iter(entry)) not in allowed:
            raise invalid(f"{what} must be one of: " + ", ".join(allowed))
        kind, ref = next(iter(entry.items()))
        if kind == "actors":
            if ref != "ams":
                raise invalid(f'{what}: the only actors value is "ams" (all workloads)')
            actors.append({"actors": "ams"})
            continue
        href = v.href_ref(what, ref)
        if kind == "label":
            live_label(call.lab, call.org_id, href, what)
        elif kind == "workload":
            if call.lab.workload(call.org_id, href.rsplit("/", 1)[-1]) is None or not href.startswith(
                f"/orgs/{call.org_id}/workloads/"
            ):
                raise invalid(f"{what}: {href} is not an existing workload", "invalid_uri")
        else:
            href = live_draft(call.lab, call.org_id, f"{kind}s", href, what)["href"]
        actors.append({kind: {"href": href}})
    if {"actors": "ams"} in actors and actors.count({"actors": "ams"}) > 1:
        raise invalid(f'{name} lists "ams" twice')
    return actors


def check_services(call: Call, name: str, value: Any) -> list[dict]:
    services = []
    for index, item in enumerate(v.array(name, value, 1000)):
        what = f"{name}[{index}]"
        entry = v.obj(what, item)
        if "href" in entry:
            href = live_draft(call.lab, call.org_id, "services", v.href_ref(what, entry), what)["href"]
            services.append({"href": href})
        else:
            services.append(service_port(what, entry))
    return services


def check_enforcement_boundary(call: Call, body: dict, current: dict | None) -> dict:
    fields = _common(body)
    actor_kinds = ("actors", "label", "label_group", "ip_list")
    for side in ("providers", "consumers"):
        if side in body:
            fields[side] = check_actors(call, side, body[side], actor_kinds)
    if "ingress_services" in body:
        fields["ingress_services"] = check_services(call, "ingress_services", body["ingress_services"])
    if "network_type" in body:
        fields["network_type"] = v.choice("network_type", body["network_type"], NETWORK_TYPES)
    return fields


TYPES = {
    "ip_lists": PolicyType(
        "ip_lists",
        "ip_list",
        False,
        contract("ip_lists").writable(),
        contract("ip_lists").required,
        check_ip_list,
        {"description": None, "ip_ranges": [], "fqdns": [], "external_data_set": None, "external_data_reference": None},
    ),
    "services": PolicyType(
        "services",
        "service",
        False,
        contract("services").writable(),
        contract("services").required,
        check_service,
        {
            "description": None,
            "description_url": None,
            "process_name": None,
            "service_ports": [],
            "external_data_set": None,
            "external_data_reference": None,
        },
    ),
    "label_groups": PolicyType(
        "label_groups",
        "label_group",
        True,
        contract("label_groups").writable(),
        contract("label_groups").required,
        check_label_group,
        {"description": "", "labels": [], "sub_groups": [], "external_data_set": None, "external_data_reference": None},
    ),
    "rule_sets": PolicyType(
        "rule_sets",
        "rule_set",
        False,
        contract("rule_sets").writable(),
        contract("rule_sets").required,
        check_rule_set,
        {
            "description": "",
            "enabled": True,
            "rules": [],
            "deny_rules": [],
            "ip_tables_rules": [],
            "external_data_set": None,
            "external_data_reference": None,
        },
        caps=("write", "provision"),
    ),
    "enforcement_boundaries": PolicyType(
        "enforcement_boundaries",
        "enforcement_boundary",
        False,
        contract("enforcement_boundaries").writable(),
        contract("enforcement_boundaries").required,
        check_enforcement_boundary,
        {"network_type": "brn"},
        caps=("write", "provision"),
    ),
    "virtual_services": PolicyType(
        "virtual_services",
        "virtual_service",
        True,
        virtual_service_model.WRITABLE,
        virtual_service_model.REQUIRED,
        virtual_service_model.check,
        virtual_service_model.DEFAULTS,
        caps=virtual_service_model.CAPS,
        matcher=virtual_service_model.matcher,
    ),
}


def new_draft(call: Call, ptype: PolicyType, obj_id: Any, fields: dict) -> dict:
    stamp = call.lab.stamp()
    doc = {
        "href": href_of(call.org_id, DRAFT, ptype.kind, obj_id),
        "created_at": stamp,
        "updated_at": stamp,
        "deleted_at": None,
        "created_by": {"href": call.user},
        "updated_by": {"href": call.user},
        "deleted_by": None,
        "update_type": "create",
        **{key: (list(value) if isinstance(value, list) else value) for key, value in ptype.defaults.items()},
        **fields,
    }
    if ptype.caps is not None:
        doc["caps"] = list(ptype.caps)
    return doc


def mark_updated(call: Call, doc: dict) -> None:
    """A draft edited: pending "update" if it is provisioned, else it stays a pending "create"."""
    obj_id = doc["href"].split("/")[6]
    in_active = call.lab.store.row(call.org_id, doc["href"].split("/")[5], obj_id, ACTIVE) is not None
    doc.update(
        update_type="update" if in_active else "create", updated_at=call.lab.stamp(), updated_by={"href": call.user}
    )


def draft_or_404(call: Call, kind: str, obj_id: str) -> dict:
    doc = call.lab.store.doc(call.org_id, kind, obj_id, DRAFT)
    if doc is None:
        raise not_found(href_of(call.org_id, DRAFT, kind, obj_id))
    return doc


def render(lab: Lab, org_id: int, kind: str, doc: dict) -> dict:
    """What clients see: label groups answer their labels and sub-groups expanded (label_groups.json), virtual
    services their labels (virtual_services.json)."""
    if kind == "virtual_services":
        return virtual_service_model.render(lab, org_id, doc)
    if kind != "label_groups":
        return doc
    labels = [lab.label(org_id, ref["href"]) or ref for ref in doc.get("labels", [])]
    sub_groups = []
    for ref in doc.get("sub_groups", []):
        found = lab.policy_doc(org_id, ref["href"])
        sub_groups.append({"href": ref["href"], "name": found[2]["name"] if found else None})
    return {**doc, "labels": labels, "sub_groups": sub_groups}


def referenced_policy_hrefs(text: str) -> set[tuple[str, str, str]]:
    """(state, kind, id) of every label group, IP list, service and virtual service named in a document's JSON."""
    return {(match[1], match[2], match[3]) for match in POLICY_HREF.findall(text)}
