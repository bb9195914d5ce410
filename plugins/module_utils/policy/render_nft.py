# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a host's IR (ir.py) as one `nft -f` script that atomically replaces the table `inet illumio`.

The script declares the table (so that deleting it never fails), deletes it and declares it again in full;
`nft -f` runs the file as one transaction, so the host switches from the old ruleset to the new one at once,
and no other table is touched. For an idle host the script only removes the table.

Inside the table: the interval sets `mgmt_allow_v4` / `mgmt_allow_v6` (always there, maybe empty), one
named interval set per distinct peer set (shared by every rule that uses it), and the base chains `input`
and `output` (priority filter). Each chain accepts the always-allowed traffic first (established/related,
which most packets are, then management addresses, loopback, ignored interfaces, ICMPv6 neighbour discovery
and MLD, DHCP/DHCPv6), then runs the policy rules in IR order (override deny, allow, deny), each with a
comment naming its PCE rules, then the default (policy drop when enforced; a counter of what would be
dropped otherwise).

With the IR's `record_flows`, the table also records the flows of agentless hosts for
microseg.illumio.flow_collect: new TCP and UDP connections that the policy accepts go to the dynamic sets
`flow_allow_v4_<g>` / `flow_allow_v6_<g>`, dropped (or would-be-dropped) new connection attempts to
`flow_drop_v4_<g>` / `flow_drop_v6_<g>`, keyed by source . destination . protocol . destination port, with a
per-element counter, a size bound and an idle timeout. There are two generations `<g>` of those sets, `a` and
`b`; the verdict maps `flow_gen_allow` / `flow_gen_drop` name the one being filled. The collector switches the
maps to the other generation in one transaction, then reads and flushes the idle one, so no update is lost
between reading and resetting. Policy verdicts then go through the chains `flow_accept` (record, accept),
`flow_drop` (record, drop) and `flow_would_drop` (record, accept: observed-only directions accept everything
in the end, so stopping there changes no verdict).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.policy.ir import MANAGEMENT_SETS

TABLE = "illumio"
FAMILY = "inet"
COMMENT_MAX = 127  # nftables keeps at most 128 bytes of a comment, with its terminating NUL
ICMPV6_ESSENTIAL = (130, 131, 132, 133, 134, 135, 136, 143)  # MLD query/report/done, ND RS/RA/NS/NA, MLDv2
LOG_DROP = "ILO-DROP "
LOG_WOULD_DROP = "ILO-WOULD-DROP "
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}
_ADDRESS = {
    ("ipv4", "in"): "ip saddr",
    ("ipv4", "out"): "ip daddr",
    ("ipv6", "in"): "ip6 saddr",
    ("ipv6", "out"): "ip6 daddr",
}
_SET_TYPES = {"ipv4": "ipv4_addr", "ipv6": "ipv6_addr"}
# Flow recording (record_flows): names shared with the collector (module_utils/flows/nft_sets.py).
FLOW_GENERATIONS = ("a", "b")
FLOW_DECISIONS = ("allow", "drop")
FLOW_FAMILIES = {"ipv4": "v4", "ipv6": "v6"}
FLOW_MAPS = {"allow": "flow_gen_allow", "drop": "flow_gen_drop"}
FLOW_PROTOCOLS = ("tcp", "udp")  # the tuple needs a destination port
_FLOW_KEYS = {
    "ipv4": "ip saddr . ip daddr . meta l4proto . th dport",
    "ipv6": "ip6 saddr . ip6 daddr . meta l4proto . th dport",
}
_FLOW_VERDICT_CHAINS = {"accept": "flow_accept", "drop": "flow_drop", "count": "flow_would_drop"}
_PLAIN_VERDICTS = {"accept": "accept", "drop": "drop", "count": ""}  # count: observed only, evaluation goes on
BLOCK_CACHE_SIZE = 2048
_BLOCKS = {}


