# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compile the PCE's active policy into each host's inbound/outbound allow and deny entries (see ir.py).

Semantics (docs/DESIGN.md, "PCE policy semantics"):

- A workload matches a scope when it has every label of it; a label group in a scope (or in a rule) matches
  a workload that has any label of the group or of its sub-groups, recursively. A rule set applies under
  each of its scopes; an empty scope (and a rule set without scopes) means every workload.
- Actors of one side of a rule: label and label-group actors are combined the PCE's way, OR within one
  label key and AND across keys (`role=web, role=db, env=prod` is (web or db) and prod), and intersected
  with the scope. Providers are always scoped; consumers too unless `unscoped_consumers` (extra-scope).
  `ams` is every workload (of the scope, where the side is scoped). Workload and IP-list actors are never
  scoped. The union of the parts is the side.
- A host W gets, for each rule and scope where W is a provider, an inbound entry from the consumers'
  addresses on the rule's services; where W is a consumer, an outbound entry to the providers' addresses.
- IP lists: ranges minus `exclusion` ranges; FQDNs are resolved at compile time when asked, else skipped
  with a warning. Workload addresses: interface addresses, except loopback ones and those of
  `ignored_interface_names`, IPv4 and IPv6.
- Deny rules (in rule sets, `override: true` for override deny) and enforcement boundaries (deny) follow
  the same actor rules; boundaries have no scope. Disabled rules and rule sets are ignored.
- Precedence override deny > allow > deny > default, and what each does per enforcement mode: ir.py.

