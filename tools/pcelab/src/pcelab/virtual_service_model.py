"""Virtual services: the draft/active policy type `virtual_services` (contract in contract/virtual_services.json).

The generic draft/active machinery (pcelab.api.policy, provisioning) stores and provisions them like the other
policy objects; this module holds what is theirs: the body check, the listing's filters and the answer's form.

- A virtual service names either one draft service (`service: {href}`) or its own `service_ports`, never both
  (terraform-provider-illumio-core: ExactlyOneOf). A PUT giving one drops the other; the one not set is left
  out of the answer, as in the real sample, which has `service_ports` and no `service` key.
- `labels` are references to live labels, at most one per key; answers expand them to {href, key, value}
  (the sample) at read time, so a renamed label shows its new value.
- `service_addresses` entries are {fqdn, description?, port?}, {ip, port} or {ip, network} (the Terraform
  provider's combinations). The lab has no networks API: a network is taken as a reference to
  /orgs/{org}/networks/<id> without an existence check.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from pcelab.contract import contract
from pcelab.errors import invalid

if TYPE_CHECKING:
    from pcelab.core import Lab
    from pcelab.http import Call

KIND = "virtual_services"
CONTRACT = contract(KIND)
CAPS = ("write", "provision", "delete")
REQUIRED = tuple(CONTRACT.rules["create_required"])
# What a POST may carry: every field that is not read-only.
WRITABLE = tuple(name for name, spec in CONTRACT.properties.items() if not spec.get("readOnly"))
# Fields a new draft starts with when the POST leaves them out (the contract's empty values).
DEFAULTS = {
    name: value
    for name, value in CONTRACT.new_document({}).items()
    if name == "pce_fqdn" or (name in WRITABLE and name not in REQUIRED)
}
NAME_FILTERS = ("name", "description")  # partial, any case
EXACT_FILTERS = ("external_data_set", "external_data_reference")
ONE_OF = ("service", "service_ports")


def check(call: Call, body: dict, current: dict | None) -> dict:
    """A POST (current None) or PUT body, checked against the contract and the lab's objects."""
    from pcelab.policy_model import live_draft, live_label

    fields = dict(CONTRACT.check_create(body) if current is None else CONTRACT.check_update(body))
    if "service" in fields and "service_ports" in fields:
        raise invalid("virtual_service: give service or service_ports, not both")
    if current is None and "service" not in fields and "service_ports" not in fields:
        raise invalid("virtual_service: service or service_ports is required")
    if "service" in fields:
        service = live_draft(call.lab, call.org_id, "services", fields["service"]["href"], "service")
        fields.update(service={"href": service["href"]}, service_ports=None)
    elif "service_ports" in fields:
        fields.update(service_ports=[_port(f"service_ports[{i}]", p) for i, p in enumerate(fields["service_ports"])])
        fields["service"] = None
    if "labels" in fields:
        hrefs, keys = [], set()
        for index, ref in enumerate(fields["labels"]):
            label = live_label(call.lab, call.org_id, ref["href"], f"labels[{index}]")
            if label["key"] in keys:
                raise invalid(f"labels: more than one {label['key']} label", "multiple_labels_with_same_key")
            keys.add(label["key"])
            hrefs.append({"href": label["href"]})
        fields["labels"] = hrefs
    if "service_addresses" in fields:
        addresses = fields["service_addresses"]
        fields["service_addresses"] = [
            _address(call, f"service_addresses[{i}]", item) for i, item in enumerate(addresses)
        ]
    if "ip_overrides" in fields:
        fields["ip_overrides"] = [_ip_or_cidr(f"ip_overrides[{i}]", ip) for i, ip in enumerate(fields["ip_overrides"])]
    return fields


def _port(name: str, entry: dict) -> dict:
    if "to_port" in entry:
        if "port" not in entry:
            raise invalid(f"{name}: to_port needs port")
        if entry["to_port"] < entry["port"]:
            raise invalid(f"{name}: to_port must not be below port")
    return {key: entry[key] for key in ("port", "proto", "to_port") if key in entry}


