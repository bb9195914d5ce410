"""Hand-made PCE snapshots for policy tests, in the shapes of tools/pcelab/tests/pce_samples (active policy).

    org = Org()
    web = org.label("role", "web")
    rs = org.rule_set("RS-APP", scopes=[[app]])
    org.rule(rs, providers=[web], consumers=["ams"], services=["tcp/443"])
    org.workload("web1", labels=[web, app], addresses=["10.0.0.1"])
    snapshot = org.snapshot()

Actors and scope entries may be written as hrefs (the kind is read from the href) or as "ams"; services as
hrefs, inline dicts, or "tcp/80", "udp/1000-2000", "icmp/8", "icmp/3:4", "tcp", "all".
"""

from __future__ import annotations

import copy
import itertools
import uuid

STAMP = "2026-01-01T00:00:00.000Z"
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "gre": 47}


def _meta(href: str) -> dict:
    return {
        "href": href,
        "created_at": STAMP,
        "updated_at": STAMP,
        "deleted_at": None,
        "created_by": {"href": "/users/1"},
        "updated_by": {"href": "/users/1"},
        "deleted_by": None,
    }


class Org:
    def __init__(self, org_id: int = 1):
        self.org_id = org_id
        self.ids = itertools.count(2)
        self.labels: list[dict] = []
        self.label_groups: list[dict] = []
        self.ip_lists: list[dict] = []
        self.services: list[dict] = []
        self.rule_sets: list[dict] = []
        self.enforcement_boundaries: list[dict] = []
        self.workloads: list[dict] = []
        self.active = f"/orgs/{org_id}/sec_policy/active"
        # Built in on every PCE: the Any IP list and All Services (id 1).
        self.any_ip_list = self.ip_list("Any (0.0.0.0/0 and ::/0)", ["0.0.0.0/0", "::/0"], obj_id=1)
        self.all_services = self.service("All Services", [{"proto": -1}], obj_id=1)

    # --- objects -----------------------------------------------------------------------------------------
    def label(self, key: str, value: str) -> str:
        href = f"/orgs/{self.org_id}/labels/{next(self.ids)}"
        self.labels.append(
            {**_meta(href), "key": key, "value": value, "external_data_set": None, "external_data_reference": None}
        )
        return href

    def label_group(self, name: str, key: str, labels=(), sub_groups=()) -> str:
        href = f"{self.active}/label_groups/{uuid.UUID(int=next(self.ids))}"
        by_href = {label["href"]: label for label in self.labels}
        self.label_groups.append(
            {
                **_meta(href),
                "update_type": None,
                "name": name,
                "description": "",
                "key": key,
                "labels": [{"href": h, "key": by_href[h]["key"], "value": by_href[h]["value"]} for h in labels],
                "sub_groups": [{"href": h, "name": None} for h in sub_groups],
            }
        )
        return href

    def ip_list(self, name: str, ranges=(), fqdns=(), obj_id: int | None = None) -> str:
        """ranges: "10.0.0.0/8", "10.0.0.1", ("10.0.0.1", "10.0.0.9"); a leading "!" marks an exclusion."""
        href = f"{self.active}/ip_lists/{obj_id or next(self.ids)}"
        ip_ranges = []
        for item in ranges:
            exclusion = False
            if isinstance(item, str) and item.startswith("!"):
                exclusion, item = True, item[1:]
            if isinstance(item, tuple):
                ip_ranges.append({"from_ip": item[0], "to_ip": item[1], "exclusion": exclusion})
            else:
                ip_ranges.append({"from_ip": item, "exclusion": exclusion})
        self.ip_lists.append(
            {
                **_meta(href),
                "name": name,
                "description": None,
                "ip_ranges": ip_ranges,
                "fqdns": [{"fqdn": fqdn} for fqdn in fqdns],
            }
        )
        return href

    def service(self, name: str, ports, obj_id: int | None = None) -> str:
        href = f"{self.active}/services/{obj_id or next(self.ids)}"
        self.services.append(
            {
                **_meta(href),
                "name": name,
                "description": None,
                "description_url": None,
                "process_name": None,
                "service_ports": [_service_port(port) for port in ports],
            }
        )
        return href

    def rule_set(self, name: str, scopes=None, enabled: bool = True) -> dict:
        href = f"{self.active}/rule_sets/{next(self.ids)}"
        rule_set = {
            **_meta(href),
            "update_type": None,
            "name": name,
            "description": "",
            "enabled": enabled,
            "scopes": [[_scope_entry(ref) for ref in scope] for scope in (scopes if scopes is not None else [[]])],
            "rules": [],
            "deny_rules": [],
            "ip_tables_rules": [],
            "caps": ["write", "provision"],
        }
        self.rule_sets.append(rule_set)
        return rule_set

    def rule(
        self, rule_set: dict, providers, consumers, services, unscoped: bool = False, enabled: bool = True, **extra
    ) -> str:
        href = f"{rule_set['href']}/sec_rules/{next(self.ids)}"
        rule = {
            **_meta(href),
            "update_type": None,
            "description": "",
            "enabled": enabled,
            "providers": [_actor(ref) for ref in providers],
            "consumers": [_actor(ref) for ref in consumers],
            "consuming_security_principals": [],
            "sec_connect": False,
            "stateless": False,
            "machine_auth": False,
            "unscoped_consumers": unscoped,
            "network_type": "brn",
            "ingress_services": [_service_ref(ref) for ref in services],
            "resolve_labels_as": {"providers": ["workloads"], "consumers": ["workloads"]},
            **extra,
        }
        rule_set["rules"].append(rule)
        return href

    def deny_rule(
        self,
        rule_set: dict,
        providers,
        consumers,
        services,
        override: bool = False,
        unscoped: bool = False,
        enabled: bool = True,
    ) -> str:
        href = f"{rule_set['href']}/deny_rules/{next(self.ids)}"
        rule_set["deny_rules"].append(
            {
                **_meta(href),
                "update_type": None,
                "description": "",
                "enabled": enabled,
                "override": override,
                "unscoped_consumers": unscoped,
                "network_type": "brn",
                "providers": [_actor(ref) for ref in providers],
                "consumers": [_actor(ref) for ref in consumers],
                "ingress_services": [_service_ref(ref) for ref in services],
            }
        )
        return href

    def boundary(self, name: str, providers, consumers, services) -> str:
        href = f"{self.active}/enforcement_boundaries/{next(self.ids)}"
        self.enforcement_boundaries.append(
            {
                **_meta(href),
                "name": name,
                "providers": [_actor(ref) for ref in providers],
                "consumers": [_actor(ref) for ref in consumers],
                "ingress_services": [_service_ref(ref) for ref in services],
                "network_type": "brn",
                "caps": ["write", "provision"],
            }
        )
        return href

    def workload(
        self, hostname: str, labels=(), addresses=(), mode: str = "full", ignored=(), interfaces=None, **extra
    ) -> str:
        href = f"/orgs/{self.org_id}/workloads/{uuid.UUID(int=next(self.ids))}"
        by_href = {label["href"]: label for label in self.labels}
        if interfaces is None:
            interfaces = [
                {
                    "name": "eth0",
                    "address": address,
                    "cidr_block": 64 if ":" in address else 24,
                    "default_gateway_address": None,
                    "link_state": "up",
                    "network_detection_mode": None,
                    "friendly_name": None,
                    "loopback": False,
                }
                for address in addresses
            ]
        self.workloads.append(
            {
                "href": href,
                "deleted": False,
                "name": None,
                "description": None,
                "hostname": hostname,
                "public_ip": None,
                "enforcement_mode": mode,
                "visibility_level": "flow_summary",
                "interfaces": interfaces,
                "ignored_interface_names": list(ignored),
                "online": True,
                "labels": [{"href": h, "key": by_href[h]["key"], "value": by_href[h]["value"]} for h in labels],
                "ven": None,
                "agent": {"href": None, "status": None},
                **extra,
            }
        )
        return href

    def snapshot(self) -> dict:
        return copy.deepcopy(
            {
                "labels": self.labels,
                "label_groups": self.label_groups,
                "ip_lists": self.ip_lists,
                "services": self.services,
                "rule_sets": self.rule_sets,
                "enforcement_boundaries": self.enforcement_boundaries,
                "workloads": self.workloads,
            }
        )