Performance: everything that does not depend on the host is built once (label -> workloads index, label
groups expanded, every rule's actors normalised, an index from labels to the rule sides they can match).
A host looks up only the rules its labels can match; peer address sets are resolved once per distinct
(scope, actors) and shared by every host and rule that uses them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import hashlib
import json
import socket

from ansible_collections.microseg.illumio.plugins.module_utils.policy import ir as irmod
from ansible_collections.microseg.illumio.plugins.module_utils.policy.addresses import (
    merge,
    parse_address,
    parse_cidrs,
    parse_range,
    points_to_parts,
    subtract,
    to_elements,
    union,
)
from ansible_collections.microseg.illumio.plugins.module_utils.policy.snapshot import PolicyError, policy_key

ACTION_RANK = dict((action, rank) for rank, action in enumerate(irmod.ACTIONS))
PROVIDER, CONSUMER = 0, 1
SIDE_NAMES = ("providers", "consumers")
ALL_SERVICES_KEY = '[{"proto": -1}]'


class _Workload(object):
    # addresses: {4: ((integer, text), ...), 6: (...)}, sorted
    __slots__ = ("addresses", "hostname", "href", "ignored", "index", "label_refs", "labels", "mode", "name")

    def __init__(self, index, href):
        self.index = index
        self.href = href


class _Side(object):
    """One side (providers or consumers) of a rule, normalised."""

    __slots__ = ("ams", "clause", "ip_lists", "resolves_workloads", "workloads")

    def __init__(self):
        self.ams = False
        self.clause = None  # label actors as a clause, or None when the side has none (or they match nothing)
        self.workloads = frozenset()
        self.ip_lists = ()
        self.resolves_workloads = True


class _Rule(object):
    __slots__ = (
        "action",
        "clauses",  # [scope][side] -> the clauses of the workloads that side names under that scope
        "href",
        "index",
        "scopes",
        "services",
        "services_key",
        "sides",
        "unscoped",
        "warnings",
    )


def _flow_recording(record_flows):
    if not record_flows:
        return None
    size, timeout = record_flows.get("size"), record_flows.get("timeout")
    for name, value in (("size", size), ("timeout", timeout)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise PolicyError("record_flows %s must be a positive whole number, not %r" % (name, value))
    return {"size": size, "timeout": timeout}


class Compiler(object):
    """Compiles hosts of one snapshot. Build it once, then call compile() for as many hosts as needed.

    management_allow: CIDRs / addresses always allowed in both directions (the controller, the PCE).
    resolve_fqdns: resolve IP-list FQDNs at compile time with `resolver` (fqdn -> list of addresses;
    default: the system resolver); otherwise they are skipped with a warning.
    log_blocked: log what is dropped (or would be, in modes that only observe).
    record_flows: {"size": elements per flow set, "timeout": seconds} to have the firewall record flows
    (nftables; see render_nft), or None.
    """

    def __init__(
        self, snapshot, management_allow=None, resolve_fqdns=False, resolver=None, log_blocked=False, record_flows=None
    ):
        self.snapshot = snapshot
        self.record_flows = _flow_recording(record_flows)
        self.resolve_fqdns = bool(resolve_fqdns)
        self.resolver = resolver or _system_resolver
        self.log_blocked = bool(log_blocked)
        self.warnings = set()
        try:
            management = parse_cidrs(management_allow or [], "management_allow entry")
        except ValueError as error:
            raise PolicyError(str(error)) from None
        self.management = {
            "ipv4": to_elements(management[4], 4),
            "ipv6": to_elements(management[6], 6),
        }
        self._address_names = {4: {}, 6: {}}
        self._label_groups = {}
        self._services_cache = {}
        self._combined = {}
        self._ip_list_cache = {}
        self._clause_cache = {}
        self._label_workloads_cache = {}
        self._spec_by_side = {}
        self._spec_cache = {}
        self._sets = {}
        self._names_by_list = {}
        self._index_labels()
        self._index_workloads()
        self._index_rules()

    # --- indexes built once ----------------------------------------------------------------------------
    def _index_labels(self):
        self.label_key = {}
        self.label_value = {}
        for href, label in self.snapshot.labels.items():
            self.label_key[href] = label.get("key")
            self.label_value[href] = label.get("value")
        # Label groups answer their labels with key and value (label_groups.json): they count as known too.
        for group in self.snapshot.label_groups.values():
            for label in group.get("labels") or []:
                href = label.get("href") if isinstance(label, dict) else None
                if href and href not in self.label_key and label.get("key") is not None:
                    self.label_key[href] = label.get("key")
                    self.label_value[href] = label.get("value")

    def _index_workloads(self):
        self.workloads = []
        self.by_href = {}
        self.by_hostname = {}
        self.by_name = {}
        self.label_index = {}
        orders = {4: [], 6: []}
        for position, obj in enumerate(self.snapshot.workloads):
            workload = _Workload(position, obj["href"])
            workload.hostname = obj.get("hostname")
            workload.name = obj.get("name")
            workload.mode = obj.get("enforcement_mode") or "idle"
            refs = []
            for label in obj.get("labels") or []:
                href = label.get("href") if isinstance(label, dict) else None
                if not href:
                    continue
                refs.append(href)
                if href not in self.label_key and label.get("key") is not None:
                    self.label_key[href] = label.get("key")
                    self.label_value[href] = label.get("value")
                self.label_index.setdefault(href, []).append(position)
            workload.labels = frozenset(refs)
            workload.label_refs = sorted(refs)
            ignored = set(obj.get("ignored_interface_names") or [])
            workload.ignored = sorted(ignored)
            found = {4: {}, 6: {}}
            for interface in obj.get("interfaces") or []:
                if not isinstance(interface, dict) or interface.get("name") in ignored or interface.get("loopback"):
                    continue
                text = interface.get("address")
                if not text:
                    continue
                try:
                    version, value, canonical = parse_address(str(text).split("%", 1)[0])
                except ValueError:
                    self.warnings.add(
                        "workload %s: interface %s has an address that is not an IP address (%r): left out"
                        % (workload.href, interface.get("name"), text)
                    )
                    continue
                if (value >> 24 == 127) if version == 4 else value == 1:
                    continue  # loopback
                found[version][value] = canonical
            workload.addresses = {}
            for version in (4, 6):
                workload.addresses[version] = tuple(sorted(found[version].items()))
                for value, canonical in workload.addresses[version]:
                    orders[version].append((value, position, canonical))
                    self._address_names[version][value] = canonical
            self.workloads.append(workload)
            self.by_href[workload.href] = position
            for table, key in ((self.by_hostname, workload.hostname), (self.by_name, workload.name)):
                if key:
                    table.setdefault(key, []).append(position)
        self.label_index = dict((href, frozenset(ids)) for href, ids in self.label_index.items())
        self.all_workloads = frozenset(range(len(self.workloads)))
        # Every workload address of a family in address order, with its owner: a big peer set is a filter of
        # this list (no sort per set).
        self._order = {}
        for version in (4, 6):
            ordered = sorted(orders[version])
            self._order[version] = (
                [value for value, _owner, _text in ordered],
                [owner for _value, owner, _text in ordered],
                [text for _value, _owner, text in ordered],
            )

    def _index_rules(self):
        self.rules = []
        for rule_set in self.snapshot.rule_sets:
            if rule_set.get("enabled") is False:
                continue
            scopes, scope_warnings = self._scopes(rule_set)
            for field, action in (("rules", "allow"), ("deny_rules", None)):
                for rule in rule_set.get(field) or []:
                    if not isinstance(rule, dict) or rule.get("enabled") is False:
                        continue
                    rule_action = ("override_deny" if rule.get("override") else "deny") if action is None else action
                    self._add_rule(rule, rule_action, scopes, list(scope_warnings))
        for boundary in self.snapshot.enforcement_boundaries:
            if boundary.get("enabled") is False:
                continue
            # A boundary has no scope: its actors are taken as they are, on both sides.
            self._add_rule(dict(boundary, unscoped_consumers=True), "deny", [()], [])
        # Where each rule side can match: anchored on the labels of one key of its clause.
        self.by_label = {}
        self.unanchored = []
        self.by_workload = {}
        for rule in self.rules:
            rule.clauses = [
                (self._side_clauses(rule, PROVIDER, scope), self._side_clauses(rule, CONSUMER, scope))
                for scope in rule.scopes
            ]
            for scope_index in range(len(rule.scopes)):
                for side_index in (PROVIDER, CONSUMER):
                    side = rule.sides[side_index]
                    for clause in rule.clauses[scope_index][side_index]:
                        entry = (rule.index, scope_index, side_index, clause)
                        if not clause:
                            self.unanchored.append(entry)
                            continue
                        # The most selective key: the one whose labels the fewest workloads carry.
                        anchor = min(clause, key=lambda part: (self._carriers(part[1]), part[0]))
                        for label in anchor[1]:
                            self.by_label.setdefault(label, []).append(entry)
                    for workload in side.workloads:
                        self.by_workload.setdefault(workload, []).append((rule.index, scope_index, side_index))

    def _carriers(self, labels):
        index = self.label_index
        return sum(len(index.get(label, ())) for label in labels)

    def _scopes(self, rule_set):
        """The scopes of a rule set as clauses; a scope that can match nothing is left out."""
        scopes = rule_set.get("scopes")
        if not scopes:
            return [()], []
        clauses, warnings = [], []
        for scope in scopes:
            parts, possible = {}, True
            for entry in scope or []:
                resolved = self._label_ref(entry, "rule set %s scope" % rule_set.get("href"), warnings)
                if resolved is None:
                    possible = False
                    continue
                key, labels = resolved
                parts[key] = parts[key] & labels if key in parts else labels
            clause = _clause(parts) if possible else None
            if clause is not None and clause not in clauses:
                clauses.append(clause)
        return clauses, warnings

    def _label_ref(self, entry, where, warnings):
        """(key, frozenset of label hrefs) of a `{"label": ...}` / `{"label_group": ...}` entry, or None."""
        if not isinstance(entry, dict):
            warnings.append("%s: %r is not a label or label group reference: matches nothing" % (where, entry))
            return None
        if "label" in entry:
            href = (entry["label"] or {}).get("href")
            if href not in self.label_key:
                warnings.append("%s: unknown label %s: matches nothing" % (where, href))
                return None
            return self.label_key[href], frozenset([href])
        if "label_group" in entry:
            href = (entry["label_group"] or {}).get("href")
            expanded = self._expand_group(href, warnings, where)
            if expanded is None:
                return None
            return expanded
        warnings.append("%s: %s is not a label or label group: matches nothing" % (where, sorted(entry)))
        return None

    def _expand_group(self, href, warnings, where):
        """(key, labels of the group and all its sub-groups), or None for an unknown group."""
        key = policy_key(href)
        found = self._label_groups[key] if key in self._label_groups else self._expand_group_uncached(key, set())
        if found is None:
            warnings.append("%s: unknown label group %s: matches nothing" % (where, href))
            return None
        group_key, labels, missing = found
        for what in missing:
            warnings.append("%s: label group %s refers to unknown %s: left out" % (where, href, what))
        return group_key, labels

    def _expand_group_uncached(self, key, visiting):
        group = self.snapshot.label_groups.get(key)
        if group is None:
            return None
        visiting.add(key)
        labels, missing = set(), []
        for label in group.get("labels") or []:
            href = label.get("href")
            if href in self.label_key:
                labels.add(href)
            else:
                missing.append("label %s" % href)
        for sub_group in group.get("sub_groups") or []:
            sub_key = policy_key(sub_group.get("href"))
            if sub_key in visiting:
                continue  # a cycle (the PCE refuses them): each group counts once
            found = self._label_groups.get(sub_key) or self._expand_group_uncached(sub_key, visiting)
            if found is None:
                missing.append("sub-group %s" % sub_group.get("href"))
                continue
            labels.update(found[1])
            missing.extend(found[2])
        visiting.discard(key)
        group_key = group.get("key")
        if not group_key:
            keys = set(self.label_key.get(href) for href in labels)
            group_key = keys.pop() if len(keys) == 1 else "label_group:" + key
        result = (group_key, frozenset(labels), tuple(missing))
        self._label_groups[key] = result
        return result

    def _add_rule(self, obj, action, scopes, warnings):
        rule = _Rule()
        rule.index = len(self.rules)
        rule.href = obj.get("href") or "(rule without href)"
        rule.action = action
        rule.scopes = scopes
        rule.unscoped = bool(obj.get("unscoped_consumers"))
        rule.warnings = warnings
        resolve_as = obj.get("resolve_labels_as") or {}
        rule.sides = (
            self._side(obj.get("providers"), resolve_as.get("providers"), rule, "providers"),
            self._side(obj.get("consumers"), resolve_as.get("consumers"), rule, "consumers"),
        )
        rule.services, rule.services_key = self._services(obj.get("ingress_services"), rule)
        for flag in ("sec_connect", "machine_auth"):
            if obj.get(flag):
                warnings.append(
                    "rule %s: %s can't be done by a packet filter: rendered as a plain allow" % (rule.href, flag)
                )
        if not rule.services or not scopes:
            # It can't apply to any host: say why once, not per host.
            self.warnings.update(rule.warnings)
            return
        self.rules.append(rule)

    def _side(self, actors, resolve_as, rule, side_name):
        side = _Side()
        if resolve_as is not None and "workloads" not in resolve_as:
            side.resolves_workloads = False
            rule.warnings.append(
                "rule %s: %s resolve labels as %s only: virtual services are not enforced here, only IP lists "
                "and workloads named in the rule" % (rule.href, side_name, "/".join(resolve_as) or "nothing")
            )
        parts, impossible, workloads, ip_lists = {}, False, set(), set()
        where = "rule %s %s" % (rule.href, side_name)
        for actor in actors or []:
            if not isinstance(actor, dict) or len(actor) != 1:
                rule.warnings.append("%s: %r is not an actor: ignored" % (where, actor))
                continue
            kind, ref = next(iter(actor.items()))
            if kind == "actors":
                if ref == "ams":
                    side.ams = True
                else:
                    rule.warnings.append("%s: actors %r is unknown: ignored" % (where, ref))
            elif kind in ("label", "label_group"):
                resolved = self._label_ref(actor, where, rule.warnings)
                if resolved is None:
                    impossible = True
                    continue
                key, labels = resolved
                parts[key] = parts[key] | labels if key in parts else labels
            elif kind == "workload":
                href = (ref or {}).get("href")
                if href in self.by_href:
                    workloads.add(self.by_href[href])
                else:
                    rule.warnings.append("%s: unknown workload %s: left out" % (where, href))
            elif kind == "ip_list":
                href = (ref or {}).get("href")
                if policy_key(href) in self.snapshot.ip_lists:
                    ip_lists.add(policy_key(href))
                else:
                    rule.warnings.append("%s: unknown IP list %s: left out" % (where, href))
            else:
                rule.warnings.append("%s: %s actors are not enforced by a packet filter: left out" % (where, kind))
        if parts and not impossible:
            side.clause = _clause(parts)
        side.workloads = frozenset(workloads)
        side.ip_lists = tuple(sorted(ip_lists))
        return side

    def _side_clauses(self, rule, side_index, scope):
        """Clauses of the workloads one side names under one scope (empty list: no workload)."""
        side = rule.sides[side_index]
        if not side.resolves_workloads:
            return []
        scoped = side_index == PROVIDER or not rule.unscoped
        base = scope if scoped else ()
        if side.ams:
            return [base]
        if side.clause is None:
            return []
        key = (base, side.clause)
        if key not in self._combined:
            self._combined[key] = _combine(base, side.clause)
        combined = self._combined[key]
        return [] if combined is None else [combined]

    def _services(self, entries, rule):
        """(IR services, key) of a rule's ingress_services; ([], None) when they name nothing enforceable.

        Rules share services, so the result is cached by what the rule names.
        """
        try:
            key = tuple(
                entry["href"]
                if isinstance(entry, dict) and len(entry) == 1 and "href" in entry
                else tuple(sorted(entry.items()))
                for entry in entries or []
            )
            cached = self._services_cache.get(key)
        except (AttributeError, TypeError):  # not dicts of plain values: no caching
            key = cached = None
        if cached is None:
            problems = []
            cached = (*self._services_uncached(entries, problems), tuple(problems))
            if key is not None:
                self._services_cache[key] = cached
        services, services_key, problems = cached
        rule.warnings.extend("rule %s: %s" % (rule.href, problem) for problem in problems)
        return services, services_key

    def _services_uncached(self, entries, problems):
        ports, all_of, icmp, everything = {}, set(), {}, False
        for entry in entries or []:
            if not isinstance(entry, dict):
                problems.append("service %r is not an object: ignored" % (entry,))
                continue
            if "href" in entry and "proto" not in entry:
                service = self.snapshot.services.get(policy_key(entry["href"]))
                if service is None:
                    problems.append("unknown service %s: left out" % entry["href"])
                    continue
                service_ports = service.get("service_ports") or []
                if not service_ports:
                    problems.append(
                        "service %s has no service ports (Windows services are not enforced here): left out"
                        % (service.get("name") or entry["href"])
                    )
            else:
                service_ports = [entry]
            for port in service_ports:
                proto = port.get("proto")
                if proto is None:
                    problems.append("service port %r has no proto: left out" % (port,))
                    continue
                proto = int(proto)
                if proto == -1:
                    everything = True
                elif proto in irmod.PORT_PROTOCOLS and port.get("port") is not None:
                    low = int(port["port"])
                    high = int(port.get("to_port") if port.get("to_port") is not None else low)
                    ports.setdefault(proto, []).append((low, max(low, high)))
                elif proto in irmod.ICMP_PROTOCOLS and port.get("icmp_type") is not None:
                    code = port.get("icmp_code")
                    icmp.setdefault(proto, set()).add((int(port["icmp_type"]), None if code is None else int(code)))
                else:
                    all_of.add(proto)
        if everything:
            return [{"proto": -1}], ALL_SERVICES_KEY
        services = []
        for proto in sorted(set(ports) | set(icmp) | all_of):
            if proto in all_of:
                services.append({"proto": proto})
            elif proto in ports:
                services.append({"proto": proto, "ports": [[low, high] for low, high in merge(ports[proto])]})
            else:
                types = icmp[proto]
                # A type without a code covers every code of it.
                whole = set(kind for kind, code in types if code is None)
                kept = sorted((kind, code) for kind, code in types if code is None or kind not in whole)
                services.append({"proto": proto, "icmp": [[kind, code] for kind, code in kept]})
        if not services:
            problems.append("names no service that can be enforced: rule left out")
            return [], None
        return services, json.dumps(services, sort_keys=True)

    # --- peers: workloads and addresses of a rule side, cached --------------------------------------------
    def _clause_workloads(self, clause):
        if not clause:
            return self.all_workloads
        found = None
        for _key, labels in sorted(clause, key=lambda part: len(part[1])):
            members = self._label_workloads_cache.get(labels)
            if members is None:
                index = self.label_index
                members = frozenset().union(*[index.get(label, ()) for label in labels]) if labels else frozenset()
                self._label_workloads_cache[labels] = members
            found = members if found is None else found & members
            if not found:
                return frozenset()
        return found

    def _clause_parts(self, clause):
        """{4: (intervals, elements), 6: ...} of the workloads a clause names, cached."""
        cached = self._clause_cache.get(clause)
        if cached is None:
            cached = self._workload_parts(self._clause_workloads(clause))
            self._clause_cache[clause] = cached
        return cached

    def _workload_parts(self, ids):
        parts = {}
        total = len(self.workloads)
        for version in (4, 6):
            values, owners, texts = self._order[version]
            if len(ids) == total:
                picked_values, picked_texts = values, texts
            elif len(ids) * 16 < total:
                workloads = self.workloads
                picked = sorted(pair for index in ids for pair in workloads[index].addresses[version])
                picked_values = [value for value, _text in picked]
                picked_texts = [text for _value, text in picked]
            else:
                keep = [position for position, owner in enumerate(owners) if owner in ids]
                picked_values = [values[position] for position in keep]
                picked_texts = [texts[position] for position in keep]
            parts[version] = points_to_parts(picked_values, picked_texts, version)
        return parts

    def _ip_list_intervals(self, key):
        cached = self._ip_list_cache.get(key)
        if cached is not None:
            return cached
        ip_list = self.snapshot.ip_lists[key]
        name = "IP list %r (%s)" % (ip_list.get("name"), ip_list.get("href"))
        included, excluded, warnings = {4: [], 6: []}, {4: [], 6: []}, []
        for entry in ip_list.get("ip_ranges") or []:
            try:
                version, low, high = parse_range(entry.get("from_ip"), entry.get("to_ip"))
            except (ValueError, TypeError) as error:
                warnings.append("%s: range %r is not valid (%s): left out" % (name, entry, error))
                continue
            (excluded if entry.get("exclusion") else included)[version].append((low, high))
        for entry in ip_list.get("fqdns") or []:
            fqdn = entry.get("fqdn") if isinstance(entry, dict) else entry
            if not fqdn:
                continue
            if not self.resolve_fqdns:
                warnings.append(
                    "%s: FQDN %s can't be matched by a packet filter and was skipped (resolve_fqdns resolves it "
                    "at compile time)" % (name, fqdn)
                )
                continue
            if "*" in fqdn:
                warnings.append("%s: wildcard FQDN %s can't be resolved: skipped" % (name, fqdn))
                continue
            try:
                addresses = self.resolver(fqdn)
            except Exception as error:
                addresses = []
                warnings.append("%s: FQDN %s did not resolve (%s): skipped" % (name, fqdn, error))
            else:
                if not addresses:
                    warnings.append("%s: FQDN %s resolved to no address: skipped" % (name, fqdn))
            for address in addresses:
                try:
                    version, low, high = parse_range(address)
                except ValueError:
                    warnings.append("%s: FQDN %s resolved to %r, not an address: left out" % (name, fqdn, address))
                    continue
                included[version].append((low, high))
        result = (
            subtract(merge(included[4]), merge(excluded[4])),
            subtract(merge(included[6]), merge(excluded[6])),
            tuple(warnings),
        )
        self._ip_list_cache[key] = result
        return result

    def _peer_spec(self, rule, scope_index, side_index):
        """The peers of a rule side under a scope as a hashable spec: (clauses, workloads, IP lists)."""
        key = (rule.index, scope_index, side_index)
        spec = self._spec_by_side.get(key)
        if spec is None:
            clauses = tuple(sorted(set(rule.clauses[scope_index][side_index]), key=_clause_text))
            side = rule.sides[side_index]
            spec = (clauses, tuple(sorted(side.workloads)), side.ip_lists)
            self._spec_by_side[key] = spec
        return spec

    def _peer_sets(self, spec):
        """(ipv4 set name or None, ipv6 set name or None, warnings) of a peer spec, shared by all hosts."""
        cached = self._spec_cache.get(spec)
        if cached is not None:
            return cached
        clauses, workload_ids, ip_lists = spec
        parts, warnings = [], []
        for clause in clauses:
            parts.append(self._clause_parts(clause))
        if workload_ids:
            parts.append(self._workload_parts(frozenset(workload_ids)))
        for key in ip_lists:
            v4, v6, ip_warnings = self._ip_list_intervals(key)
            parts.append({4: (v4, None), 6: (v6, None)})
            warnings.extend(ip_warnings)
        names = []
        for version in (4, 6):
            found = [part[version] for part in parts if part[version][0]]
            if not found:
                names.append(None)
            elif len(found) == 1 and found[0][1] is not None:
                names.append(self._set_name(version, found[0][1]))
            else:
                intervals = union([intervals for intervals, _elements in found])
                names.append(self._set_name(version, to_elements(intervals, version, self._address_names[version])))
        result = (names[0], names[1], tuple(warnings))
        self._spec_cache[spec] = result
        return result

    def _set_name(self, version, elements):
        """The content-derived name of a set of elements, registered once."""
        known = self._names_by_list.get(id(elements))
        if known is not None and known[0] is elements:
            return known[1]
        digest = hashlib.sha1(("%d\n%s" % (version, "\n".join(elements))).encode("ascii")).hexdigest()  # noqa: S324
        name = "p%d_%s" % (version, digest[:12])
        if name not in self._sets:
            self._sets[name] = {"family": "ipv%d" % version, "elements": elements}
        if self._sets[name]["elements"] is elements:
            self._names_by_list[id(elements)] = (elements, name)
        return name

    # --- hosts -----------------------------------------------------------------------------------------
    def find(self, identifier):
        """The workload an href, hostname or name (else a unique short hostname) stands for, or None.

        PolicyError when it names more than one workload.
        """
        if isinstance(identifier, str) and identifier.startswith("/api/v2/"):
            identifier = identifier[len("/api/v2") :]
        if identifier in self.by_href:
            return self.workloads[self.by_href[identifier]]
        for table, what in ((self.by_hostname, "hostname"), (self.by_name, "name")):
            found = table.get(identifier)
            if found:
                if len(found) > 1:
                    raise PolicyError(
                        "%d workloads have the %s %r: name the host by its workload href instead (%s)"
                        % (len(found), what, identifier, ", ".join(self.workloads[i].href for i in found))
                    )
                return self.workloads[found[0]]
        short = str(identifier).split(".", 1)[0]
        matches = [w for w in self.workloads if w.hostname and w.hostname.split(".", 1)[0] == short]
        if len(matches) == 1 and "." not in str(identifier):
            return matches[0]
        return None

    def compile(self, identifier, mode=None):
        """The IR (ir.py) of one host, named by its workload href, hostname or name.

        mode: an enforcement mode to use instead of the workload's own.
        """
        workload = self.find(identifier)
        if workload is None:
            raise PolicyError("no workload on the PCE has the href, hostname or name %r" % (identifier,))
        return self.compile_workload(workload, mode)

    def compile_workload(self, workload, mode=None):
        mode = mode or workload.mode
        if mode not in irmod.MODES:
            raise PolicyError(
                "enforcement mode %r of %s is not one of %s" % (mode, workload.href, ", ".join(irmod.MODES))
            )
        result = {
            "version": irmod.IR_VERSION,
            "workload": self._describe(workload),
            "enforcement_mode": mode,
            "log_blocked": self.log_blocked,
            "record_flows": None,
            "defaults": {},
            "always_allow": {},
            "sets": {},
            "rules": [],
            "warnings": [],
        }
        if mode == "idle":
            return result
        result["record_flows"] = self.record_flows
        result["defaults"] = dict((direction, irmod.default(mode, direction)) for direction in irmod.DIRECTIONS)
        result["always_allow"] = {
            "management": {"ipv4": list(self.management["ipv4"]), "ipv6": list(self.management["ipv6"])},
            "loopback": True,
            "established": True,
            "icmpv6_nd": True,
            "dhcp": True,
            "ignored_interfaces": list(workload.ignored),
        }
        entries, warnings = {}, set()
        for rule_index, scope_index, side_index in sorted(self._matches(workload)):
            rule = self.rules[rule_index]
            warnings.update(rule.warnings)
            peers = self._peer_spec(rule, scope_index, 1 - side_index)
            name4, name6, peer_warnings = self._peer_sets(peers)
            warnings.update(peer_warnings)
            if name4 is None and name6 is None:
                continue
            direction = "in" if side_index == PROVIDER else "out"
            key = (ACTION_RANK[rule.action], direction, name4 or "", name6 or "", rule.services_key)
            entry = entries.get(key)
            if entry is None:
                entries[key] = entry = {
                    "direction": direction,
                    "action": rule.action,
                    "verdict": irmod.verdict(mode, direction, rule.action),
                    "peers": {"ipv4": name4, "ipv6": name6},
                    "services": rule.services,
                    "hrefs": set(),
                }
            entry["hrefs"].add(rule.href)
        rules = []
        for key in entries:
            entry = entries[key]
            entry["hrefs"] = sorted(entry["hrefs"])
            rules.append((key[0], _direction_rank(key[1]), entry["hrefs"], key[2], key[3], key[4], entry))
        rules.sort(key=lambda item: item[:6])
        result["rules"] = [item[6] for item in rules]
        used = set()
        for entry in result["rules"]:
            used.update(name for name in entry["peers"].values() if name)
        result["sets"] = dict((name, self._sets[name]) for name in sorted(used))
        result["warnings"] = sorted(warnings)
        return result

    def _matches(self, workload):
        """(rule, scope, side) triples whose side names this workload."""
        found = set()
        labels = workload.labels
        for rule_index, scope_index, side_index, _clause in self.unanchored:
            found.add((rule_index, scope_index, side_index))
        by_label = self.by_label
        for label in labels:
            for rule_index, scope_index, side_index, clause in by_label.get(label, ()):
                for _key, allowed in clause:
                    if labels.isdisjoint(allowed):
                        break
                else:
                    found.add((rule_index, scope_index, side_index))
        for triple in self.by_workload.get(workload.index, ()):
            found.add(triple)
        return found

    def _describe(self, workload):
        return {
            "href": workload.href,
            "hostname": workload.hostname,
            "name": workload.name,
            "labels": [
                {"href": href, "key": self.label_key.get(href), "value": self.label_value.get(href)}
                for href in workload.label_refs
            ],
            "addresses": {
                "ipv4": [text for _value, text in workload.addresses[4]],
                "ipv6": [text for _value, text in workload.addresses[6]],
            },
        }


def _clause(parts):
    """A canonical, hashable clause: ((key, frozenset(labels)), ...) sorted by key; None if one key is empty."""
    if any(not labels for labels in parts.values()):
        return None
    return tuple(sorted(parts.items(), key=lambda part: part[0]))


def _clause_text(clause):
    return tuple((key, tuple(sorted(labels))) for key, labels in clause)


def _combine(first, second):
    """The clause of workloads that satisfy both clauses (labels of one key intersected), or None."""
    if not first:
        return second
    if not second:
        return first
    parts = dict(first)
    for key, labels in second:
        parts[key] = parts[key] & labels if key in parts else labels
    return _clause(parts)


def _direction_rank(direction):
    return 0 if direction == "in" else 1


def _system_resolver(fqdn):
    found = set()
    for _family, _type, _proto, _canon, address in socket.getaddrinfo(fqdn, None, 0, socket.SOCK_STREAM):
        found.add(address[0])
    return sorted(found)


def compile_hosts(compiler, identifiers, modes=None):
    """{identifier: IR} for many hosts in one pass; `modes` maps an identifier to an enforcement mode."""
    modes = modes or {}
    return dict((identifier, compiler.compile(identifier, modes.get(identifier))) for identifier in identifiers)
