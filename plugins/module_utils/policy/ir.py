# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The intermediate form of one host's compiled policy: plain dicts and lists (JSON-serialisable).

Both renderers (nftables, iptables + ipset) read only this, so they mean the same thing. Its shape::

    {
      "version": 1,
      "workload": {"href", "hostname", "name", "labels": [{"href", "key", "value"}],
                   "addresses": {"ipv4": [...], "ipv6": [...]}},
      "enforcement_mode": "full",               # idle | visibility_only | selective | full (effective)
      "log_blocked": false,
      "record_flows": {"size": 65536, "timeout": 86400},   # or null: have the firewall record flows
      "defaults": {"in": {"verdict": "drop", "would_drop": false},
                   "out": {"verdict": "drop", "would_drop": false}},   # {} when idle
      "always_allow": {"management": {"ipv4": [...], "ipv6": [...]}, "loopback": true,
                       "established": true, "icmpv6_nd": true, "dhcp": true,
                       "ignored_interfaces": ["eth9"]},               # {} when idle
      "sets": {"p4_0123456789ab": {"family": "ipv4", "elements": ["10.0.0.1", "10.1.0.0/16"]}},
      "rules": [{"direction": "in", "action": "allow", "verdict": "accept",
                 "peers": {"ipv4": "p4_0123456789ab", "ipv6": null},
                 "services": [{"proto": 6, "ports": [[80, 80], [443, 443]]}],
                 "hrefs": ["/orgs/1/sec_policy/active/rule_sets/1/sec_rules/2"]}],
      "warnings": ["..."]
    }

Rules are in evaluation order: per direction, override deny first, then allow, then deny; the first rule
that matches decides. `verdict` is what a match does in this host's enforcement mode: `accept`, `drop`,
or `count` (observed only: counted, logged when log_blocked, then evaluation goes on). A service is
`{"proto": -1}` (everything), `{"proto": N}` (all of protocol N), `{"proto": 6|17|132, "ports": [[lo, hi]]}`
or `{"proto": 1|58, "icmp": [[type, code or null]]}`. Set elements are CIDRs, single addresses without a
prefix length; set names are derived from their content, so equal sets share one name on every host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

IR_VERSION = 1
MODES = ("idle", "visibility_only", "selective", "full")
ACTIONS = ("override_deny", "allow", "deny")
DIRECTIONS = ("in", "out")
FAMILIES = ("ipv4", "ipv6")
MANAGEMENT_SETS = {"ipv4": "mgmt_allow_v4", "ipv6": "mgmt_allow_v6"}
PORT_PROTOCOLS = frozenset([6, 17, 132])
ICMP_PROTOCOLS = {1: "ipv4", 58: "ipv6"}

# (mode, direction, action) -> verdict. Precedence comes from the order of the rules, not from here:
# override deny > allow > deny > default.
_ENFORCED = {"override_deny": "drop", "allow": "accept", "deny": "drop"}
_OBSERVED = {"override_deny": "count", "allow": "accept", "deny": "count"}
VERDICTS = {
    ("full", "in"): _ENFORCED,
    ("full", "out"): _ENFORCED,
    # Selective enforcement blocks inbound traffic that deny rules name; everything else is only observed.
    ("selective", "in"): _ENFORCED,
    ("selective", "out"): _OBSERVED,
    ("visibility_only", "in"): _OBSERVED,
    ("visibility_only", "out"): _OBSERVED,
}
DEFAULTS = {
    ("full", "in"): {"verdict": "drop", "would_drop": False},
    ("full", "out"): {"verdict": "drop", "would_drop": False},
    ("selective", "in"): {"verdict": "accept", "would_drop": False},
    ("selective", "out"): {"verdict": "accept", "would_drop": True},
    ("visibility_only", "in"): {"verdict": "accept", "would_drop": True},
    ("visibility_only", "out"): {"verdict": "accept", "would_drop": True},
}


def verdict(mode, direction, action):
    return VERDICTS[(mode, direction)][action]


def default(mode, direction):
    return dict(DEFAULTS[(mode, direction)])


def summary(ir):
    """Counts of one host's IR: rules by direction and action, sets and their elements."""
    rules = ir.get("rules", [])
    sets = ir.get("sets", {})
    by_action = dict((action, 0) for action in ACTIONS)
    by_direction = dict((direction, 0) for direction in DIRECTIONS)
    for rule in rules:
        by_action[rule["action"]] += 1
        by_direction[rule["direction"]] += 1
    management = (ir.get("always_allow") or {}).get("management") or {}
    return {
        "enforcement_mode": ir.get("enforcement_mode"),
        "rules": len(rules),
        "inbound_rules": by_direction["in"],
        "outbound_rules": by_direction["out"],
        "override_deny_rules": by_action["override_deny"],
        "allow_rules": by_action["allow"],
        "deny_rules": by_action["deny"],
        "pce_rules": len(set(href for rule in rules for href in rule["hrefs"])),
        "sets": len(sets),
        "elements": sum(len(entry["elements"]) for entry in sets.values()),
        "management_elements": sum(len(management.get(family) or []) for family in FAMILIES),
        "warnings": len(ir.get("warnings", [])),
    }


def describe_service(service):
    """`tcp/80,443`, `udp/1-1023`, `icmp/8:0`, `all` ... for comments and messages."""
    proto = service["proto"]
    if proto == -1:
        return "all"
    names = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
    name = names.get(proto, str(proto))
    if service.get("ports"):
        return "%s/%s" % (name, ",".join(str(lo) if lo == hi else "%d-%d" % (lo, hi) for lo, hi in service["ports"]))
    if service.get("icmp"):
        return "%s/%s" % (
            name,
            ",".join(str(kind) if code is None else "%d:%d" % (kind, code) for kind, code in service["icmp"]),
        )
    return name