def _kind(href: str) -> str:
    for part, kind in (
        ("/label_groups/", "label_group"),
        ("/labels/", "label"),
        ("/ip_lists/", "ip_list"),
        ("/workloads/", "workload"),
    ):
        if part in href:
            return kind
    raise ValueError(f"not an actor href: {href}")


def _actor(ref) -> dict:
    if isinstance(ref, dict):
        return ref
    if ref == "ams":
        return {"actors": "ams"}
    return {_kind(ref): {"href": ref}}


def _scope_entry(ref) -> dict:
    return ref if isinstance(ref, dict) else {_kind(ref): {"href": ref}}


def _service_port(port) -> dict:
    if isinstance(port, dict):
        return dict(port)
    text = str(port)
    if text == "all":
        return {"proto": -1}
    name, _slash, detail = text.partition("/")
    proto = PROTOCOLS[name] if name in PROTOCOLS else int(name)
    if not detail:
        return {"proto": proto}
    if proto in (1, 58):
        kind, _colon, code = detail.partition(":")
        return {"proto": proto, "icmp_type": int(kind), **({"icmp_code": int(code)} if code else {})}
    low, _dash, high = detail.partition("-")
    return {"proto": proto, "port": int(low), **({"to_port": int(high)} if high else {})}


def _service_ref(ref) -> dict:
    if isinstance(ref, str) and ref.startswith("/orgs/"):
        return {"href": ref}
    return _service_port(ref)


# --- looking at compiled policy -------------------------------------------------------------------------------
def compiler_for(org: Org, **options):
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.compiler import Compiler
    from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import Snapshot

    return Compiler(Snapshot(org.snapshot()), **options)


def compile_host(org: Org, host: str, mode: str | None = None, **options) -> dict:
    return compiler_for(org, **options).compile(host, mode)


def view(ir: dict, direction: str | None = None, action: str | None = None) -> list[dict]:
    """The IR's rules with set names replaced by their elements (as sets), for easy comparisons."""
    found = []
    for rule in ir["rules"]:
        if (direction and rule["direction"] != direction) or (action and rule["action"] != action):
            continue
        peers = set()
        for family in ("ipv4", "ipv6"):
            name = rule["peers"][family]
            if name:
                peers.update(ir["sets"][name]["elements"])
        found.append({**rule, "addresses": peers})
    return found


def peers(ir: dict, direction: str, action: str = "allow", href: str | None = None) -> set:
    """Every peer element of the rules of one direction and action (optionally from one PCE rule)."""
    return {
        element
        for rule in view(ir, direction, action)
        if href is None or href in rule["hrefs"]
        for element in rule["addresses"]
    }
