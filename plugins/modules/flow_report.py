#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: flow_report
short_description: Draw the traffic flows between app groups as one self-contained HTML page
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Turns the rows that M(microseg.illumio.flow_query) returns into a traffic map of app groups and writes it to
    O(dest) as one HTML file with inline CSS, inline SVG and a little inline JavaScript. The page loads nothing
    (no scripts, fonts or images from anywhere) and is readable without JavaScript.
  - B(Nodes.) Workloads with the same values for the label keys of O(group_by) are one node, e.g. C(shop | prod);
    a workload without one of the keys shows C(-) for it. Addresses that are no workload and fall into a CIDR of
    O(address_groups) are one node per address group. Other addresses are one node each, for the O(max_address_nodes)
    busiest of them; the rest are merged into the node C(other addresses).
  - B(Edges.) One edge per source and destination node, with its flows, connections, services (like C(tcp/443)) and
    policy decisions summed. It is drawn as a curved arrow whose width grows with the logarithm of its connections,
    labelled with their number, red when any flow is V(blocked), orange and dashed when any is
    V(potentially_blocked), grey when any is V(unknown), green when all are V(allowed).
  - Below the map are a legend, the table of edges (always complete) and the table of flow rows, which stops after
    2000 rows with a note on how many were left out.
  - The same input gives the same bytes (the page has no time of generation, only the first and last detection times
    of the flows), so a second run with the same flows reports no change. The file is written atomically (a temporary
    file in the same directory, then a rename).
  - Runs wherever the flows are, usually the controller (C(delegate_to) V(localhost)). Python 3.6 or later, standard
    library only.
