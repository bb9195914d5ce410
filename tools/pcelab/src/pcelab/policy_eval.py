"""The active (provisioned) policy of an org, evaluated against traffic flows: the `policy_decision` of a flow.

Built once per traffic query from the active objects only (`/sec_policy/active/...`): rule sets with their
allow and deny rules, enforcement boundaries (deny rules without a scope), label groups (sub-groups
resolved), IP lists and services. Drafts never count.

Semantics (see DESIGN.md, "PCE policy semantics"):

- A rule set applies under each of its scopes; a workload is in a scope when it carries, for every entry,
  that label or any label of that label group (sub-groups included). No scopes, or an empty scope, mean
  every workload. Disabled rule sets and disabled rules are ignored.
- Label, label-group and "ams" actors name workloads, restricted to the scope (intra-scope) except for
  consumers of a rule with `unscoped_consumers`; workload and IP-list actors are never scoped. An IP list
  matches an address inside its ranges and outside its exclusions (FQDN entries match nothing).
- Services: service hrefs or inline {proto, port, to_port}; proto -1 is every protocol, a protocol without
  a port is that whole protocol; ICMP type/code can't be told from a flow, so ICMP entries match by protocol.
- The flow is judged by its destination workload when there is one (inbound: it is a provider through a
  label, label group, "ams" or workload actor; the source matches any consumer actor, IP lists by address),
  else by its source workload (outbound: it is a consumer through a workload actor and the destination
  address is in a provider IP list). Neither side a workload: "unknown".
- Precedence: override deny > allow > deny > nothing. What the judging workload does with that:

  ============================  =====================  =========  =====================  ===================
  enforcement                   override deny          allow      deny                   no rule
  ============================  =====================  =========  =====================  ===================
  full                          blocked                allowed    blocked                blocked
  selective                     blocked                allowed    blocked                potentially_blocked
  visibility_only               potentially_blocked    allowed    potentially_blocked    potentially_blocked
  idle; managed without mode    potentially_blocked    allowed    potentially_blocked    potentially_blocked
  unmanaged without mode        unknown                allowed    unknown                unknown
  ============================  =====================  =========  =====================  ===================

  Only an enforcing workload (full, selective) blocks anything, so visibility_only and idle only ever say
  "potentially_blocked". Unmanaged workloads (no VEN) are judged by their enforcement mode like managed
  ones (the collection enforces it on agentless hosts with their own firewall; the lab gives new unmanaged
  workloads "idle"); only one without any mode says "unknown" when no allow rule matches.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

ACTIVE = "active"
ANY = "*"  # index key of "ams" actors: every workload
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Workload(Protocol):
    """What the evaluator needs of a workload (traffic.WorkloadView has it)."""

    href: str
    enforcement_mode: str | None
    managed: bool

    @property
    def label_hrefs(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class IpList:
    included: tuple[Network, ...]
    excluded: tuple[Network, ...]

    def __contains__(self, address: Address) -> bool:
        return any(address in network for network in self.included if network.version == address.version) and not any(
            address in network for network in self.excluded if network.version == address.version
        )


def parse_ip_list(ranges: Iterable[dict]) -> IpList:
    included, excluded = [], []
    for entry in ranges:
        try:
            if entry.get("to_ip"):
                low, high = ipaddress.ip_address(entry["from_ip"]), ipaddress.ip_address(entry["to_ip"])
                blocks = list(ipaddress.summarize_address_range(low, high))
            else:
                blocks = [ipaddress.ip_network(entry["from_ip"], strict=False)]
        except (KeyError, TypeError, ValueError):
            continue  # an FQDN-only or malformed entry matches no address
        (excluded if entry.get("exclusion") else included).extend(blocks)
    return IpList(tuple(included), tuple(excluded))


# A port range: (proto or -1 for all, first port or None for the whole protocol, last port).
PortRange = tuple[int, int | None, int | None]


def parse_ports(entries: Iterable[dict]) -> list[PortRange]:
    ranges = []
    for entry in entries:
        proto = entry.get("proto")
        if not isinstance(proto, int):
            continue  # a Windows service named only by process/service name: flows don't carry it
        port = entry.get("port") if proto in (6, 17) else None
        to_port = entry.get("to_port") if port is not None else None
        ranges.append((proto, port, to_port if to_port is not None else port))
    return ranges


def ports_match(ranges: Iterable[PortRange], port: int, proto: int) -> bool:
    for range_proto, first, last in ranges:
        if range_proto == -1 or (range_proto == proto and (first is None or first <= port <= last)):
            return True
    return False


@dataclass(frozen=True)
class Rule:
    """An enabled allow or deny rule, its references resolved. `kind`: "allow", "deny" or "override"."""

    href: str
    kind: str
    scopes: tuple[tuple[frozenset[str], ...], ...]  # the rule set's scopes: per entry, the labels that satisfy it
    unscoped_consumers: bool
    providers: tuple[tuple[str, Any], ...]  # (kind, label hrefs | workload href | IpList | None for ams)
    consumers: tuple[tuple[str, Any], ...]
    ports: tuple[PortRange, ...]


def in_scope(scope: tuple[frozenset[str], ...], labels: frozenset[str]) -> bool:
    return all(entry & labels for entry in scope)


class ActivePolicy:
    """The org's active policy, resolved and indexed by the workload labels that make a rule apply."""

    def __init__(self, docs: dict[str, list[dict]]):
        self.label_groups = _resolve_label_groups(docs.get("label_groups", []))
        self.ip_lists = {doc["href"]: parse_ip_list(doc.get("ip_ranges", [])) for doc in docs.get("ip_lists", [])}
        self.services = {
            doc["href"]: parse_ports([*doc.get("service_ports", []), *doc.get("windows_services", [])])
            for doc in docs.get("services", [])
        }
        self.rules: list[Rule] = []
        for rule_set in docs.get("rule_sets", []):
            if rule_set.get("enabled", True) is False:
                continue
            scopes = tuple(
                tuple(self._scope_entry(entry) for entry in scope) for scope in rule_set.get("scopes") or [[]]
            )
            for field, deny in (("rules", False), ("deny_rules", True)):
                for rule in rule_set.get(field, []):
                    if rule.get("enabled", True) is not False:
                        kind = ("override" if rule.get("override") else "deny") if deny else "allow"
                        self.rules.append(self._rule(rule, kind, scopes, bool(rule.get("unscoped_consumers"))))
        for boundary in docs.get("enforcement_boundaries", []):
            self.rules.append(self._rule(boundary, "deny", ((),), True))
        # Index: workload label href / workload href / ANY -> (rule, scope index, scoped) where a workload with
        # that key can be a provider (inbound) or a consumer (outbound) of the rule.
        self.providers: dict[str, list[tuple[Rule, int, bool]]] = {}
        self.consumers: dict[str, list[tuple[Rule, int, bool]]] = {}
        for rule in self.rules:
            for index in range(len(rule.scopes)):
                self._index(self.providers, rule, index, rule.providers, scoped=True)
                if any(kind == "ip_list" for kind, _ in rule.providers):
                    self._index(self.consumers, rule, index, rule.consumers, scoped=not rule.unscoped_consumers)

    @classmethod
    def load(cls, store, org_id: int) -> ActivePolicy:
        kinds = ("label_groups", "ip_lists", "services", "rule_sets", "enforcement_boundaries")
        return cls({kind: store.docs(org_id, kind, ACTIVE) for kind in kinds})

    def _scope_entry(self, entry: dict) -> frozenset[str]:
        if "label" in entry:
            return frozenset({entry["label"]["href"]})
        return self.label_groups.get(entry.get("label_group", {}).get("href"), frozenset())

    def _actor(self, actor: dict) -> tuple[str, Any] | None:
        kind, value = next(iter(actor.items()))
        if kind == "actors":
            return ("ams", None) if value == "ams" else None
        href = value.get("href") if isinstance(value, dict) else None
        if kind == "label":
            return "labels", frozenset({href})
        if kind == "label_group":
            return "labels", self.label_groups.get(href, frozenset())
        if kind == "workload":
            return "workload", href
        if kind == "ip_list":
            return "ip_list", self.ip_lists.get(href, IpList((), ()))
        return None

    def _rule(self, rule: dict, kind: str, scopes: tuple, unscoped: bool) -> Rule:
        ports: list[PortRange] = []
        for service in rule.get("ingress_services", []):
            ports.extend(self.services.get(service["href"], []) if "href" in service else parse_ports([service]))
        actors = {
            side: tuple(a for a in (self._actor(actor) for actor in rule.get(side, []) if actor) if a)
            for side in ("providers", "consumers")
        }
        return Rule(
            rule.get("href", ""), kind, scopes, unscoped, actors["providers"], actors["consumers"], tuple(ports)
        )

    @staticmethod
    def _index(index: dict, rule: Rule, scope: int, actors: tuple, scoped: bool) -> None:
        for kind, value in actors:
            if kind == "ams":
                # Within a scope, only workloads with a label of its first entry can qualify.
                keys = rule.scopes[scope][0] if scoped and rule.scopes[scope] else (ANY,)
                for key in keys:
                    index.setdefault(key, []).append((rule, scope, scoped))
            elif kind == "labels":
                for label in value:
                    index.setdefault(label, []).append((rule, scope, scoped))
            elif kind == "workload":
                index.setdefault(value, []).append((rule, scope, False))