def render(ir):
    """The nft script (text) for one host's IR."""
    mode = ir["enforcement_mode"]
    workload = ir.get("workload") or {}
    lines = [
        "#!/usr/sbin/nft -f",
        "# microseg.illumio policy for %s (%s), enforcement mode %s"
        % (_safe(workload.get("hostname") or workload.get("name") or "?"), _safe(workload.get("href") or "?"), mode),
        "# Generated from the PCE's active policy; replaces table %s %s as a whole, touches nothing else."
        % (FAMILY, TABLE),
        "table %s %s {}" % (FAMILY, TABLE),
        "delete table %s %s" % (FAMILY, TABLE),
    ]
    if mode == "idle":
        lines.append("# idle: the host firewall is left alone, so this only removes the table.")
        return "\n".join(lines) + "\n"
    lines.append("table %s %s {" % (FAMILY, TABLE))
    management = ir["always_allow"]["management"]
    for family in ("ipv4", "ipv6"):
        lines.extend(_set_lines(MANAGEMENT_SETS[family], family, management.get(family) or []))
    for name in sorted(ir["sets"]):
        entry = ir["sets"][name]
        # The compiler shares one elements list per set between hosts: its text is made once.
        cached = _BLOCKS.get(name)
        if cached is None or cached[0] is not entry["elements"]:
            cached = (entry["elements"], "\n".join(_set_lines(name, entry["family"], entry["elements"])))
            if len(_BLOCKS) >= BLOCK_CACHE_SIZE:
                _BLOCKS.clear()
            _BLOCKS[name] = cached
        lines.append(cached[1])
    if ir.get("record_flows"):
        lines.extend(_flow_lines(ir["record_flows"]))
    for direction, chain, hook in (("in", "input", "input"), ("out", "output", "output")):
        lines.extend(_chain_lines(ir, direction, chain, hook))
    lines.append("}")
    return "\n".join(lines) + "\n"


def _set_lines(name, family, elements):
    lines = ["\tset %s {" % name, "\t\ttype %s" % _SET_TYPES[family], "\t\tflags interval"]
    if elements:
        lines.append("\t\telements = {")
        lines.append("\t\t\t" + ",\n\t\t\t".join(elements))
        lines.append("\t\t}")
    lines.append("\t}")
    return lines


def _chain_lines(ir, direction, chain, hook):
    default = ir["defaults"][direction]
    policy = "drop" if default["verdict"] == "drop" else "accept"
    interface = "iif" if direction == "in" else "oif"
    interface_name = "iifname" if direction == "in" else "oifname"
    address = "saddr" if direction == "in" else "daddr"
    always = ir["always_allow"]
    lines = [
        "\tchain %s {" % chain,
        "\t\ttype filter hook %s priority filter; policy %s;" % (hook, policy),
    ]
    # Most packets belong to established connections: they leave after one rule.
    if always.get("established"):
        lines.append("\t\tct state established,related accept")
    lines.extend(
        [
            '\t\tip %s @%s accept comment "management"' % (address, MANAGEMENT_SETS["ipv4"]),
            '\t\tip6 %s @%s accept comment "management"' % (address, MANAGEMENT_SETS["ipv6"]),
        ]
    )
    if always.get("loopback"):
        lines.append('\t\t%s "lo" accept' % interface)
    if always.get("ignored_interfaces"):
        names = ", ".join('"%s"' % _safe(name) for name in always["ignored_interfaces"])
        lines.append('\t\t%s { %s } accept comment "ignored interfaces"' % (interface_name, names))
    if always.get("icmpv6_nd"):
        types = ", ".join(str(kind) for kind in ICMPV6_ESSENTIAL)
        lines.append('\t\ticmpv6 type { %s } accept comment "neighbour discovery, MLD"' % types)
    if always.get("dhcp"):
        if direction == "in":
            lines.append('\t\tudp sport 67 udp dport 68 accept comment "DHCP"')
            lines.append('\t\tudp sport 547 udp dport 546 accept comment "DHCPv6"')
        else:
            lines.append('\t\tudp sport 68 udp dport 67 accept comment "DHCP"')
            lines.append('\t\tudp sport 546 udp dport 547 accept comment "DHCPv6"')
    log = ir.get("log_blocked")
    flows = bool(ir.get("record_flows"))
    for rule in ir["rules"]:
        if rule["direction"] != direction:
            continue
        tail = _verdict(rule["verdict"], log, _comment(rule), flows)
        for family in ("ipv4", "ipv6"):
            name = rule["peers"].get(family)
            if not name:
                continue
            peer = "%s @%s" % (_ADDRESS[(family, direction)], name)
            for match in _service_matches(rule["services"], family):
                lines.append("\t\t%s%s %s" % (peer, match, tail))
    if default["verdict"] == "drop":
        lines.append("\t\t%s" % _verdict("drop", log, '"default"', flows))
    elif default.get("would_drop"):
        lines.append("\t\t%s" % _verdict("count", log, '"default"', flows))
    lines.append("\t}")
    return lines


def _verdict(verdict, log, comment, flows=False):
    """The end of a policy rule: its statements and verdict; with flows, the verdict goes through a recording chain."""
    target = "goto %s" % _FLOW_VERDICT_CHAINS[verdict] if flows else _PLAIN_VERDICTS[verdict]
    if verdict == "accept":
        return "%s comment %s" % (target, comment)
    words = ["counter"]
    if log:
        words.append('log prefix "%s"' % (LOG_DROP if verdict == "drop" else LOG_WOULD_DROP))
    if target:
        words.append(target)
    words.append("comment %s" % (comment if verdict == "drop" else _prefix(comment, "would drop: ")))
    return " ".join(words)