options:
  flows:
    description:
      - The flow rows, as RV(microseg.illumio.flow_query#module:flows) returns them.
      - Each row needs C(src_ip) or C(dst_ip); every other key may be missing or null. A missing C(num_connections)
        counts as one connection, a missing C(policy_decision) as V(unknown).
      - An end with a C(*_workload) href or C(*_labels) is a workload; any other end is an address.
    type: list
    elements: dict
    required: true
  dest:
    description:
      - The HTML file to write.
      - Its directory must exist; it is not created.
    type: path
    required: true
  group_by:
    description:
      - The label keys whose values make a workload's node, in that order, joined with a vertical bar.
    type: list
    elements: str
    default: [app, env]
  title:
    description:
      - The title of the page.
    type: str
    default: Traffic map
  address_groups:
    description:
      - Named sets of CIDRs (IPv4 or IPv6). An address that is no workload and falls into one of them belongs to that
        group's node.
      - When several groups hold an address, the one with the most specific CIDR wins, then the first listed.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The name of the node.
        type: str
        required: true
      cidrs:
        description:
          - Networks such as V(10.20.0.0/16) or V(2001:db8::/32); a single address is a network of one.
        type: list
        elements: str
        required: true
  max_address_nodes:
    description:
      - How many addresses that are no workload and in no address group get a node of their own, the busiest first
        (by connections). The others are merged into one node C(other addresses).
      - V(0) merges them all.
    type: int
    default: 20
  mode:
    description:
      - The permissions of O(dest), as an octal string such as V("0640") or a number.
      - A file with the right content but other permissions is changed to these.
    type: raw
    default: "0640"
seealso:
  - module: microseg.illumio.flow_query
    description: Query the flows that this module draws.
attributes:
  check_mode:
    description: Builds the page and reports whether O(dest) would change (missing, other content or other
      permissions) without writing it.
    support: full
  diff_mode:
    description: Returns under C(diff) the text summary of the edges (one line per edge, as in RV(summary)) kept in
      the page before and after; C(before) is empty when O(dest) does not exist or was not written by this module.
    support: full
"""

EXAMPLES = r"""
- name: What reached the shop in the last day
  microseg.illumio.flow_query:
    since: 86400
    destinations:
      include: ["app:shop"]
  register: seen
  delegate_to: localhost
  run_once: true

- name: Draw it
  microseg.illumio.flow_report:
    flows: "{{ seen.flows }}"
    dest: /tmp/traffic.html
  delegate_to: localhost
  run_once: true

- name: By application only, with the data centre networks named
  microseg.illumio.flow_report:
    flows: "{{ seen.flows }}"
    dest: /tmp/traffic-by-app.html
    title: Shop traffic by application
    group_by: [app]
    address_groups:
      - name: office
        cidrs: [192.168.0.0/16, "2001:db8:100::/48"]
      - name: dmz
        cidrs: [10.20.0.0/24]
    max_address_nodes: 10
    mode: "0644"
  delegate_to: localhost
  run_once: true
  register: report

- name: Nothing was blocked
  ansible.builtin.assert:
    that: report.blocked_edges == 0
"""

RETURN = r"""
dest:
  description: The HTML file.
  returned: success
  type: str
  sample: /tmp/traffic.html
groups:
  description: Nodes on the map (workload groups, address groups, addresses and C(other addresses)).
  returned: success
  type: int
  sample: 5
edges:
  description: Edges on the map, one per source and destination node.
  returned: success
  type: int
  sample: 6
flows:
  description: Flow rows drawn.
  returned: success
  type: int
  sample: 120
connections:
  description: Sum of their connections.
  returned: success
  type: int
  sample: 4711
blocked_edges:
  description: Edges with any V(blocked) or V(potentially_blocked) flow.
  returned: success
  type: int
  sample: 1
summary:
  description: The edges, in the order of their source node, then of their destination node; nodes are in the
    order of the map (workload groups, address groups, addresses, then C(other addresses); each group by name,
    addresses by number).
  returned: success
  type: list
  elements: dict
  sample:
    - source: shop | prod
      destination: db | prod
      connections: 12
      flows: 2
      decision: potentially_blocked
      decisions: {allowed: 1, potentially_blocked: 1}
      services: [tcp/443, tcp/5432]
  contains:
    source:
      description: The source node.
      type: str
    destination:
      description: The destination node.
      type: str
    connections:
      description: Sum of the connections of its flows.
      type: int
    flows:
      description: Flow rows.
      type: int
    decision:
      description: The class of the edge, the worst decision of its flows (V(blocked), V(potentially_blocked),
        V(unknown), then V(allowed)).
      type: str
    decisions:
      description: Flow rows per policy decision (only those that occur).
      type: dict
    services:
      description: The services, like C(tcp/443), or only the protocol when the rows have no port.
      type: list
      elements: str
"""

import os
import stat

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_text
from ansible_collections.microseg.illumio.plugins.module_utils.flows import report
from ansible_collections.microseg.illumio.plugins.module_utils.flows.writers import write_atomic


def file_mode(value):
    """The permission bits of the mode option (octal text or a number), or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    else:
        text = to_text(value).strip()
        if not text or any(char not in "01234567" for char in text):
            return None
        number = int(text, 8)
    if not 0 <= number <= 0o7777:
        return None
    return number


def read_current(path):
    """(text, permission bits) of the existing file, or (None, None) when there is none."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
            bits = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
    except FileNotFoundError:
        return None, None
    return data.decode("utf-8", "replace"), bits


def run(module):
    params = module.params
    dest = params["dest"]
    mode = file_mode(params["mode"])
    if mode is None:
        module.fail_json(msg="mode must be octal permissions such as '0640', not %r" % (params["mode"],))
    if params["max_address_nodes"] < 0:
        module.fail_json(msg="max_address_nodes must be 0 or more")
    if not params["group_by"]:
        module.fail_json(msg="group_by needs at least one label key")
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        module.fail_json(msg="the directory of dest does not exist: %s (it is not created)" % parent, dest=dest)
    if os.path.isdir(dest):
        module.fail_json(msg="dest is a directory, not a file: %s" % dest, dest=dest)
    try:
        model = report.build_model(
            params["flows"],
            group_by=params["group_by"],
            address_groups=params["address_groups"],
            max_address_nodes=params["max_address_nodes"],
        )
    except report.ReportError as error:
        module.fail_json(msg=str(error), dest=dest)
    page = report.render_html(model, title=params["title"])
    current, current_mode = read_current(dest)
    content_changed = current != page
    changed = content_changed or current_mode != mode
    totals = model["totals"]
    result = {
        "changed": changed,
        "dest": dest,
        "groups": totals["groups"],
        "edges": totals["edges"],
        "flows": totals["flows"],
        "connections": totals["connections"],
        "blocked_edges": totals["blocked_edges"],
        "summary": report.summary(model),
    }
    if module._diff:
        before = (report.summary_text_of_page(current) or "") if current is not None else ""
        result["diff"] = {
            "before": before,
            "after": report.summary_text(model),
            "before_header": "%s (summary)" % dest,
            "after_header": "%s (summary)" % dest,
        }
    if module.check_mode or not changed:
        return result
    if content_changed:
        write_atomic(dest, page, mode)
    else:
        os.chmod(dest, mode)
    return result


def main():
    module = AnsibleModule(
        argument_spec=dict(
            flows=dict(type="list", elements="dict", required=True),
            dest=dict(type="path", required=True),
            group_by=dict(type="list", elements="str", default=["app", "env"]),
            title=dict(type="str", default=report.DEFAULT_TITLE),
            address_groups=dict(
                type="list",
                elements="dict",
                default=[],
                options=dict(
                    name=dict(type="str", required=True),
                    cidrs=dict(type="list", elements="str", required=True),
                ),
            ),
            max_address_nodes=dict(type="int", default=report.DEFAULT_MAX_ADDRESS_NODES),
            mode=dict(type="raw", default="0640"),
        ),
        supports_check_mode=True,
    )
    try:
        result = run(module)
    except OSError as error:
        module.fail_json(msg="cannot write %s: %s" % (module.params["dest"], error), dest=module.params["dest"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