def _address(call: Call, name: str, entry: dict) -> dict:
    if ("fqdn" in entry) == ("ip" in entry):
        raise invalid(f"{name}: exactly one of fqdn and ip is required")
    if "fqdn" in entry:
        if "network" in entry:
            raise invalid(f"{name}: network goes with an ip, not an fqdn")
        return {key: entry[key] for key in ("fqdn", "description", "port") if key in entry}
    if "description" in entry:
        raise invalid(f"{name}: description goes with an fqdn, not an ip")
    if ("port" in entry) == ("network" in entry):
        raise invalid(f"{name}: an ip needs either a port or a network")
    try:
        address = {"ip": str(ipaddress.ip_address(entry["ip"]))}
    except ValueError:
        raise invalid(f"{name}.ip is not a valid IP address: {entry['ip']!r}") from None
    if "port" in entry:
        return {**address, "port": entry["port"]}
    href = entry["network"]["href"]
    prefix = f"/orgs/{call.org_id}/networks/"
    if not href.startswith(prefix) or not href[len(prefix) :] or "/" in href[len(prefix) :]:
        raise invalid(f"{name}.network: {href} is not a network href ({prefix}<id>)", "invalid_uri")
    return {**address, "network": {"href": href}}


def _ip_or_cidr(name: str, value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False)) if "/" in value else str(ipaddress.ip_address(value))
    except ValueError:
        raise invalid(f"{name} is not a valid IP address or CIDR range: {value!r}") from None


def render(lab: Lab, org_id: int, doc: dict) -> dict:
    """The answer: labels expanded to {href, key, value}; the one of service / service_ports not set left out."""
    labels = [lab.label(org_id, ref["href"]) or ref for ref in doc.get("labels", [])]
    answer = {**doc, "labels": labels}
    # In the contract's (the sample's) order; the one of service / service_ports not set is left out.
    return {
        name: answer[name] for name in CONTRACT.properties if name in answer and (answer[name] or name not in ONE_OF)
    }


def matcher(call: Call) -> Callable[[dict], bool]:
    """The listing's filters (contract query): a predicate on stored virtual services."""
    query = CONTRACT.check_query(call.query)
    groups = _label_groups(query["labels"]) if "labels" in query else None

    def keep(doc: dict) -> bool:
        for name in NAME_FILTERS:
            if name in query and query[name].lower() not in (doc.get(name) or "").lower():
                return False
        if any(name in query and doc.get(name) != query[name] for name in EXACT_FILTERS):
            return False
        if groups is not None:
            own = {ref["href"] for ref in doc.get("labels", [])}
            if not any(group <= own for group in groups):
                return False
        if "service" in query and (doc.get("service") or {}).get("href") != query["service"]:
            return False
        for name, field in (("service_address.fqdn", "fqdn"), ("service_address.ip", "ip")):
            if name in query and not any(query[name] in item.get(field, "") for item in doc["service_addresses"]):
                return False
        ports = _ports(call.lab, call.org_id, doc)
        if "service_ports.proto" in query and not any(p["proto"] == int(query["service_ports.proto"]) for p in ports):
            return False
        if "service_ports.port" in query:
            port = int(query["service_ports.port"])
            if not any(p.get("port") is not None and p["port"] <= port <= p.get("to_port", p["port"]) for p in ports):
                return False
        return True

    return keep


def _label_groups(text: str) -> list[set[str]]:
    try:
        groups = json.loads(text)
    except ValueError:
        groups = None
    if not isinstance(groups, list) or not all(
        isinstance(group, list) and all(isinstance(href, str) for href in group) for group in groups
    ):
        raise invalid("labels must be a JSON list of lists of label hrefs")
    return [set(group) for group in groups]


def _ports(lab: Lab, org_id: int, doc: dict) -> list[dict]:
    """The virtual service's ports: its own, or those of the service it names."""
    if doc.get("service"):
        found = lab.policy_doc(org_id, doc["service"]["href"])
        return list(found[2].get("service_ports", [])) if found else []
    return list(doc.get("service_ports") or [])


def label_hrefs(texts: list[str]) -> set[str]:
    """Label hrefs virtual services (as stored JSON texts) use."""
    return {ref["href"] for text in texts for ref in json.loads(text).get("labels", [])}
