#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: flow_query
short_description: Query the traffic flows the Illumio PCE has seen
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Runs an asynchronous traffic query on the Illumio Policy Compute Engine (PCE), the query behind
    Explorer (C(POST /orgs/{org}/traffic_flows/async_queries)), waits for it and returns the flows with
    summary counts, so that playbooks can assert on what was seen.
  - The PCE merges the flows of one source, destination, port and protocol into one row, adding up their
    connections and widening their detection window.
  - Read-only; in check mode the query runs as well.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  start_date:
    description:
      - Start of the window, a date (V(2026-11-23)) or an ISO 8601 time (V(2026-11-23T14:00:00Z)).
      - Without it the window is the last O(since) seconds.
    type: str
  end_date:
    description:
      - End of the window, a date (that whole day) or an ISO 8601 time. Defaults to now.
    type: str
  since:
    description:
      - Without O(start_date), look back this many seconds from now.
    type: int
    default: 86400
  sources:
    description:
      - Which sources to include and exclude.
      - C(include) is a list whose entries are joined by OR; an entry that is a list of actors matches when all of
        them do. C(exclude) is a list of actors.
      - "An actor is V(key:value) (a label), an IP address or CIDR, the href of a workload, label, label group or
        IP list, V(ams) (all managed workloads), or a dict: C({label: role:web}), C({label: {key: role, value:
        web}}), C({ip: 10.0.0.0/8}), C({workload: href}), C({label_group: href}), C({ip_list: href})."
      - Labels given as key and value must exist on the PCE.
    type: dict
    suboptions:
      include:
        description: Actors or lists of actors (ANDed), joined by OR.
        type: list
        elements: raw
      exclude:
        description: Actors to leave out.
        type: list
        elements: raw
  destinations:
    description:
      - Which destinations to include and exclude, written as O(sources).
    type: dict
    suboptions:
      include:
        description: Actors or lists of actors (ANDed), joined by OR.
        type: list
        elements: raw
      exclude:
        description: Actors to leave out.
        type: list
        elements: raw
  query_op:
    description:
      - With V(and) a flow must match both O(sources) and O(destinations) (those that name actors); with V(or)
        either.
    type: str
    choices: [and, or]
    default: and
  services:
    description:
      - Only flows to these services.
    type: list
    elements: dict
    suboptions:
      port:
        description: Destination port, or first port of a range.
        type: int
      to_port:
        description: Last port of a range.
        type: int
      proto:
        description: Protocol, a number or V(tcp), V(udp), V(icmp), V(icmpv6).
        type: str
  exclude_services:
    description:
      - Leave out flows to these services, written as O(services).
    type: list
    elements: dict
    suboptions:
      port:
        description: Destination port, or first port of a range.
        type: int
      to_port:
        description: Last port of a range.
        type: int
      proto:
        description: Protocol, a number or V(tcp), V(udp), V(icmp), V(icmpv6).
        type: str
  policy_decisions:
    description:
      - Only flows with these policy decisions; all when empty.
    type: list
    elements: str
    choices: [allowed, potentially_blocked, blocked, unknown]
    default: []
  exclude_workloads_from_ip_list_query:
    description:
      - Whether addresses of known workloads stop matching IP lists, as in Explorer.
    type: bool
    default: true
  max_results:
    description:
      - Most rows to return (the PCE allows 1 to 200000), newest first. RV(summary.truncated) tells when the
        cap was reached.
    type: int
    default: 10000
  timeout:
    description:
      - Seconds to wait for the query to complete.
    type: int
    default: 300
  poll_interval:
    description:
      - Longest pause, in seconds, between two looks at the query's status.
    type: float
    default: 2
"""

EXAMPLES = r"""
- name: What reached the database tier in the last hour
  microseg.illumio.flow_query:
    since: 3600
    destinations:
      include: ["role:db"]
    services:
      - {port: 5432, proto: tcp}
  register: seen
  delegate_to: localhost
  run_once: true

- name: Nothing was blocked
  ansible.builtin.assert:
    that: seen.summary.by_policy_decision.blocked == 0

- name: Flows from a subnet to one workload, or from a web server in prod
  microseg.illumio.flow_query:
    start_date: "2026-11-23"
    end_date: "2026-11-23"
    sources:
      include:
        - 10.1.0.0/16
        - ["role:web", "env:prod"]
    destinations:
      include:
        - {workload: /orgs/1/workloads/7b4c0f6e-0d6b-4d43-9a43-2d2f1f0b7c11}
  delegate_to: localhost
