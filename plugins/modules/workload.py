#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: workload
short_description: Manage workloads on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update and delete unmanaged workloads of the Illumio Policy Compute Engine (PCE), and change the
    labels, enforcement mode and visibility of managed ones (workloads whose VEN paired with the PCE).
  - A workload is identified by its O(hostname), or by its O(name) when no O(hostname) is given, matched
    exactly.
  - Only the options you give are compared and changed.
  - Unmanaged workloads (made through the API, no VEN) can change in every option. A managed workload's VEN
    reports its interfaces, addresses and operating system, so only O(labels), O(enforcement_mode),
    O(visibility_level), O(name) and O(description) can change; the module fails, before changing anything,
    when other options differ from what the VEN reported.
  - O(state=absent) deletes an unmanaged workload and unpairs the VEN of a managed one (which removes the
    workload from the PCE and, on the host, uninstalls the VEN and restores the firewall as O(firewall_restore)
    says).
  - For thousands of workloads at once use M(microseg.illumio.workload_bulk).
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  hostname:
    description:
      - Host name of the workload, for example V(web1.example.com). Identifies the workload.
      - At least one of O(hostname) and O(name) is required.
    type: str
  name:
    description:
      - Friendly name of the workload. Identifies it when O(hostname) is not given; otherwise it is set.
    type: str
  state:
    description:
      - V(present) creates the workload or updates it to match.
      - V(absent) deletes an unmanaged workload, or unpairs the VEN of a managed one.
    type: str
    choices: [present, absent]
    default: present
  labels:
    description:
      - >-
        Labels of the workload, as a dict of label key to value, for example C({role: web, env: prod}).
        The labels must exist; create them with M(microseg.illumio.label) first.
      - With O(purge_labels=true) (the default) the labels given replace all of the workload's labels, and
        V({}) removes them all. With O(purge_labels=false) only the keys given change, and a key set to
        V(null) loses its label.
      - Omit the option to leave the labels as they are.
    type: dict
  purge_labels:
    description:
      - Whether O(labels) replaces the whole set of labels (V(true)) or only the labels of the keys it names
        (V(false)).
    type: bool
    default: true
  enforcement_mode:
    description:
      - V(idle) leaves the host firewall alone; V(visibility_only) allows everything and records flows;
        V(selective) enforces deny rules only; V(full) denies everything that rules do not allow.
    type: str
    choices: [idle, visibility_only, selective, full]
  visibility_level:
    description:
      - What the VEN records about traffic. V(flow_summary) (Blocked + Allowed), V(flow_drops) (Blocked),
        V(flow_off), V(enhanced_data_collection), V(flow_full_detail).
    type: str
    choices: [flow_summary, flow_drops, flow_off, enhanced_data_collection, flow_full_detail]
  description:
    description:
      - Free text about the workload.
    type: str
  interfaces:
    description:
      - Network interfaces of an unmanaged workload. The list given replaces the workload's interfaces; the
        order does not matter.
      - Policy uses these addresses to reach the workload.
    type: list
    elements: dict
    suboptions:
      name:
        description: Interface name, for example V(eth0).
        type: str
        required: true
      address:
        description: IPv4 or IPv6 address.
        type: str
        required: true
      cidr_block:
        description: Prefix length of the interface's network, for example V(24).
        type: int
      default_gateway_address:
        description: Default gateway of the interface (same address family as O(interfaces[].address)).
        type: str
  ignored_interface_names:
    description:
      - Interfaces whose addresses policy leaves out, for example V([docker0]).
    type: list
    elements: str
  public_ip:
    description:
      - Public (NAT) address of the workload.
    type: str
  os_id:
    description:
      - Operating system identifier, for example V(ubuntu-x86_64-jammy) or V(centos-x86_64-8.0); free text on
        unmanaged workloads. The PCE calls this field C(os_id).
    type: str
    aliases: [os_type]
  os_detail:
    description:
      - Operating system details, for example V(5.15.0-91-generic (Ubuntu 22.04.3 LTS)).
    type: str
  data_center:
    description:
      - Data center of the workload.
    type: str
  data_center_zone:
    description:
      - Zone within O(data_center), for example a cloud availability zone.
    type: str
  service_provider:
    description:
      - Service provider hosting the workload, for example a cloud provider.
    type: str
  external_data_set:
    description:
      - Name of the external system the workload comes from, for example a CMDB. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the workload in O(external_data_set). Only compared when given.
    type: str
  firewall_restore:
    description:
      - With O(state=absent) on a managed workload, how the VEN leaves the host firewall when it unpairs.
      - V(saved) restores the rules from before pairing; V(default) sets the operating system's default
        (open) firewall; V(disable) turns the host firewall off.
    type: str
    choices: [saved, default, disable]
    default: saved
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description:
      - "Returns the workload before and after under C(diff), with labels as C(key: value) and without hrefs."
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Hostnames are B(not) unique on a PCE. A create whose answer is lost (the connection drops after the PCE stored
    it, or a gateway answers 502 or 504) is never sent again blindly; the module looks the workload up by
    O(hostname) (or O(name)) first and resends only what is not there. Right before creating, it looks again; right
    after, it checks whether a concurrent run created a workload with the same hostname at the same time. If so, the
    oldest one (by C(created_at), then href) stays and each run deletes the newer ones it made itself, with a
    warning, so two concurrent runs end with one workload each. Limit - a workload made at the same moment by
    something other than this collection is not deleted (it is not this run's), so the duplicate stays until you
    remove one. See C(docs/retries.md).
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.workload_info
  - module: microseg.illumio.workload_bulk
  - module: microseg.illumio.label
"""

EXAMPLES = r"""
- name: Workloads as code
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: An unmanaged database server, so that policy can name it
      microseg.illumio.workload:
        hostname: db1.example.com
        name: Database 1
        description: Oracle, no VEN (appliance)
        labels:
          role: db
          app: crm
          env: prod
          loc: fra
        interfaces:
          - name: eth0
            address: 10.1.2.3
            cidr_block: 24
            default_gateway_address: 10.1.2.1
        public_ip: 203.0.113.7
        os_id: oracle-linux-8
        external_data_set: cmdb
        external_data_reference: CI-000123

    - name: Move a paired web server to full enforcement and give it a new env label, keeping its other labels
      microseg.illumio.workload:
        hostname: web1.example.com
        enforcement_mode: full
        labels:
          env: prod
        purge_labels: false

    - name: Remove the unmanaged workload
      microseg.illumio.workload:
        hostname: db1.example.com
        state: absent

    - name: Unpair the VEN of a managed workload, restoring the host's firewall rules from before pairing
      microseg.illumio.workload:
        hostname: web1.example.com
        state: absent
        firewall_restore: saved
"""

RETURN = r"""
workload:
  description:
    - The workload after the task; in check mode, as it would be (without RV(workload.href) when it would be
      created, and with only the options given).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The workload's href.
      type: str
      sample: /orgs/1/workloads/ef7f0f53-2295-4416-aaaf-965146934c53
    hostname:
      description: Host name.
      type: str
      sample: db1.example.com
    name:
      description: Friendly name, or V(null).
      type: str
      sample: Database 1
    description:
      description: Description, or V(null).
      type: str
      sample: Oracle, no VEN (appliance)
    managed:
      description: Whether a VEN manages the workload.
      type: bool
      sample: false
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
      sample: {role: db, app: crm, env: prod, loc: fra}
    interfaces:
      description: Network interfaces.
      type: list
      elements: dict
      sample: [{name: eth0, address: 10.1.2.3, cidr_block: 24, default_gateway_address: 10.1.2.1}]
    ignored_interface_names:
      description: Interfaces policy leaves out.
      type: list
      elements: str
      sample: []
    enforcement_mode:
      description: Enforcement mode.
      type: str
      sample: visibility_only
    visibility_level:
      description: Visibility level.
      type: str
      sample: flow_summary
    public_ip:
      description: Public address, or V(null).
      type: str
      sample: 203.0.113.7
    os_id:
      description: Operating system identifier, or V(null).
      type: str
      sample: oracle-linux-8
    os_detail:
      description: Operating system details, or V(null).
      type: str
      sample: null
    data_center:
      description: Data center, or V(null).
      type: str
      sample: fra-1
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
      sample: cmdb
    external_data_reference:
      description: ID of the workload in that system, or V(null).
      type: str
      sample: CI-000123
unpaired:
  description: With O(state=absent), whether the workload was managed and its VEN was (or would be) unpaired.
  returned: when O(state=absent) and the workload existed
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.workloads import (
    ENFORCEMENT_MODES,
    FIREWALL_RESTORE,
    VISIBILITY_LEVELS,
    ensure_workload,
)


def argument_spec():
    spec = pce_argument_spec()
    spec.update(
        hostname=dict(type="str"),
        name=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        labels=dict(type="dict"),
        purge_labels=dict(type="bool", default=True),
        enforcement_mode=dict(type="str", choices=list(ENFORCEMENT_MODES)),
        visibility_level=dict(type="str", choices=list(VISIBILITY_LEVELS)),
        description=dict(type="str"),
        interfaces=dict(
            type="list",
            elements="dict",
            options=dict(
                name=dict(type="str", required=True),
                address=dict(type="str", required=True),
                cidr_block=dict(type="int"),
                default_gateway_address=dict(type="str"),
            ),
        ),
        ignored_interface_names=dict(type="list", elements="str"),
        public_ip=dict(type="str"),
        os_id=dict(type="str", aliases=["os_type"]),
        os_detail=dict(type="str"),
        data_center=dict(type="str"),
        data_center_zone=dict(type="str"),
        service_provider=dict(type="str"),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
        firewall_restore=dict(type="str", choices=list(FIREWALL_RESTORE), default="saved"),
    )
    return spec


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        required_one_of=[("hostname", "name")],
        supports_check_mode=True,
    )
    client = client_from_module(module)
    try:
        result = ensure_workload(client, module.params, check_mode=module.check_mode)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
