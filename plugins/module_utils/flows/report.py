# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A traffic map of app groups from flow_query rows: a graph model, a text summary and one self-contained HTML page.

build_model() turns the rows into nodes and edges:

- a workload (a side with a workload href or labels) belongs to the node of its values for the `group_by` label keys,
  e.g. "shop | prod" ("-" for a key the workload lacks);
- an address that is no workload and falls into a CIDR of an address group belongs to that group's node (the most
  specific CIDR wins, then the first group listed);
- any other address is a node of its own, for the `max_address_nodes` busiest addresses (by connections); the rest
  are merged into the node "other addresses".

An edge is one (source node, destination node) pair with its flows, connections, services and policy decisions
summed; its class is the worst decision of its flows: blocked, then potentially_blocked, then unknown, then allowed
(an edge is allowed only when all its flows are).

render_html() draws the model as inline SVG (nodes on a circle in node order, curved edges with arrowheads, a loop
toward the centre for flows within one node) with inline CSS, a legend, the edge table and the flow table (capped).
The page loads nothing from anywhere and works without JavaScript (a little inline script only highlights a node's
edges on hover). The same input always gives the same bytes: there is no generation time stamp, only the flows'
first/last detected range.

Python 3.6+ standard library only: this may run on managed hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

import html
import ipaddress
import math

DECISIONS = ("allowed", "potentially_blocked", "blocked", "unknown")
# Worst first: the class of an edge is the first of these that any of its flows has.
DECISION_ORDER = ("blocked", "potentially_blocked", "unknown", "allowed")
BLOCKING = ("blocked", "potentially_blocked")
DEFAULT_GROUP_BY = ("app", "env")
DEFAULT_TITLE = "Traffic map"
DEFAULT_MAX_ADDRESS_NODES = 20
DEFAULT_MAX_FLOW_ROWS = 2000
OTHER_ADDRESSES = "other addresses"
NO_ADDRESS = "(no address)"
MISSING_LABEL = "-"
GROUP_SEPARATOR = " | "
GENERATOR = "microseg.illumio.flow_report"
SUMMARY_BEGIN = "<!-- flow_report:summary -->"
SUMMARY_END = "<!-- /flow_report:summary -->"

# Node kinds, in the order they are laid out on the circle.
WORKLOAD_GROUP = "workload_group"
ADDRESS_GROUP = "address_group"
ADDRESS = "address"
OTHER = "other"
KIND_ORDER = {WORKLOAD_GROUP: 0, ADDRESS_GROUP: 1, ADDRESS: 2, OTHER: 3}
KIND_TEXT = {
    WORKLOAD_GROUP: "workloads by label",
    ADDRESS_GROUP: "address group",
    ADDRESS: "address (no workload)",
    OTHER: "other addresses, merged",
}
PROTOCOL_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}


class ReportError(ValueError):
    """Bad input: the message says which row or address group and why."""


def _text(value):
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)


def esc(value):
    """Text from the input, escaped for HTML text and attribute values."""
    return html.escape(_text(value), quote=True)


def parse_address_groups(groups):
    """[(name, [ip_network, ...]), ...] from [{name: str, cidrs: [str, ...]}, ...]; ReportError names a bad one."""
    parsed = []
    for index, group in enumerate(groups or []):
        if not isinstance(group, dict):
            raise ReportError("address_groups[%d] must be a dict with name and cidrs" % index)
        name = group.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ReportError("address_groups[%d] needs a name" % index)
        cidrs = group.get("cidrs")
        if isinstance(cidrs, str):
            cidrs = [cidrs]
        if not isinstance(cidrs, (list, tuple)) or not cidrs:
            raise ReportError("address_groups[%d] (%s) needs a list of CIDRs in cidrs" % (index, name))
        networks = []
        for cidr in cidrs:
            try:
                networks.append(ipaddress.ip_network(_text(cidr).strip(), strict=False))
            except ValueError as error:
                raise ReportError(
                    "address_groups[%d] (%s): %r is not a valid IPv4 or IPv6 CIDR (%s)" % (index, name, cidr, error)
                ) from None
        parsed.append((name, networks))
    return parsed


def _ip(value):
    try:
        return ipaddress.ip_address(_text(value).strip())
    except ValueError:
        return None


def _address_sort_key(address):
    parsed = _ip(address)
    if parsed is None:
        return (1, 0, 0, address)
    return (0, parsed.version, int(parsed), address)


