# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render a host's IR (ir.py) for iptables: `ipset restore` input plus `iptables-restore --noflush` and
`ip6tables-restore --noflush` inputs that touch only our own `ILO-*` chains and sets.

- ipset: every set (`ILO-<name>`, hash:net, family inet / inet6) is replaced atomically: created if missing,
  a temporary `ILO-<name>-T` is filled, swapped in and destroyed. Load it first: the rules refer to the sets.
- iptables / ip6tables: the chains `ILO-INPUT` and `ILO-OUTPUT` are declared (created, or flushed when they
  exist) and filled; nothing else in the filter table changes. The jump rules that hook them in first,
  `-I INPUT 1 -j ILO-INPUT` and `-I OUTPUT 1 -j ILO-OUTPUT`, sit between the lines `# BEGIN ILO-HOOK` and
  `# END ILO-HOOK`: an applier leaves that block out when `iptables -C INPUT -j ILO-INPUT` says the hook is
  there already, so there is always exactly one jump each.
- Allowed traffic RETURNs to the built-in chain, so the host's own rules after the jump still apply (as
  the host's own nftables chains still see what the `inet illumio` table accepts); denied traffic is
  DROPped; observed-only rules have no target (they count, and LOG when log_blocked is set).
- Idle: both chains are flushed and left empty (traffic falls through to the host's rules), no hook, no set.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

from ansible_collections.microseg.illumio.plugins.module_utils.policy.ir import MANAGEMENT_SETS

PREFIX = "ILO-"
CHAINS = {"in": "ILO-INPUT", "out": "ILO-OUTPUT"}
BUILTIN = {"in": "INPUT", "out": "OUTPUT"}
HOOK_BEGIN = "# BEGIN ILO-HOOK"
HOOK_END = "# END ILO-HOOK"
TEMPORARY_SUFFIX = "-T"
MAXELEM = 1048576
HASHSIZE = 1024
MULTIPORT_SLOTS = 15  # a multiport match takes at most 15 ports, a range counting as two
COMMENT_MAX = 250
LOG_DROP = "ILO-DROP "
LOG_WOULD_DROP = "ILO-WOULD-DROP "
ICMPV6_ESSENTIAL = (130, 131, 132, 133, 134, 135, 136, 143)
_FAMILY = {"ipv4": "inet", "ipv6": "inet6"}
BLOCK_CACHE_SIZE = 2048
_BLOCKS = {}
_PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}


def set_name(name):
    """The ipset name of an IR set (or of mgmt_allow_v4 / mgmt_allow_v6)."""
    return PREFIX + name


def render(ir):
    """{"ipset": text, "iptables": text, "ip6tables": text} for one host's IR."""
    return {
        "ipset": render_ipset(ir),
        "iptables": render_rules(ir, "ipv4"),
        "ip6tables": render_rules(ir, "ipv6"),
    }


def _header(ir, what):
    workload = ir.get("workload") or {}
    return [
        "# microseg.illumio policy for %s (%s), enforcement mode %s: %s"
        % (
            _safe(workload.get("hostname") or workload.get("name") or "?"),
            _safe(workload.get("href") or "?"),
            ir["enforcement_mode"],
            what,
        ),
    ]


def render_ipset(ir):
    lines = _header(ir, "ipset restore input; only ILO- sets, each replaced by create, fill, swap, destroy")
    if ir["enforcement_mode"] == "idle":
        return "\n".join(lines) + "\n"
    management = ir["always_allow"]["management"]
    sets = [(MANAGEMENT_SETS[family], family, management.get(family) or []) for family in ("ipv4", "ipv6")]
    sets.extend((name, ir["sets"][name]["family"], ir["sets"][name]["elements"]) for name in sorted(ir["sets"]))
    for index, (name, family, elements) in enumerate(sets):
        if index < len(MANAGEMENT_SETS):
            lines.append(_ipset_block(name, family, elements))
            continue
        # The compiler shares one elements list per set between hosts: its text is made once.
        cached = _BLOCKS.get(name)
        if cached is None or cached[0] is not elements:
            cached = (elements, _ipset_block(name, family, elements))
            if len(_BLOCKS) >= BLOCK_CACHE_SIZE:
                _BLOCKS.clear()
            _BLOCKS[name] = cached
        lines.append(cached[1])
    return "\n".join(lines) + "\n"


def _ipset_block(name, family, elements):
    real = set_name(name)
    temporary = real + TEMPORARY_SUFFIX
    create = "hash:net family %s hashsize %d maxelem %d -exist" % (_FAMILY[family], HASHSIZE, MAXELEM)
    lines = ["create %s %s" % (real, create), "create %s %s" % (temporary, create), "flush %s" % temporary]
    if len(elements) == 1 and elements[0].endswith("/0"):
        # hash:net can't hold a /0: the two halves instead.
        elements = ["0.0.0.0/1", "128.0.0.0/1"] if family == "ipv4" else ["::/1", "8000::/1"]
    if elements:
        add = "add %s " % temporary
        lines.append(add + ("\n" + add).join(elements))
    lines.append("swap %s %s" % (temporary, real))
    lines.append("destroy %s" % temporary)
    return "\n".join(lines)


