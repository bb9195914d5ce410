#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: label_dimension
short_description: Manage label dimensions (label keys) on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update and delete label dimensions (also called label types) of the Illumio Policy Compute Engine
    (PCE). A label dimension is a label key such as V(os) or V(bu), with the name and look the PCE's web console
    shows for it.
  - The PCE has four built-in dimensions, V(role), V(app), V(env) and V(loc). Labels of any other key can only be
    created, with M(microseg.illumio.label) or otherwise, once their dimension exists.
  - A dimension is identified by its O(key), matched exactly. The key of a dimension never changes; to use
    another key, create another dimension.
  - Only the options you give are compared and changed, down to the single fields of O(display_info).
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  key:
    description:
      - The label key, for example V(os). Labels of the dimension have this key.
      - It cannot be changed once the dimension exists.
    type: str
    required: true
  display_name:
    description:
      - The name the PCE shows for the dimension, for example V(Operating system). Unique among the dimensions.
      - Required to create a dimension; only compared when given.
    type: str
  display_info:
    description:
      - How the PCE's web console shows labels of the dimension.
      - Only the fields given are compared and changed; the others keep what the PCE has.
    type: dict
    suboptions:
      icon:
        description:
          - Name of the icon of the dimension's labels.
        type: str
      initial:
        description:
          - One or two letters shown in the labels' badge, for example V(OS).
        type: str
      background_color:
        description:
          - Background color of the badge, as an HTML color such as V(#3c8dbc).
        type: str
      foreground_color:
        description:
          - Text color of the badge, as an HTML color such as V(#ffffff).
        type: str
      display_name_plural:
        description:
          - The plural of O(display_name), for example V(Operating systems).
        type: str
  external_data_set:
    description:
      - Name of the external system the dimension comes from, for example a CMDB. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the dimension in O(external_data_set). Only compared when given.
    type: str
  state:
    description:
      - V(present) creates the dimension or updates it to match; V(absent) deletes it.
      - The PCE refuses to delete a dimension while labels of its key exist; delete them first. The built-in
        dimensions V(role), V(app), V(env) and V(loc) can never be deleted, and the module fails if asked to.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description: Returns the dimension before and after under C(diff).
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
seealso:
  - module: microseg.illumio.label_dimension_info
  - module: microseg.illumio.label
"""

EXAMPLES = r"""
- name: Label dimensions as code, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: An operating system dimension, shown after the built-in ones
      microseg.illumio.label_dimension:
        key: os
        display_name: Operating system
        display_info:
          initial: OS
          background_color: "#3c8dbc"
          foreground_color: "#ffffff"
          display_name_plural: Operating systems
        external_data_set: cmdb
        external_data_reference: DIM-OS

    - name: Now labels of key os can be created
      microseg.illumio.label:
        key: os
        value: linux

    - name: Rename the dimension (its key stays os)
      microseg.illumio.label_dimension:
        key: os
        display_name: OS family

    - name: Delete a dimension whose labels are all gone
      microseg.illumio.label_dimension:
        key: cost-center
        state: absent
"""

RETURN = r"""
label_dimension:
  description:
    - The dimension after the task; in check mode, as it would be (RV(label_dimension.href) is V(null) when it would
      be created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The dimension's href.
      type: str
      sample: /orgs/1/label_dimensions/0f5a5e3c-93c5-4c5b-9d0b-7a0e3c4b6a11
    key:
      description: The label key.
      type: str
      sample: os
    display_name:
      description: The name the PCE shows.
      type: str
      sample: Operating system
    display_info:
      description:
        - How the web console shows the dimension's labels (C(icon), C(initial), C(background_color),
          C(foreground_color), C(display_name_plural)), or V(null).
      type: dict
      sample:
        icon: null
        initial: OS
        background_color: "#3c8dbc"
        foreground_color: "#ffffff"
        display_name_plural: Operating systems
    external_data_set:
      description: External system the dimension comes from, or V(null).
      type: str
      sample: cmdb
    external_data_reference:
      description: ID of the dimension in that system, or V(null).
      type: str
      sample: DIM-OS
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.label_dimensions import LabelDimension


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        key=dict(type="str", required=True, no_log=False),
        display_name=dict(type="str"),
        display_info=dict(
            type="dict",
            options=dict(
                icon=dict(type="str"),
                initial=dict(type="str"),
                background_color=dict(type="str"),
                foreground_color=dict(type="str"),
                display_name_plural=dict(type="str"),
            ),
        ),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        result = LabelDimension(client, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