def flow_set_name(decision, family, generation):
    return "flow_%s_%s_%s" % (decision, FLOW_FAMILIES[family], generation)


def flow_chain_name(decision, generation):
    return "flow_%s_%s" % (decision, generation)


def flow_map_elements(decision, generation):
    """The elements of a generation map that send TCP and UDP to one generation's recording chain."""
    target = flow_chain_name(decision, generation)
    return ", ".join("%s : jump %s" % (proto, target) for proto in FLOW_PROTOCOLS)


def _flow_lines(record):
    """Sets, generation maps and chains that record flows (see the module docstring)."""
    lines = []
    for decision in FLOW_DECISIONS:
        for generation in FLOW_GENERATIONS:
            for family in ("ipv4", "ipv6"):
                lines.extend(
                    [
                        "\tset %s {" % flow_set_name(decision, family, generation),
                        "\t\ttype %s . %s . inet_proto . inet_service" % (_SET_TYPES[family], _SET_TYPES[family]),
                        "\t\tsize %d" % record["size"],
                        "\t\tflags dynamic,timeout",
                        "\t\ttimeout %ds" % record["timeout"],
                        "\t\tcounter",
                        "\t}",
                    ]
                )
    for decision in FLOW_DECISIONS:
        lines.extend(
            [
                "\tmap %s {" % FLOW_MAPS[decision],
                "\t\ttype inet_proto : verdict",
                "\t\telements = { %s }" % flow_map_elements(decision, FLOW_GENERATIONS[0]),
                "\t}",
            ]
        )
    for decision in FLOW_DECISIONS:
        for generation in FLOW_GENERATIONS:
            lines.append("\tchain %s {" % flow_chain_name(decision, generation))
            for family in ("ipv4", "ipv6"):
                lines.append(
                    "\t\tct state new update @%s { %s }"
                    % (flow_set_name(decision, family, generation), _FLOW_KEYS[family])
                )
            lines.append("\t}")
    for verdict, chain in sorted(_FLOW_VERDICT_CHAINS.items(), key=lambda item: item[1]):
        decision = "allow" if verdict == "accept" else "drop"
        lines.extend(
            [
                "\tchain %s {" % chain,
                "\t\tmeta l4proto vmap @%s" % FLOW_MAPS[decision],
                "\t\t%s" % ("drop" if verdict == "drop" else "accept"),
                "\t}",
            ]
        )
    return lines


def _service_matches(services, family):
    """The match expressions (each starting with a space, or empty) of a rule's services in one family."""
    matches = []
    for service in services:
        proto = service["proto"]
        if proto == -1:
            return [""]
        if proto == 1 or proto == 58:
            if (proto == 1) != (family == "ipv4"):
                continue  # ICMP is IPv4 only, ICMPv6 IPv6 only
            keyword = "icmp" if proto == 1 else "icmpv6"
            if not service.get("icmp"):
                matches.append(" meta l4proto %s" % ("icmp" if proto == 1 else "ipv6-icmp"))
                continue
            whole = [kind for kind, code in service["icmp"] if code is None]
            if whole:
                matches.append(" %s type %s" % (keyword, _value_set(whole)))
            for kind, code in service["icmp"]:
                if code is not None:
                    matches.append(" %s type %d %s code %d" % (keyword, kind, keyword, code))
        elif proto in _PROTO_NAMES:
            name = _PROTO_NAMES[proto]
            if service.get("ports"):
                ports = [str(lo) if lo == hi else "%d-%d" % (lo, hi) for lo, hi in service["ports"]]
                matches.append(" %s dport %s" % (name, _value_set(ports)))
            else:
                matches.append(" meta l4proto %s" % name)
        else:
            matches.append(" meta l4proto %d" % proto)
    return matches


def _value_set(values):
    values = [str(value) for value in values]
    return values[0] if len(values) == 1 else "{ %s }" % ", ".join(values)


def _comment(rule):
    hrefs = rule["hrefs"]
    text = hrefs[0] if hrefs else rule["action"]
    if len(hrefs) > 1:
        text = "%s +%d" % (text, len(hrefs) - 1)
    return '"%s"' % _safe(text)[: COMMENT_MAX - 20]


def _prefix(comment, prefix):
    return '"%s%s"' % (prefix, comment.strip('"'))


def _safe(text):
    """Text that can sit inside an nft double-quoted string or a comment line."""
    return "".join(char for char in str(text) if char not in '"\\\n\r' and ord(char) >= 32)
