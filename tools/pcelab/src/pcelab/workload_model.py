"""Workload documents: checking what clients send and building what the PCE answers (workloads.json).

Unmanaged workloads (made through the API) carry `"ven": null` and an `agent` object whose `href` and
`status` are null, as the real PCE answers them; managed ones (made by VEN activation) carry `ven.href`
and a full `agent`. `managed` in filters means "has a VEN".
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pcelab import validate as v
from pcelab.contract import contract
from pcelab.errors import LabError, invalid

if TYPE_CHECKING:
    from pcelab.core import Lab

WORKLOAD_CONTRACT = contract("workloads")
ENFORCEMENT_MODES = ("idle", "visibility_only", "selective", "full")
VISIBILITY_LEVELS = ("flow_full_detail", "flow_summary", "flow_drops", "flow_off", "enhanced_data_collection")
LINK_STATES = ("up", "down", "unknown")
MANAGED_WRITABLE = ("labels", "enforcement_mode", "visibility_level", "name", "description")
WRITABLE = (
    *MANAGED_WRITABLE,
    "hostname",
    "interfaces",
    "public_ip",
    "service_principal_name",
    "distinguished_name",
    "service_provider",
    "data_center",
    "data_center_zone",
    "os_id",
    "os_detail",
    "external_data_set",
    "external_data_reference",
    "ignored_interface_names",
    "online",
)
TEXT_FIELDS = (
    "name",
    "description",
    "hostname",
    "service_principal_name",
    "distinguished_name",
    "service_provider",
    "data_center",
    "data_center_zone",
    "os_id",
    "os_detail",
    "external_data_set",
    "external_data_reference",
)


def check_changes(
    lab: Lab, org_id: int, body: Any, managed: bool, creating: bool, labels: dict[str, dict | None] | None = None
) -> dict:
    """The writable fields of a workload body, normalised; labels come back expanded {href, key, value}.
    `labels` is a lookup cache shared across the items of a bulk call."""
    body = v.obj("workload", body)
    if managed:
        refused = sorted(set(body) - set(MANAGED_WRITABLE))
        if refused:
            raise invalid(
                f"property {refused[0]!r} of a managed workload is reported by its VEN and can't be changed",
                "managed_workload_property_read_only",
            )
    v.known_fields(body, WRITABLE, "workload")
    changes: dict = {}
    for name, value in body.items():
        changes[name] = _check_field(lab, org_id, name, value, labels if labels is not None else {})
    if creating and not (changes.get("hostname") or changes.get("name")):
        raise invalid("workload: hostname or name is required")
    return changes


def _check_field(lab: Lab, org_id: int, name: str, value: Any, labels: dict) -> Any:
    if name in TEXT_FIELDS:
        return v.optional_text(name, value)
    if name == "labels":
        return expand_labels(lab, org_id, v.href_refs("labels", value), labels)
    if name == "enforcement_mode":
        return v.choice(name, value, ENFORCEMENT_MODES)
    if name == "visibility_level":
        return v.choice(name, value, VISIBILITY_LEVELS)
    if name == "public_ip":
        return None if value is None else v.ip_address(name, value)
    if name == "interfaces":
        return [_interface(f"interfaces[{index}]", item) for index, item in enumerate(v.array(name, value, 256))]
    if name == "ignored_interface_names":
        return [v.text(f"{name}[{index}]", item) for index, item in enumerate(v.array(name, value, 256))]
    return v.boolean(name, value)  # online


def expand_labels(lab: Lab, org_id: int, hrefs: list[str], cache: dict | None = None) -> list[dict]:
    labels, keys, cache = [], set(), cache if cache is not None else {}
    for href in hrefs:
        if href not in cache:
            cache[href] = lab.label(org_id, href)
        label = cache[href]
        if label is None:
            raise invalid(f"label {href} does not exist", "invalid_uri")
        if label["key"] in keys:
            raise invalid(f"a workload can have only one {label['key']} label", "multiple_labels_with_same_key")
        keys.add(label["key"])
        labels.append(label)
    return labels


def _interface(name: str, value: Any) -> dict:
    entry = v.obj(name, value)
    v.known_fields(
        entry, ("name", "address", "cidr_block", "default_gateway_address", "link_state", "friendly_name"), name
    )
    v.required(entry, ("name", "address"), name)
    address = v.ip_address(f"{name}.address", entry["address"])
    max_prefix = 128 if ":" in address else 32
    cidr = entry.get("cidr_block")
    gateway = entry.get("default_gateway_address")
    link_state = entry.get("link_state")
    return {
        "name": v.text(f"{name}.name", entry["name"]),
        "address": address,
        "cidr_block": None if cidr is None else v.integer(f"{name}.cidr_block", cidr, 0, max_prefix),
        "default_gateway_address": None
        if gateway is None
        else v.ip_address(f"{name}.default_gateway_address", gateway),
        "link_state": None if link_state is None else v.choice(f"{name}.link_state", link_state, LINK_STATES),
        "network_detection_mode": None,
        # workloads.json has the interface's network ({href}); the lab has no networks: null, as on its VENs.
        "network": None,
        "friendly_name": v.optional_text(f"{name}.friendly_name", entry.get("friendly_name")),
        "loopback": address in ("127.0.0.1", "::1"),
    }


def unmanaged(org_id: int, uuid: str, changes: dict, user: str, stamp: str) -> dict:
    """A workload made through the API: every field of contract/workloads.json, these set, the rest empty."""
    doc = WORKLOAD_CONTRACT.new_document(
        {
            "href": f"/orgs/{org_id}/workloads/{uuid}",
            "deleted": False,
            "enforcement_mode": "idle",
            "visibility_level": "flow_summary",
            "blocked_connection_action": "drop",
            "agent": {
                "config": {
                    "log_traffic": False,
                    "visibility_level": None,
                    "mode": None,
                    "security_policy_update_mode": None,
                },
                "secure_connect": {"matching_issuer_name": None},
                "href": None,
                "status": None,
                "active_pce_fqdn": None,
                "target_pce_fqdn": None,
                "type": None,
                "unpair_allowed": False,
            },
            "created_at": stamp,
            "created_by": {"href": user},
            "updated_at": stamp,
            "updated_by": {"href": user},
            "caps": ["write", "delete"],
            # Counted when read (pcelab.enforcement_scope); stored as 0.
            "num_enforcement_boundaries": 0,
        }
    )
    doc.update(changes)
    return doc


def managed(org_id: int, uuid: str, fields: dict, stamp: str, lab: Lab) -> dict:
    """A workload for an activated VEN. `fields` must carry `ven` and `agent`; labels may be [{href}]."""
    if not isinstance(fields.get("ven"), dict) or not isinstance(fields.get("agent"), dict):
        raise LabError("input_validation_error", "a managed workload needs its ven and agent objects")
    creator = fields["agent"].get("href") or fields["ven"]["href"]
    doc = unmanaged(org_id, uuid, {}, creator, stamp)
    doc.update(apply_system_changes(doc, fields, lab, org_id, stamp))
    doc["caps"] = ["write"]
    return doc


def apply_system_changes(doc: dict, changes: dict, lab: Lab, org_id: int, stamp: str) -> dict:
    """Changes the VEN side reports; trusted, but labels are expanded and interfaces normalised."""
    updated = dict(doc)
    for name, value in changes.items():
        if name == "labels":
            value = expand_labels(lab, org_id, [ref["href"] for ref in value])
        elif name == "interfaces":
            value = [_interface(f"interfaces[{index}]", _reported(item)) for index, item in enumerate(value)]
        updated[name] = value
    updated["updated_at"] = stamp
    return updated


def _reported(interface: dict) -> dict:
    fields = ("name", "address", "cidr_block", "default_gateway_address", "link_state", "friendly_name")
    return {key: interface[key] for key in fields if key in interface}


def is_managed(doc: dict) -> bool:
    return bool(doc.get("ven"))


def addresses(doc: dict) -> set[str]:
    return {interface.get("address") for interface in doc.get("interfaces", []) if interface.get("address")}