def _connections(row, index):
    value = row.get("num_connections")
    if value is None:
        return 1
    if isinstance(value, bool):
        raise ReportError("flows[%d]: num_connections must be a number, not %r" % (index, value))
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ReportError("flows[%d]: num_connections must be a number, not %r" % (index, value)) from None
    if number < 0:
        raise ReportError("flows[%d]: num_connections must not be negative (%d)" % (index, number))
    return number


def _decision(row, index):
    value = row.get("policy_decision")
    if value is None or value == "":
        return "unknown"
    if value not in DECISIONS:
        raise ReportError("flows[%d]: policy_decision %r is not one of %s" % (index, value, ", ".join(DECISIONS)))
    return value


def service_text(row):
    """V(tcp/443) from a row's proto_name (or proto number) and port; only the protocol when there is no port."""
    proto = row.get("proto_name")
    if not proto:
        number = row.get("proto")
        if number is None or number == "":
            proto = "any"
        else:
            try:
                proto = PROTOCOL_NAMES.get(int(number), str(number))
            except (TypeError, ValueError):
                proto = _text(number)
    proto = _text(proto).lower()
    port = row.get("port")
    if port is None or port == "":
        return proto
    return "%s/%s" % (proto, _text(port))


def _service_sort_key(service):
    proto, _sep, port = service.partition("/")
    return (proto, 0 if port.isdigit() else 1, int(port) if port.isdigit() else 0, port)


def _side(row, prefix, index):
    """(is_workload, ip, hostname, labels) of one end of a row."""
    labels = row.get(prefix + "_labels")
    if labels is None:
        labels = {}
    if not isinstance(labels, dict):
        raise ReportError("flows[%d]: %s_labels must be a dict of label key to value" % (index, prefix))
    ip = _text(row.get(prefix + "_ip")).strip()
    hostname = _text(row.get(prefix + "_hostname")).strip()
    is_workload = bool(row.get(prefix + "_workload")) or bool(labels)
    return is_workload, ip, hostname, labels


def group_name(labels, group_by):
    values = []
    for key in group_by:
        value = labels.get(key)
        values.append(MISSING_LABEL if value is None or _text(value) == "" else _text(value))
    return GROUP_SEPARATOR.join(values)


def worst_decision(decisions):
    """The class of an edge from its {decision: flows}: the first of DECISION_ORDER with any flow."""
    for decision in DECISION_ORDER:
        if decisions.get(decision):
            return decision
    return "unknown"