"""

RETURN = r"""
flows:
  description:
    - The rows of the query, newest first.
    - C(src_labels) and C(dst_labels) are the labels (key to value) of the workloads at either end, empty for
      addresses that are no workload.
  returned: always
  type: list
  elements: dict
  sample:
    - src_ip: 10.1.2.3
      src_hostname: web1.example.com
      src_workload: /orgs/1/workloads/b27eb7b5-b51c-4d4e-9a68-592150060a41
      src_labels: {app: shop, env: prod, role: web}
      dst_ip: 10.1.9.9
      dst_hostname: null
      dst_workload: null
      dst_labels: {}
      port: 443
      proto: 6
      proto_name: tcp
      num_connections: 12
      policy_decision: potentially_blocked
      flow_direction: outbound
      first_detected: "2026-11-23T13:01:00Z"
      last_detected: "2026-11-23T13:55:10Z"
summary:
  description: Counts over RV(flows).
  returned: always
  type: dict
  contains:
    flows:
      description: Rows returned.
      type: int
    connections:
      description: Sum of their connections.
      type: int
    by_policy_decision:
      description: Rows per policy decision.
      type: dict
    sources:
      description: Distinct source addresses.
      type: int
    destinations:
      description: Distinct destination addresses.
      type: int
    truncated:
      description: Whether O(max_results) rows came back, so there may be more.
      type: bool
query:
  description: The query as sent to the PCE.
  returned: always
  type: dict
query_href:
  description: The PCE's href of the async query.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.labels import LabelResolver
from ansible_collections.microseg.illumio.plugins.module_utils.pce.traffic import (
    POLICY_DECISIONS,
    actor_side,
    flow_query_body,
    flow_summary,
    flow_view,
    query_window,
    run_query,
    service_entry,
)

MAX_RESULTS_LIMIT = 200000


def query_flows(client, params):
    labels = LabelResolver(client)
    start, end = query_window(params["start_date"], params["end_date"], params["since"])
    body = flow_query_body(
        start,
        end,
        sources=actor_side(params["sources"], labels),
        destinations=actor_side(params["destinations"], labels),
        services={
            "include": [service_entry(entry) for entry in params["services"] or []],
            "exclude": [service_entry(entry) for entry in params["exclude_services"] or []],
        },
        policy_decisions=params["policy_decisions"],
        max_results=params["max_results"],
        query_op=params["query_op"],
        exclude_workloads_from_ip_list_query=params["exclude_workloads_from_ip_list_query"],
    )
    rows, job = run_query(client, body, timeout=params["timeout"], poll_interval=params["poll_interval"])
    flows = [flow_view(row) for row in rows]
    return {
        "changed": False,
        "flows": flows,
        "summary": flow_summary(flows, params["max_results"]),
        "query": body,
        "query_href": job.get("href"),
    }


def main():
    side = dict(
        type="dict",
        options=dict(include=dict(type="list", elements="raw"), exclude=dict(type="list", elements="raw")),
    )
    service = dict(
        type="list",
        elements="dict",
        options=dict(port=dict(type="int"), to_port=dict(type="int"), proto=dict(type="str")),
    )
    argument_spec = pce_argument_spec()
    argument_spec.update(
        start_date=dict(type="str"),
        end_date=dict(type="str"),
        since=dict(type="int", default=86400),
        sources=dict(side),
        destinations=dict(side),
        query_op=dict(type="str", choices=["and", "or"], default="and"),
        services=dict(service),
        exclude_services=dict(service),
        policy_decisions=dict(type="list", elements="str", choices=list(POLICY_DECISIONS), default=[]),
        exclude_workloads_from_ip_list_query=dict(type="bool", default=True),
        max_results=dict(type="int", default=10000),
        timeout=dict(type="int", default=300),
        poll_interval=dict(type="float", default=2),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not 1 <= module.params["max_results"] <= MAX_RESULTS_LIMIT:
        module.fail_json(msg="max_results must be from 1 to %d" % MAX_RESULTS_LIMIT)
    client = client_from_module(module)
    try:
        result = query_flows(client, module.params)
    except PceError as error:
        module.fail_json(msg=str(error))
    finally:
        client.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