def _resolve_label_groups(docs: list[dict]) -> dict[str, frozenset[str]]:
    by_href = {doc["href"]: doc for doc in docs}
    resolved = {}
    for href in by_href:
        members: set[str] = set()
        pending, seen = [href], set()
        while pending:
            current = pending.pop()
            if current in seen or current not in by_href:
                continue
            seen.add(current)
            members.update(ref["href"] for ref in by_href[current].get("labels", []))
            pending.extend(ref["href"] for ref in by_href[current].get("sub_groups", []))
        resolved[href] = frozenset(members)
    return resolved


class PolicyEvaluator:
    """Policy decisions of flows under one ActivePolicy; caches per workload and per flow shape."""

    def __init__(self, policy: ActivePolicy, workload_of: Callable[[str], Workload | None]):
        self.policy = policy
        self.workload_of = workload_of
        self._labels: dict[str, frozenset[str]] = {}
        self._applicable: dict[tuple[str, str], list[tuple[Rule, int]]] = {}
        self._addresses: dict[str, Address] = {}
        self._decisions: dict[tuple, str] = {}

    def decision(self, src_ip: str, dst_ip: str, port: int, proto: int) -> str:
        src, dst = self.workload_of(src_ip), self.workload_of(dst_ip)
        if dst is not None:
            key = ("in", src_ip, dst.href, port, proto)
        elif src is not None:
            key = ("out", src.href, dst_ip, port, proto)
        else:
            return "unknown"
        if key not in self._decisions:
            judge = dst if dst is not None else src
            verdict = (
                self._inbound(src_ip, src, dst, port, proto)
                if dst is not None
                else self._outbound(src, dst_ip, port, proto)
            )
            self._decisions[key] = outcome(verdict, judge)
        return self._decisions[key]

    # --- matching ---------------------------------------------------------------------------------------------
    def _inbound(self, src_ip: str, src: Workload | None, dst: Workload, port: int, proto: int) -> str | None:
        """The strongest matching rule kind for traffic into `dst`, or None."""
        src_labels = self.labels(src) if src is not None else None
        found: set[str] = set()
        for rule, scope in self._applicable_to(dst, "providers"):
            if rule.kind in found or not ports_match(rule.ports, port, proto):
                continue
            if self._consumer_matches(rule, scope, src_ip, src, src_labels):
                found.add(rule.kind)
                if rule.kind == "override":
                    break
        return strongest(found)

    def _consumer_matches(self, rule: Rule, scope: int, src_ip: str, src, src_labels) -> bool:
        for kind, value in rule.consumers:
            if kind == "ip_list":
                if self.address(src_ip) in value:
                    return True
                continue
            if src is None:
                continue
            if kind == "workload":
                if value == src.href:
                    return True
                continue
            if kind == "labels" and not value & src_labels:
                continue
            if rule.unscoped_consumers or in_scope(rule.scopes[scope], src_labels):
                return True
        return False

    def _outbound(self, src: Workload, dst_ip: str, port: int, proto: int) -> str | None:
        address = self.address(dst_ip)
        found: set[str] = set()
        for rule, _scope in self._applicable_to(src, "consumers"):
            if rule.kind in found or not ports_match(rule.ports, port, proto):
                continue
            if any(kind == "ip_list" and address in value for kind, value in rule.providers):
                found.add(rule.kind)
                if rule.kind == "override":
                    break
        return strongest(found)

    def _applicable_to(self, workload: Workload, side: str) -> list[tuple[Rule, int]]:
        """(rule, scope index) pairs where the workload is on `side` (providers or consumers)."""
        key = (workload.href, side)
        if key not in self._applicable:
            index = self.policy.providers if side == "providers" else self.policy.consumers
            labels = self.labels(workload)
            candidates = [*index.get(ANY, ()), *index.get(workload.href, ())]
            for label in labels:
                candidates.extend(index.get(label, ()))
            chosen, seen = [], set()
            for rule, scope, scoped in candidates:
                if (id(rule), scope) in seen:
                    continue
                if scoped and not in_scope(rule.scopes[scope], labels):
                    continue
                seen.add((id(rule), scope))
                chosen.append((rule, scope))
            self._applicable[key] = chosen
        return self._applicable[key]

    def labels(self, workload: Workload) -> frozenset[str]:
        if workload.href not in self._labels:
            self._labels[workload.href] = workload.label_hrefs
        return self._labels[workload.href]

    def address(self, ip: str) -> Address:
        if ip not in self._addresses:
            self._addresses[ip] = ipaddress.ip_address(ip)
        return self._addresses[ip]


def strongest(kinds: set[str]) -> str | None:
    for kind in ("override", "allow", "deny"):
        if kind in kinds:
            return kind
    return None


def outcome(verdict: str | None, workload: Workload) -> str:
    """The policy decision of the judging workload for a verdict (see the table in the module docstring)."""
    mode = workload.enforcement_mode
    if verdict == "allow":
        return "allowed"
    if mode == "full" or (mode == "selective" and verdict in ("deny", "override")):
        return "blocked"
    if mode is None and not workload.managed:
        return "unknown"
    return "potentially_blocked"


EMPTY = ActivePolicy({})