def build_model(flows, group_by=DEFAULT_GROUP_BY, address_groups=None, max_address_nodes=DEFAULT_MAX_ADDRESS_NODES):
    """The graph of flow_query rows: {nodes, edges, flows, totals}; ReportError on bad input.

    nodes: [{id, name, kind, connections, members}] in layout order (kind, then name); edges: [{source, target,
    source_name, target_name, connections, flows, decisions, services, decision}] in node order of the source, then of
    the target; flows: [{index, src_node, dst_node, service, connections, decision, row}] in input order.
    """
    group_by = [_text(key) for key in group_by or []]
    if not group_by:
        raise ReportError("group_by needs at least one label key")
    if max_address_nodes is None or int(max_address_nodes) < 0:
        raise ReportError("max_address_nodes must be 0 or more")
    max_address_nodes = int(max_address_nodes)
    networks = parse_address_groups(address_groups)
    if flows is None:
        flows = []
    if not isinstance(flows, (list, tuple)):
        raise ReportError("flows must be a list of flow rows (dicts)")

    # First pass: validate, classify each end; addresses outside address groups are ranked afterwards.
    group_of_address = {}
    address_connections = {}
    address_hostnames = {}
    parsed = []
    for index, row in enumerate(flows):
        if not isinstance(row, dict):
            raise ReportError("flows[%d] must be a dict (a row of flow_query), not %s" % (index, type(row).__name__))
        if not _text(row.get("src_ip")).strip() and not _text(row.get("dst_ip")).strip():
            raise ReportError("flows[%d] has neither src_ip nor dst_ip" % index)
        connections = _connections(row, index)
        decision = _decision(row, index)
        ends = []
        for prefix in ("src", "dst"):
            is_workload, ip, hostname, labels = _side(row, prefix, index)
            if is_workload:
                ends.append((WORKLOAD_GROUP, group_name(labels, group_by), None))
                continue
            address = ip or NO_ADDRESS
            if address not in group_of_address:
                group_of_address[address] = _address_group(address, networks)
            group = group_of_address[address]
            if group is not None:
                ends.append((ADDRESS_GROUP, group, address))
                continue
            address_connections[address] = address_connections.get(address, 0) + connections
            if hostname:
                known = address_hostnames.get(address)
                if known is None or hostname < known:
                    address_hostnames[address] = hostname
            ends.append((ADDRESS, address, address))
        parsed.append((index, row, ends[0], ends[1], connections, decision, service_text(row)))

    ranked = sorted(
        address_connections, key=lambda address: (-address_connections[address], _address_sort_key(address))
    )
    own_node = set(ranked[:max_address_nodes])

    def node_key(end):
        kind, name, _address = end
        if kind == ADDRESS and name not in own_node:
            return (OTHER, OTHER_ADDRESSES)
        return (kind, name)

    nodes = {}
    edges = {}
    flow_views = []
    for index, row, src_end, dst_end, connections, decision, service in parsed:
        src_key = node_key(src_end)
        dst_key = node_key(dst_end)
        for key, end in ((src_key, src_end), (dst_key, dst_end)):
            node = nodes.get(key)
            if node is None:
                node = nodes[key] = {"kind": key[0], "key": key[1], "connections": 0, "members": set()}
            node["connections"] += connections
            if key[0] in (ADDRESS_GROUP, OTHER):
                node["members"].add(end[2])
        edge = edges.get((src_key, dst_key))
        if edge is None:
            edge = edges[(src_key, dst_key)] = {"connections": 0, "flows": 0, "decisions": {}, "services": set()}
        edge["connections"] += connections
        edge["flows"] += 1
        edge["decisions"][decision] = edge["decisions"].get(decision, 0) + 1
        edge["services"].add(service)
        flow_views.append((index, src_key, dst_key, service, connections, decision, row))

    def display_name(key):
        kind, name = key
        if kind == ADDRESS and address_hostnames.get(name):
            return "%s (%s)" % (address_hostnames[name], name)
        return name

    def layout_key(key):
        kind, name = key
        if kind == ADDRESS:
            return (KIND_ORDER[kind], _address_sort_key(name))
        return (KIND_ORDER[kind], (0, 0, 0, name))

    ordered = sorted(nodes, key=layout_key)
    ids = {}
    node_list = []
    for number, key in enumerate(ordered):
        ids[key] = "n%d" % number
        node = nodes[key]
        node_list.append(
            {
                "id": ids[key],
                "name": display_name(key),
                "kind": key[0],
                "connections": node["connections"],
                "members": sorted(node["members"], key=_address_sort_key),
            }
        )
    names = dict((key, display_name(key)) for key in nodes)
    edge_list = []
    position = dict((key, number) for number, key in enumerate(ordered))
    for (src_key, dst_key), edge in sorted(
        edges.items(), key=lambda item: (position[item[0][0]], position[item[0][1]])
    ):
        decisions = dict(
            (decision, edge["decisions"][decision]) for decision in DECISIONS if edge["decisions"].get(decision)
        )
        edge_list.append(
            {
                "source": ids[src_key],
                "target": ids[dst_key],
                "source_name": names[src_key],
                "target_name": names[dst_key],
                "connections": edge["connections"],
                "flows": edge["flows"],
                "decisions": decisions,
                "services": sorted(edge["services"], key=_service_sort_key),
                "decision": worst_decision(decisions),
            }
        )
    firsts = [_text(row.get("first_detected")) for row in flows if row.get("first_detected")]
    lasts = [_text(row.get("last_detected")) for row in flows if row.get("last_detected")]
    flow_list = [
        {
            "index": index,
            "src_node": ids[src_key],
            "dst_node": ids[dst_key],
            "src_name": names[src_key],
            "dst_name": names[dst_key],
            "service": service,
            "connections": connections,
            "decision": decision,
            "row": row,
        }
        for index, src_key, dst_key, service, connections, decision, row in flow_views
    ]
    return {
        "group_by": group_by,
        "nodes": node_list,
        "edges": edge_list,
        "flows": flow_list,
        "totals": {
            "groups": len(node_list),
            "edges": len(edge_list),
            "flows": len(flow_list),
            "connections": sum(flow["connections"] for flow in flow_list),
            "blocked_edges": sum(1 for edge in edge_list if any(edge["decisions"].get(d) for d in BLOCKING)),
            "first_detected": min(firsts) if firsts else None,
            "last_detected": max(lasts) if lasts else None,
        },
    }


