#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: label
short_description: Manage labels on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update, rename and delete labels (C(role), C(app), C(env), C(loc) and custom label keys) on the
    Illumio Policy Compute Engine (PCE).
  - A label is identified by its O(key) and O(value), matched exactly.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  key:
    description:
      - Label key (dimension), for example V(role), V(app), V(env), V(loc), or a custom key defined on the PCE.
      - A custom key must be a label dimension of the PCE before labels of it can be created; create it with
        M(microseg.illumio.label_dimension). Otherwise the module fails (in check mode too) and says so.
    type: str
    required: true
  value:
    description:
      - Label value, for example V(web). Matched exactly and case-sensitively.
    type: str
    required: true
  new_value:
    description:
      - Rename the label to this value. The label keeps its href, so workloads, rules and groups that use it keep
        using it.
      - If only a label with O(new_value) exists, it is considered renamed already and nothing is renamed.
      - If labels with both O(value) and O(new_value) exist, the module fails rather than guess.
      - If neither exists, a label with O(new_value) is created.
      - Only with O(state=present).
    type: str
  state:
    description:
      - V(present) creates the label or updates it to match; V(absent) deletes it.
      - The PCE refuses to delete a label that is still in use; the module then fails with the PCE's reason.
    type: str
    choices: [present, absent]
    default: present
  external_data_set:
    description:
      - Name of the external system the label comes from, for example a CMDB. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the label in O(external_data_set). Only compared when given.
    type: str
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description: Returns details on what has changed (or would change in check mode) under C(diff).
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Labels are unique on the PCE (key and value, C(label_key_value_not_unique)). A create whose answer is lost (the
    connection drops after the PCE stored it, or a gateway answers 502 or 504) is never sent again blindly; the
    module looks the label up first and reports it created, with its href, when it is there. When another run
    creates the same label at the same moment, the PCE refuses the second create; the module then reads the label
    and only brings it to the wanted state, so two concurrent runs both succeed and end in one run's state. See
    C(docs/retries.md).
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.label_info
  - module: microseg.illumio.label_dimension
"""

EXAMPLES = r"""
- name: Manage labels, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: Make sure the role label web exists
      microseg.illumio.label:
        key: role
        value: web

    - name: Keep the CMDB reference of an environment label
      microseg.illumio.label:
        key: env
        value: prod
        external_data_set: cmdb
        external_data_reference: ENV-0001

    - name: A custom label key needs its label dimension first
      microseg.illumio.label_dimension:
        key: os
        display_name: Operating system

    - name: Then labels of that key can be created
      microseg.illumio.label:
        key: os
        value: linux

    - name: Rename loc=dc1 to loc=frankfurt-1 (same href, workloads keep the label)
      microseg.illumio.label:
        key: loc
        value: dc1
        new_value: frankfurt-1

    - name: Delete a label that is no longer used
      microseg.illumio.label:
        key: app
        value: legacy-crm
        state: absent

- name: From a play on other hosts, run it on the controller (connection from ILLUMIO_* variables)
  hosts: webservers
  tasks:
    - name: Make sure a label named after each host's app exists
      microseg.illumio.label:
        key: app
        value: "{{ app_name }}"
      delegate_to: localhost
      run_once: true
"""

RETURN = r"""
label:
  description:
    - The label after the task; in check mode, the label as it would be (without RV(label.href) when it would
      be created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The label's href, which other PCE objects use to refer to it.
      type: str
      sample: /orgs/1/labels/42
    key:
      description: Label key.
      type: str
      sample: role
    value:
      description: Label value.
      type: str
      sample: web
    external_data_set:
      description: External system the label comes from, or V(null).
      type: str
      sample: cmdb
    external_data_reference:
      description: ID of the label in that system, or V(null).
      type: str
      sample: ROLE-0042
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.object_types import Label
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        key=dict(type="str", required=True, no_log=False),
        value=dict(type="str", required=True),
        new_value=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params["state"] == "absent" and module.params["new_value"] is not None:
        module.fail_json(msg="new_value renames a label and only goes with state=present")
    if module.params["new_value"] is not None and not module.params["new_value"].strip():
        module.fail_json(msg="new_value must not be empty")
    client = client_from_module(module)
    try:
        result = Label(client, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
