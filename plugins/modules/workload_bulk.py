#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: workload_bulk
short_description: Create, update or delete many unmanaged workloads on the Illumio PCE at once
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Bring thousands of workloads of the Illumio Policy Compute Engine (PCE) to the state a list describes, with
    the PCE's bulk calls (C(PUT workloads/bulk_create), C(bulk_update), C(bulk_delete)) in requests of at most
    O(batch_size) workloads.
  - Workloads are identified by O(workloads[].hostname), matched exactly. The module reads the existing workloads
    once, compares, and sends only the workloads that are new or differ; a second run with the same list
    changes nothing.
  - Each item takes the same options as M(microseg.illumio.workload). Only the options an item gives are
    compared and changed.
  - Items are checked before anything is sent (labels exist, addresses are valid, no hostname is listed twice,
    managed workloads are only asked to change what their VEN does not report). With O(fail_on_item_errors=true)
    a single bad item stops the run before any change.
  - Items the PCE refuses are listed in RV(failed_items); the others are still done.
  - Managed workloads (paired VENs) can have their labels, enforcement mode, visibility level, name and
    description updated in bulk, but are never deleted in bulk; unpair them with M(microseg.illumio.workload).
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  workloads:
    description:
      - The workloads, each a dict with the options below.
      - With O(state=absent) only O(workloads[].hostname) matters.
      - Items are checked by the module, with the same rules as M(microseg.illumio.workload); an item with an
        unknown key fails.
      - Exactly one of O(workloads) and O(workloads_file) is required.
    type: list
    elements: dict
    suboptions:
      hostname:
        description: Host name; identifies the workload.
        type: str
        required: true
      name:
        description: Friendly name.
        type: str
      description:
        description: Free text about the workload.
        type: str
      labels:
        description:
          - Labels as a dict of label key to value; see O(purge_labels).
          - The labels must exist; create them with M(microseg.illumio.label) first.
        type: dict
      interfaces:
        description: Network interfaces; the list replaces the workload's interfaces, in any order.
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
            description: Prefix length of the interface's network.
            type: int
          default_gateway_address:
            description: Default gateway of the interface.
            type: str
      ignored_interface_names:
        description: Interfaces whose addresses policy leaves out.
        type: list
        elements: str
      enforcement_mode:
        description: Enforcement mode.
        type: str
        choices: [idle, visibility_only, selective, full]
      visibility_level:
        description: Visibility level.
        type: str
        choices: [flow_summary, flow_drops, flow_off, enhanced_data_collection, flow_full_detail]
      public_ip:
        description: Public (NAT) address.
        type: str
      os_id:
        description: Operating system identifier (the PCE's C(os_id)).
        type: str
        aliases: [os_type]
      os_detail:
        description: Operating system details.
        type: str
      data_center:
        description: Data center.
        type: str
      data_center_zone:
        description: Zone within the data center.
        type: str
      service_provider:
        description: Service provider hosting the workload.
        type: str
      external_data_set:
        description: Name of the external system the workload comes from.
        type: str
      external_data_reference:
        description: ID of the workload in that system.
        type: str
  workloads_file:
    description:
      - Path of a JSON file, where the module runs, that holds the list of workloads (items as in
        O(workloads)), or an object whose only key C(workloads) holds it.
      - Faster than O(workloads) for tens of thousands of items, because Ansible does not template or
        transfer them; for example, write a CMDB export with M(ansible.builtin.copy) and C(to_json) first.
    type: path
  state:
    description:
      - V(present) creates the listed workloads that do not exist and updates those that differ.
      - V(absent) deletes the listed workloads that exist. Workloads not listed are never touched.
    type: str
    choices: [present, absent]
    default: present
  purge_labels:
    description:
      - Whether an item's O(workloads[].labels) replaces all of its labels (V(true)) or only the labels of the
        keys it names (V(false); a key set to V(null) then loses its label).
    type: bool
    default: true
  fail_on_item_errors:
    description:
      - Whether the task fails when any item fails.
      - With V(true), items that fail the checks stop the run before anything is sent, and items the PCE
        refuses fail the task after the others are done.
      - With V(false), failing items are only reported in RV(failed_items).
    type: bool
    default: true
  batch_size:
    description:
      - Workloads per bulk request, from 1 to 1000 (the PCE's limit).
    type: int
    default: 1000
attributes:
  check_mode:
    description: Reports how many workloads would be created, updated and deleted, without changing the PCE.
    support: full
  diff_mode:
    description:
      - Returns counts and the host names that change (at most 100 per side) under C(diff).
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Ansible reserves the result key C(failed), so per-item failures are returned as RV(failed_items).
  - Hostnames are B(not) unique on a PCE. A create whose answer is lost (the connection drops after the PCE stored
    it, or a gateway answers 502 or 504) is never sent again blindly; the module looks the workload up by hostname
    first and resends only what is not there. Right before creating, it looks again; right after, it checks whether
    a concurrent run created a workload with the same hostname at the same time. If so, the oldest one (by
    C(created_at), then href) stays and each run deletes the newer ones it made itself, with a warning, so two
    concurrent runs end with one workload each. Limit - a workload made at the same moment by something other than
    this collection is not deleted (it is not this run's), so the duplicate stays until you remove one. See
    C(docs/retries.md).
  - A C(bulk_delete) whose answer is lost is settled by reading the workloads again; those gone are reported
    deleted, only the others are sent again. A workload another run deleted in the meantime is not a failure.
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.workload
  - module: microseg.illumio.workload_info
"""

EXAMPLES = r"""
- name: Workloads from a CMDB export
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  vars:
    cmdb_servers:
      - {fqdn: db1.example.com, ip: 10.1.2.3, app: crm, env: prod}
      - {fqdn: db2.example.com, ip: 10.1.2.4, app: crm, env: prod}
  tasks:
    - name: Turn the export into workload items
      ansible.builtin.set_fact:
        cmdb_workloads: >-
          {{ cmdb_workloads | default([]) + [{
               'hostname': item.fqdn,
               'labels': {'role': 'db', 'app': item.app, 'env': item.env},
               'interfaces': [{'name': 'eth0', 'address': item.ip}]}] }}
      loop: "{{ cmdb_servers }}"

    - name: Every server of the export exists as an unmanaged workload with its labels
      microseg.illumio.workload_bulk:
        workloads: "{{ cmdb_workloads }}"
      register: synced

    - name: The same, written out
      microseg.illumio.workload_bulk:
        workloads:
          - hostname: db1.example.com
            labels: {role: db, app: crm, env: prod}
            interfaces: [{name: eth0, address: 10.1.2.3, cidr_block: 24}]
            external_data_set: cmdb
            external_data_reference: CI-0001
          - hostname: db2.example.com
            labels: {role: db, app: crm, env: prod}
            interfaces: [{name: eth0, address: 10.1.2.4, cidr_block: 24}]
        batch_size: 500

    - name: Or read the items from a JSON file on the controller (fastest for tens of thousands)
      microseg.illumio.workload_bulk:
        workloads_file: /srv/cmdb/illumio-workloads.json

    - name: Report what the run did
      ansible.builtin.debug:
        msg: "{{ synced.summary }}"

    - name: Remove retired servers, reporting rather than failing on those the PCE refuses
      microseg.illumio.workload_bulk:
        workloads:
          - hostname: old1.example.com
          - hostname: old2.example.com
        state: absent
        fail_on_item_errors: false
"""

RETURN = r"""
summary:
  description:
    - How many listed workloads were (in check mode, would be) created, updated, deleted, left alone, or failed.
  returned: always
  type: dict
  contains:
    created:
      description: Workloads created.
      type: int
      sample: 9000
    updated:
      description: Workloads updated.
      type: int
      sample: 12
    deleted:
      description: Workloads deleted.
      type: int
      sample: 0
    unchanged:
      description: Workloads that already matched.
      type: int
      sample: 988
    failed:
      description: Items that failed, see RV(failed_items).
      type: int
      sample: 0
created:
  description: Host names of the workloads created (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: [db1.example.com]
updated:
  description: Host names of the workloads updated (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: []
deleted:
  description: Host names of the workloads deleted (in check mode, that would be).
  returned: always
  type: list
  elements: str
  sample: []
failed_items:
  description: The items that failed, in the checks before sending or on the PCE.
  returned: always
  type: list
  elements: dict
  contains:
    hostname:
      description: Host name of the item (V(null) when the item had none).
      type: str
      sample: db3.example.com
    token:
      description:
        - Why, as a token. The PCE's own token when it refused the item, otherwise one of V(invalid_item),
          V(duplicate_hostname), V(ambiguous_hostname), V(managed_workload_property_read_only),
          V(managed_workload_unpair_required) or V(request_failed).
      type: str
      sample: invalid_item
    message:
      description: What is wrong, for people.
      type: str
      sample: "label env=prodd does not exist on the PCE (create it with microseg.illumio.label first)"
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.workloads import BULK_LIMIT, ensure_bulk

# Invocation echoes module_args in the result; thousands of items would only make the result slow to move.
INVOCATION_ITEMS = 10


def argument_spec():
    spec = pce_argument_spec()
    spec.update(
        # Items are checked by module_utils/pce/workloads.py (same rules as the workload module), not by
        # Ansible's suboption validation, which costs seconds on 10,000 items and fills every item with nulls.
        workloads=dict(type="list", elements="dict"),
        workloads_file=dict(type="path"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        purge_labels=dict(type="bool", default=True),
        fail_on_item_errors=dict(type="bool", default=True),
        batch_size=dict(type="int", default=BULK_LIMIT),
    )
    return spec


def read_workloads_file(path):
    """The items of a JSON file: a list of items, or {"workloads": [...]}."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read().decode("utf-8"))
    except OSError as error:
        raise PceError("cannot read workloads_file %s: %s" % (path, error.strerror or error)) from None
    except ValueError as error:
        raise PceError("workloads_file %s is not valid JSON: %s" % (path, error)) from None
    if isinstance(data, dict) and set(data) == {"workloads"}:
        data = data["workloads"]
    if not isinstance(data, list):
        raise PceError('workloads_file %s must hold a JSON list of workloads (or {"workloads": [...]})' % path)
    return data


def invocation(params):
    """module_args for the result, with only the first items of a long list."""
    workloads = params["workloads"]
    if workloads is None or len(workloads) <= INVOCATION_ITEMS:
        return {"module_args": params}
    shown = [*workloads[:INVOCATION_ITEMS], "... %d more workloads" % (len(workloads) - INVOCATION_ITEMS)]
    return {"module_args": dict(params, workloads=shown)}


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[("workloads", "workloads_file")],
        required_one_of=[("workloads", "workloads_file")],
        supports_check_mode=True,
    )
    if not 1 <= module.params["batch_size"] <= BULK_LIMIT:
        module.fail_json(msg="batch_size must be from 1 to %d (the PCE's limit per bulk request)" % BULK_LIMIT)
    try:
        params = dict(module.params)
        if params["workloads_file"] is not None:
            params["workloads"] = read_workloads_file(params["workloads_file"])
        client = client_from_module(module)
        result = ensure_bulk(client, params, check_mode=module.check_mode)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    result["invocation"] = invocation(module.params)
    msg = result.pop("msg", None)
    if msg and module.params["fail_on_item_errors"]:
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