def _address_group(address, networks):
    """The name of the address group with the most specific CIDR holding address, or None."""
    parsed = _ip(address)
    if parsed is None:
        return None
    best = None
    for name, group_networks in networks:
        for network in group_networks:
            matches = network.version == parsed.version and parsed in network
            if matches and (best is None or network.prefixlen > best[0]):
                best = (network.prefixlen, name)
    return None if best is None else best[1]


def summary(model):
    """The edges as plain dicts for the module's result (RV(summary))."""
    return [
        {
            "source": edge["source_name"],
            "destination": edge["target_name"],
            "connections": edge["connections"],
            "flows": edge["flows"],
            "decision": edge["decision"],
            "decisions": dict(edge["decisions"]),
            "services": list(edge["services"]),
        }
        for edge in model["edges"]
    ]


def summary_line(edge):
    decisions = " ".join("%s=%d" % (decision, count) for decision, count in sorted(edge["decisions"].items()))
    return "%s -> %s: %d connections, %d flows, %s, %s" % (
        edge["source_name"],
        edge["target_name"],
        edge["connections"],
        edge["flows"],
        decisions,
        " ".join(edge["services"]),
    )


def summary_text(model):
    """One line per edge (the text shown in the page and used for the module's diff)."""
    return "".join(summary_line(edge) + "\n" for edge in model["edges"])


def summary_text_of_page(page):
    """The summary text kept in a page that render_html() wrote, or None when the page has none."""
    begin = page.find(SUMMARY_BEGIN)
    if begin < 0:
        return None
    end = page.find(SUMMARY_END, begin)
    if end < 0:
        return None
    block = page[begin + len(SUMMARY_BEGIN) : end]
    start = block.find(">")
    stop = block.rfind("</pre>")
    if start < 0 or stop < 0:
        return None
    return html.unescape(block[start + 1 : stop])


# ---------------------------------------------------------------------------------------------------- rendering

