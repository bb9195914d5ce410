#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: workload_info
short_description: Read workloads from the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the workloads of the Illumio Policy Compute Engine (PCE), managed (paired VENs) and unmanaged,
    optionally filtered.
  - Filters combine; a workload must match all of them. Without filters, returns every workload.
  - Large organizations are read completely; the PCE answers big collections asynchronously and the module
    waits for that.
  - "Labels are shown as C(key: value), the way M(microseg.illumio.workload) takes them."
  - Finding nothing is not an error; RV(workloads) is then empty.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  hostname:
    description:
      - Only the workload(s) with this host name, matched exactly.
    type: str
  name:
    description:
      - Only the workload(s) with this friendly name, matched exactly.
    type: str
  labels:
    description:
      - >-
        Only workloads carrying all of these labels, as a dict of label key to value, for example
        C({role: web, env: prod}).
      - A label that does not exist matches no workload.
    type: dict
  managed:
    description:
      - Only managed workloads (V(true), with a paired VEN) or only unmanaged ones (V(false)).
    type: bool
  online:
    description:
      - Only workloads the PCE considers online (V(true)) or offline (V(false)).
    type: bool
  enforcement_mode:
    description:
      - Only workloads in this enforcement mode.
    type: str
    choices: [idle, visibility_only, selective, full]
  include_deleted:
    description:
      - Whether deleted workloads are listed too (the PCE keeps them for a while after they were deleted or their
        VEN unpaired). They carry RV(workloads[].deleted=true).
      - By default only workloads that exist are listed.
    type: bool
    default: false
attributes:
  check_mode:
    description: Only reads from the PCE, so it runs the same in check mode.
    support: full
  diff_mode:
    description: Changes nothing, so there is no diff.
    support: N/A
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
seealso:
  - module: microseg.illumio.workload
"""

EXAMPLES = r"""
- name: Read workloads
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: One workload by host name
      microseg.illumio.workload_info:
        hostname: web1.example.com
      register: web1

    - name: Production web servers whose VEN is paired and online
      microseg.illumio.workload_info:
        labels:
          role: web
          env: prod
        managed: true
        online: true
      register: prod_web

    - name: Managed workloads still in idle
      microseg.illumio.workload_info:
        managed: true
        enforcement_mode: idle
      register: idle

    - name: Show their host names
      ansible.builtin.debug:
        msg: "{{ idle.workloads | map(attribute='hostname') | list }}"

    - name: Workloads deleted from the PCE (or whose VEN unpaired) that it still keeps
      microseg.illumio.workload_info:
        include_deleted: true
      register: with_deleted

    - name: Show the host names of the deleted ones
      ansible.builtin.debug:
        msg: "{{ with_deleted.workloads | selectattr('deleted') | map(attribute='hostname') | list }}"
"""

RETURN = r"""
workloads:
  description: The workloads that match, sorted by host name, then name.
  returned: always
  type: list
  elements: dict
  contains:
    href:
      description: The workload's href.
      type: str
      sample: /orgs/1/workloads/ef7f0f53-2295-4416-aaaf-965146934c53
    hostname:
      description: Host name, or V(null).
      type: str
      sample: web1.example.com
    name:
      description: Friendly name, or V(null).
      type: str
      sample: Web Server 1
    description:
      description: Description, or V(null).
      type: str
      sample: null
    managed:
      description: Whether a VEN manages the workload.
      type: bool
      sample: true
    online:
      description: Whether the PCE considers the workload online.
      type: bool
      sample: true
    ven_href:
      description: Href of the workload's VEN, V(null) for unmanaged workloads.
      type: str
      sample: /orgs/1/vens/ef7f0f53-2295-4416-aaaf-965146934c53
    labels:
      description: Labels, as key to value.
      type: dict
      sample: {role: web, env: prod}
    interfaces:
      description: Network interfaces (name, address, cidr_block, default_gateway_address).
      type: list
      elements: dict
      sample: [{name: eth0, address: 10.0.0.5, cidr_block: 24, default_gateway_address: 10.0.0.1}]
    ignored_interface_names:
      description: Interfaces policy leaves out.
      type: list
      elements: str
      sample: []
    enforcement_mode:
      description: Enforcement mode.
      type: str
      sample: full
    visibility_level:
      description: Visibility level.
      type: str
      sample: flow_summary
    public_ip:
      description: Public address, or V(null).
      type: str
      sample: null
    os_id:
      description: Operating system identifier, or V(null).
      type: str
      sample: ubuntu-x86_64-jammy
    os_detail:
      description: Operating system details, or V(null).
      type: str
      sample: 5.15.0-91-generic (Ubuntu 22.04.3 LTS)
    data_center:
      description: Data center, or V(null).
      type: str
      sample: null
    data_center_zone:
      description: Data center zone, or V(null).
      type: str
      sample: null
    service_provider:
      description: Service provider, or V(null).
      type: str
      sample: null
    external_data_set:
      description: External system the workload comes from, or V(null).
      type: str
      sample: null
    external_data_reference:
      description: ID of the workload in that system, or V(null).
      type: str
      sample: null
    deleted:
      description: Whether the workload is deleted; only V(true) with O(include_deleted=true).
      type: bool
      sample: false
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.workloads import (
    ENFORCEMENT_MODES,
    WorkloadPlanner,
    is_managed,
    label_spec,
)


def find_workloads(client, params):
    planner = WorkloadPlanner(client)
    query = {}
    for field in ("hostname", "name", "enforcement_mode"):
        if params[field] is not None:
            query[field] = params[field]
    for field in ("managed", "online"):
        if params[field] is not None:
            query[field] = "true" if params[field] else "false"
    wanted_hrefs = []
    spec = label_spec(params["labels"], "labels", purge=True)
    if spec:
        for key, value in sorted(spec.items()):
            href = planner.existing_label_href(key, value)
            if href is None:
                return []  # no workload can carry a label that does not exist
            wanted_hrefs.append(href)
        # The PCE's labels filter: a list of label sets, any of which a workload must carry whole.
        query["labels"] = json.dumps([wanted_hrefs], separators=(",", ":"))
    found = []
    for doc in planner.read(query or None, include_deleted=params["include_deleted"]):
        # The PCE matches hostname and name partially; everything is checked here exactly as well.
        if any(params[field] is not None and doc.get(field) != params[field] for field in ("hostname", "name")):
            continue
        if params["enforcement_mode"] is not None and doc.get("enforcement_mode") != params["enforcement_mode"]:
            continue
        if params["managed"] is not None and is_managed(doc) != params["managed"]:
            continue
        if params["online"] is not None and bool(doc.get("online")) != params["online"]:
            continue
        carried = set(label.get("href") for label in doc.get("labels") or [])
        if not set(wanted_hrefs) <= carried:
            continue
        found.append(doc)
    found.sort(key=lambda doc: (doc.get("hostname") or "", doc.get("name") or "", doc.get("href") or ""))
    return [dict(planner.view(doc), deleted=bool(doc.get("deleted"))) for doc in found]


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        hostname=dict(type="str"),
        name=dict(type="str"),
        labels=dict(type="dict"),
        managed=dict(type="bool"),
        online=dict(type="bool"),
        enforcement_mode=dict(type="str", choices=list(ENFORCEMENT_MODES)),
        include_deleted=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        workloads = find_workloads(client, module.params)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, workloads=workloads)


if __name__ == "__main__":
    main()