def render_rules(ir, family):
    """The iptables-restore (ipv4) or ip6tables-restore (ipv6) --noflush input."""
    tool = "iptables-restore" if family == "ipv4" else "ip6tables-restore"
    lines = _header(ir, "%s --noflush input; only the chains ILO-INPUT and ILO-OUTPUT" % tool)
    lines.append("*filter")
    lines.extend(":%s - [0:0]" % CHAINS[direction] for direction in ("in", "out"))
    if ir["enforcement_mode"] == "idle":
        lines.append("# idle: both chains stay empty and unhooked traffic is left to the host's own rules")
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"
    for direction in ("in", "out"):
        lines.extend(_chain_rules(ir, family, direction))
    lines.append(HOOK_BEGIN + " (leave out when the jumps exist already: iptables -C INPUT -j ILO-INPUT)")
    for direction in ("in", "out"):
        lines.append("-I %s 1 -j %s" % (BUILTIN[direction], CHAINS[direction]))
    lines.append(HOOK_END)
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def _chain_rules(ir, family, direction):
    chain = CHAINS[direction]
    side = "src" if direction == "in" else "dst"
    interface = "-i" if direction == "in" else "-o"
    always = ir["always_allow"]
    log = ir.get("log_blocked")
    lines = []
    # Most packets belong to established connections: they leave after one rule.
    if always.get("established"):
        lines.append("-A %s -m conntrack --ctstate RELATED,ESTABLISHED -j RETURN" % chain)
    lines.append(
        '-A %s -m set --match-set %s %s -m comment --comment "management" -j RETURN'
        % (chain, set_name(MANAGEMENT_SETS[family]), side)
    )
    if always.get("loopback"):
        lines.append("-A %s %s lo -j RETURN" % (chain, interface))
    for name in always.get("ignored_interfaces") or []:
        lines.append('-A %s %s %s -m comment --comment "ignored interface" -j RETURN' % (chain, interface, _safe(name)))
    if always.get("icmpv6_nd") and family == "ipv6":
        for kind in ICMPV6_ESSENTIAL:
            lines.append("-A %s -p ipv6-icmp --icmpv6-type %d -j RETURN" % (chain, kind))
    if always.get("dhcp"):
        ports = {
            ("ipv4", "in"): (67, 68),
            ("ipv4", "out"): (68, 67),
            ("ipv6", "in"): (547, 546),
            ("ipv6", "out"): (546, 547),
        }
        sport, dport = ports[(family, direction)]
        lines.append('-A %s -p udp --sport %d --dport %d -m comment --comment "DHCP" -j RETURN' % (chain, sport, dport))
    for rule in ir["rules"]:
        name = rule["peers"].get(family)
        if rule["direction"] != direction or not name:
            continue
        peer = "-m set --match-set %s %s" % (set_name(name), side)
        comment = _comment(rule)
        for match in _service_matches(rule["services"], family):
            lines.extend(_with_verdict(chain, "%s%s" % (peer, match), rule["verdict"], log, comment))
    default = ir["defaults"][direction]
    if default["verdict"] == "drop":
        lines.extend(_with_verdict(chain, "", "drop", log, "default"))
    elif default.get("would_drop"):
        lines.extend(_with_verdict(chain, "", "count", log, "default"))
    return lines


def _with_verdict(chain, match, verdict, log, comment):
    head = "-A %s%s" % (chain, " " + match if match else "")
    if verdict == "accept":
        return ['%s -m comment --comment "%s" -j RETURN' % (head, comment)]
    if verdict == "drop":
        lines = []
        if log:
            lines.append('%s -j LOG --log-prefix "%s"' % (head, LOG_DROP))
        lines.append('%s -m comment --comment "%s" -j DROP' % (head, comment))
        return lines
    text = '%s -m comment --comment "would drop: %s"' % (head, comment)
    return [text + (' -j LOG --log-prefix "%s"' % LOG_WOULD_DROP if log else "")]


def _service_matches(services, family):
    matches = []
    for service in services:
        proto = service["proto"]
        if proto == -1:
            return [""]
        if proto == 1 or proto == 58:
            if (proto == 1) != (family == "ipv4"):
                continue
            name, option = ("icmp", "--icmp-type") if proto == 1 else ("ipv6-icmp", "--icmpv6-type")
            if not service.get("icmp"):
                matches.append(" -p %s" % name)
                continue
            for kind, code in service["icmp"]:
                matches.append(" -p %s %s %s" % (name, option, kind if code is None else "%d/%d" % (kind, code)))
        elif proto in _PROTO_NAMES:
            name = _PROTO_NAMES[proto]
            ports = service.get("ports")
            if not ports:
                matches.append(" -p %s" % name)
                continue
            if len(ports) == 1:
                lo, hi = ports[0]
                matches.append(" -p %s --dport %s" % (name, lo if lo == hi else "%d:%d" % (lo, hi)))
                continue
            for chunk in _multiport_chunks(ports):
                matches.append(" -p %s -m multiport --dports %s" % (name, chunk))
        else:
            matches.append(" -p %d" % proto)
    return matches


def _multiport_chunks(ports):
    chunks, current, used = [], [], 0
    for lo, hi in ports:
        cost = 1 if lo == hi else 2
        if used + cost > MULTIPORT_SLOTS:
            chunks.append(",".join(current))
            current, used = [], 0
        current.append(str(lo) if lo == hi else "%d:%d" % (lo, hi))
        used += cost
    if current:
        chunks.append(",".join(current))
    return chunks


def _comment(rule):
    hrefs = rule["hrefs"]
    text = hrefs[0] if hrefs else rule["action"]
    if len(hrefs) > 1:
        text = "%s +%d" % (text, len(hrefs) - 1)
    return _safe(text)[: COMMENT_MAX - 20]


def _safe(text):
    """Text that can sit inside a double-quoted iptables-restore argument or a comment line."""
    return "".join(char for char in str(text) if char not in "\"'\\\n\r" and ord(char) >= 32)