NODE_SPACING = 46.0
MIN_RADIUS = 170.0
LABEL_MARGIN = 230.0
MAX_LABEL_CHARS = 36

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:1.5em;color:#222;}
h1{font-size:1.5em;margin:0 0 .3em 0;}h2{font-size:1.15em;margin:1.5em 0 .5em 0;}
.meta{color:#555;margin:.2em 0;}
.legend{display:flex;flex-wrap:wrap;gap:.4em 1.4em;margin:.8em 0;font-size:.9em;}
.legend span{display:inline-flex;align-items:center;gap:.4em;}
.swatch{display:inline-block;width:2.2em;height:0;border-top:3px solid #999;}
.swatch.allowed{border-top-color:#2e8b3d;}.swatch.potentially_blocked{border-top:3px dashed #f08c00;}
.swatch.blocked{border-top-color:#d62828;}.swatch.unknown{border-top-color:#9a9a9a;}
.dot{display:inline-block;width:.9em;height:.9em;border-radius:50%;border:1px solid #333;}
.map{overflow:auto;border:1px solid #ddd;background:#fcfcfc;}
svg.traffic{display:block;margin:0 auto;max-width:100%;height:auto;}
.node circle{stroke:#333;stroke-width:1.2;}
.node.workload_group circle,.dot.workload_group{fill:#4c7fd1;background:#4c7fd1;}
.node.address_group circle,.dot.address_group{fill:#9467bd;background:#9467bd;}
.node.address circle,.dot.address{fill:#c7c7c7;background:#c7c7c7;}
.node.other circle,.dot.other{fill:#f0f0f0;background:#f0f0f0;}
.node text{font-size:12px;fill:#222;}
.edge path{fill:none;stroke-opacity:.8;}
.edge.allowed path{stroke:#2e8b3d;}.edge.unknown path{stroke:#9a9a9a;}
.edge.potentially_blocked path{stroke:#f08c00;stroke-dasharray:7 4;}
.edge.blocked path{stroke:#d62828;}
.edge text{font-size:11px;fill:#222;paint-order:stroke;stroke:#fff;stroke-width:3px;}
svg.focus .edge{opacity:.12;}svg.focus .edge.hi{opacity:1;}svg.focus .node{opacity:.35;}svg.focus .node.hi{opacity:1;}
table{border-collapse:collapse;font-size:.85em;margin:.3em 0 1em 0;}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top;}
th{background:#f2f2f2;position:sticky;top:0;}
td.num{text-align:right;font-variant-numeric:tabular-nums;}
td.d-blocked{color:#b00;font-weight:bold;}td.d-potentially_blocked{color:#c06a00;font-weight:bold;}
td.d-allowed{color:#2e7a38;}td.d-unknown{color:#777;}
.sub{color:#666;font-size:.9em;}.note{color:#555;font-style:italic;}
pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:.85em;}
"""

SCRIPT = """
(function () {
  var svg = document.getElementById("traffic-map");
  if (!svg || !svg.querySelectorAll) { return; }
  var nodes = svg.querySelectorAll("g.node"), edges = svg.querySelectorAll("g.edge");
  function clear() {
    svg.classList.remove("focus");
    for (var i = 0; i < edges.length; i++) { edges[i].classList.remove("hi"); }
    for (var j = 0; j < nodes.length; j++) { nodes[j].classList.remove("hi"); }
  }
  function focus(id) {
    svg.classList.add("focus");
    for (var i = 0; i < edges.length; i++) {
      var e = edges[i], s = e.getAttribute("data-source"), t = e.getAttribute("data-target");
      if (s === id || t === id) {
        e.classList.add("hi");
        var a = document.getElementById(s), b = document.getElementById(t);
        if (a) { a.classList.add("hi"); }
        if (b) { b.classList.add("hi"); }
      }
    }
  }
  for (var k = 0; k < nodes.length; k++) {
    nodes[k].addEventListener("mouseenter", function () { focus(this.id); });
    nodes[k].addEventListener("mouseleave", clear);
  }
})();
"""

# Nothing may be fetched: no network, only the inline style and script.
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"


def _num(value):
    """A coordinate with one decimal, the same text on every platform."""
    text = "%.1f" % value
    return "0.0" if text == "-0.0" else text


def _short(name):
    return name if len(name) <= MAX_LABEL_CHARS else name[: MAX_LABEL_CHARS - 1] + "\u2026"


def _stroke_width(connections):
    return min(9.0, 1.2 + 1.4 * math.log10(max(1, connections)))


def _node_radius(connections):
    return min(20.0, 8.0 + 2.2 * math.log10(max(1, connections)))


def layout(model):
    """Positions {node id: (x, y, r, angle)} on a circle in node order, and the size of the picture."""
    count = len(model["nodes"])
    radius = max(MIN_RADIUS, count * NODE_SPACING / (2 * math.pi))
    center = radius + LABEL_MARGIN
    positions = {}
    for number, node in enumerate(model["nodes"]):
        angle = -math.pi / 2 + 2 * math.pi * number / max(1, count)
        positions[node["id"]] = (
            center + radius * math.cos(angle),
            center + radius * math.sin(angle),
            _node_radius(node["connections"]),
            angle,
        )
    return positions, 2 * center, center


def _toward(point, other, distance):
    dx, dy = other[0] - point[0], other[1] - point[1]
    length = math.hypot(dx, dy) or 1.0
    return (point[0] + dx / length * distance, point[1] + dy / length * distance)


def _edge_geometry(source, target):
    """(path d, label x, label y) of a curved edge; A->B and B->A bend to different sides."""
    (x1, y1, r1, angle), (x2, y2, r2, _angle) = source, target
    if (x1, y1) == (x2, y2):
        # A loop toward the centre (the names are outside): flows within one group.
        inward = angle + math.pi
        out = 3.2 * r1 + 26
        c1 = (x1 + out * math.cos(inward - 0.45), y1 + out * math.sin(inward - 0.45))
        c2 = (x1 + out * math.cos(inward + 0.45), y1 + out * math.sin(inward + 0.45))
        start = _toward((x1, y1), c1, r1)
        end = _toward((x1, y1), c2, r1 + 1)
        d = "M%s %s C%s %s %s %s %s %s" % tuple(_num(v) for v in (start + c1 + c2 + end))
        apex = (x1 + 0.75 * out * math.cos(inward), y1 + 0.75 * out * math.sin(inward))
        return d, apex[0], apex[1]
    dx, dy = x2 - x1, y2 - y1
    length = math.hypot(dx, dy) or 1.0
    bend = 0.18 * length + 8
    control = ((x1 + x2) / 2 + dy / length * bend, (y1 + y2) / 2 - dx / length * bend)
    start = _toward((x1, y1), control, r1)
    end = _toward((x2, y2), control, r2 + 1)
    d = "M%s %s Q%s %s %s %s" % tuple(_num(v) for v in (start + control + end))
    label = (0.25 * start[0] + 0.5 * control[0] + 0.25 * end[0], 0.25 * start[1] + 0.5 * control[1] + 0.25 * end[1])
    return d, label[0], label[1]


def _decisions_text(decisions):
    return ", ".join(
        "%s %d" % (decision.replace("_", " "), decisions[decision])
        for decision in DECISION_ORDER
        if decisions.get(decision)
    )


def render_svg(model):
    positions, size, center = layout(model)
    parts = [
        '<svg id="traffic-map" class="traffic" role="img" aria-label="traffic map" width="%s" height="%s" '
        'viewBox="0 0 %s %s">' % (_num(size), _num(size), _num(size), _num(size)),
        "<defs>",
    ]
    colors = {"allowed": "#2e8b3d", "potentially_blocked": "#f08c00", "blocked": "#d62828", "unknown": "#9a9a9a"}
    for decision in DECISIONS:
        parts.append(
            '<marker id="arrow-%s" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10" markerHeight="10" '
            'markerUnits="userSpaceOnUse" orient="auto"><path d="M0 0 L10 5 L0 10 z" fill="%s"/></marker>'
            % (decision, colors[decision])
        )
    parts.append("</defs>")
    parts.append('<g class="edges">')
    for edge in model["edges"]:
        d, lx, ly = _edge_geometry(positions[edge["source"]], positions[edge["target"]])
        tooltip = "%s \u2192 %s: %d connections in %d flows; %s; %s" % (
            edge["source_name"],
            edge["target_name"],
            edge["connections"],
            edge["flows"],
            _decisions_text(edge["decisions"]),
            " ".join(edge["services"]),
        )
        parts.append(
            '<g class="edge %s" data-source="%s" data-target="%s"><title>%s</title>'
            '<path d="%s" stroke-width="%s" marker-end="url(#arrow-%s)"/>'
            '<text x="%s" y="%s" text-anchor="middle" dominant-baseline="middle">%d</text></g>'
            % (
                edge["decision"],
                edge["source"],
                edge["target"],
                esc(tooltip),
                d,
                _num(_stroke_width(edge["connections"])),
                edge["decision"],
                _num(lx),
                _num(ly),
                edge["connections"],
            )
        )
    parts.append("</g>")
    parts.append('<g class="nodes">')
    for node in model["nodes"]:
        x, y, r, angle = positions[node["id"]]
        cos = math.cos(angle)
        anchor = "start" if cos > 0.2 else "end" if cos < -0.2 else "middle"
        lx = x + (r + 6) * cos
        ly = y + (r + 6) * math.sin(angle) + (4 if anchor != "middle" else (14 if math.sin(angle) > 0 else -6))
        tooltip = "%s (%s): %d connections" % (node["name"], KIND_TEXT[node["kind"]], node["connections"])
        if node["members"]:
            shown = node["members"][:50]
            tooltip += "\n" + ", ".join(shown)
            if len(node["members"]) > len(shown):
                tooltip += ", \u2026 %d more" % (len(node["members"]) - len(shown))
        parts.append(
            '<g class="node %s" id="%s"><title>%s</title><circle cx="%s" cy="%s" r="%s"/>'
            '<text x="%s" y="%s" text-anchor="%s">%s</text></g>'
            % (
                node["kind"],
                node["id"],
                esc(tooltip),
                _num(x),
                _num(y),
                _num(r),
                _num(lx),
                _num(ly),
                anchor,
                esc(_short(node["name"])),
            )
        )
    parts.append("</g>")
    if not model["nodes"]:
        parts.append('<text x="%s" y="%s" text-anchor="middle">No flows.</text>' % (_num(center), _num(center)))
    parts.append("</svg>")
    return "\n".join(parts)


def _legend():
    items = []
    for decision in DECISION_ORDER:
        items.append('<span><i class="swatch %s"></i>%s</span>' % (decision, decision.replace("_", " ")))
    for kind in (WORKLOAD_GROUP, ADDRESS_GROUP, ADDRESS, OTHER):
        items.append('<span><i class="dot %s"></i>%s</span>' % (kind, KIND_TEXT[kind]))
    items.append("<span>line width: log of connections; number: connections</span>")
    return '<div class="legend">%s</div>' % "".join(items)


def _endpoint_cell(row, prefix, node_name):
    ip = esc(row.get(prefix + "_ip")) or "-"
    hostname = esc(row.get(prefix + "_hostname"))
    text = ip if not hostname else '%s <span class="sub">%s</span>' % (ip, hostname)
    return '%s<br><span class="sub">%s</span>' % (text, esc(node_name))


def _edge_table(model):
    rows = [
        '<table class="edges"><thead><tr><th>Source</th><th>Destination</th><th>Connections</th><th>Flows</th>'
        "<th>Decision</th><th>Decisions (flows)</th><th>Services</th></tr></thead><tbody>"
    ]
    for edge in model["edges"]:
        rows.append(
            '<tr><td>%s</td><td>%s</td><td class="num">%d</td><td class="num">%d</td><td class="d-%s">%s</td>'
            "<td>%s</td><td>%s</td></tr>"
            % (
                esc(edge["source_name"]),
                esc(edge["target_name"]),
                edge["connections"],
                edge["flows"],
                edge["decision"],
                edge["decision"].replace("_", " "),
                esc(_decisions_text(edge["decisions"])),
                esc(" ".join(edge["services"])),
            )
        )
    rows.append("</tbody></table>")
    return "\n".join(rows)


def _flow_table(model, max_rows):
    flows = model["flows"]
    shown = flows[:max_rows]
    parts = []
    if len(flows) > len(shown):
        parts.append(
            '<p class="note">Showing the first %d of %d flow rows; %d rows were left out of this table (the map and '
            "the table of connections above include them all).</p>" % (len(shown), len(flows), len(flows) - len(shown))
        )
    parts.append(
        '<table class="flows"><thead><tr><th>Source</th><th>Destination</th><th>Service</th><th>Connections</th>'
        "<th>Decision</th><th>First seen</th><th>Last seen</th></tr></thead><tbody>"
    )
    for flow in shown:
        row = flow["row"]
        parts.append(
            '<tr><td>%s</td><td>%s</td><td>%s</td><td class="num">%d</td><td class="d-%s">%s</td><td>%s</td>'
            "<td>%s</td></tr>"
            % (
                _endpoint_cell(row, "src", flow["src_name"]),
                _endpoint_cell(row, "dst", flow["dst_name"]),
                esc(flow["service"]),
                flow["connections"],
                flow["decision"],
                flow["decision"].replace("_", " "),
                esc(row.get("first_detected")) or "-",
                esc(row.get("last_detected")) or "-",
            )
        )
    parts.append("</tbody></table>")
    return "\n".join(parts)


def render_html(model, title=DEFAULT_TITLE, max_flow_rows=DEFAULT_MAX_FLOW_ROWS):
    """The whole page as text; the same model always gives the same text."""
    totals = model["totals"]
    if totals["first_detected"] or totals["last_detected"]:
        window = "Flows first detected %s, last detected %s." % (
            esc(totals["first_detected"] or "?"),
            esc(totals["last_detected"] or "?"),
        )
    else:
        window = "The flows carry no detection times."
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % CSP,
        '<meta name="generator" content="%s">' % GENERATOR,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s</title>" % esc(title),
        "<style>%s</style>" % STYLE,
        "</head>",
        "<body>",
        "<h1>%s</h1>" % esc(title),
        '<p class="meta">%d flows, %d connections between %d groups over %d edges (%d with blocked or potentially '
        "blocked flows). Workloads grouped by %s.</p>"
        % (
            totals["flows"],
            totals["connections"],
            totals["groups"],
            totals["edges"],
            totals["blocked_edges"],
            esc(", ".join(model["group_by"])),
        ),
        '<p class="meta">%s</p>' % window,
        _legend(),
        '<div class="map">',
        render_svg(model),
        "</div>",
        "<h2>Connections between groups</h2>",
        _edge_table(model),
        "<h2>Flows</h2>",
        _flow_table(model, max_flow_rows),
        "<details><summary>Text summary (one line per edge)</summary>",
        SUMMARY_BEGIN + '<pre id="summary">' + esc(summary_text(model)) + "</pre>" + SUMMARY_END,
        "</details>",
        "<script>%s</script>" % SCRIPT,
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)
