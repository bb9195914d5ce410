#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: label_dimension_info
short_description: Read label dimensions (label keys) from the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the label dimensions of the Illumio Policy Compute Engine (PCE), the built-in V(role), V(app), V(env) and
    V(loc) and those created with M(microseg.illumio.label_dimension), or read the one with a given key.
  - Finding nothing is not an error; RV(label_dimensions) is then empty.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  key:
    description:
      - Only the dimension with this label key, matched exactly, for example V(os).
      - Without it, every dimension is returned.
    type: str
  usage:
    description:
      - Whether to ask the PCE if labels and label groups of each dimension exist (RV(label_dimensions[].usage)),
        for example before deleting a dimension.
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
  - module: microseg.illumio.label_dimension
"""

EXAMPLES = r"""
- name: Read label dimensions, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: Every label dimension
      microseg.illumio.label_dimension_info:
      register: dimensions

    - name: Show the label keys the PCE accepts
      ansible.builtin.debug:
        msg: "{{ dimensions.label_dimensions | map(attribute='key') | list }}"

    - name: The os dimension, and whether labels use it
      microseg.illumio.label_dimension_info:
        key: os
        usage: true
      register: os_dimension

    - name: Create the os dimension unless it exists
      microseg.illumio.label_dimension:
        key: os
        display_name: Operating system
      when: os_dimension.label_dimensions | length == 0
"""

RETURN = r"""
label_dimensions:
  description: The dimensions found, by key.
  returned: always
  type: list
  elements: dict
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
    builtin:
      description: Whether it is one of the built-in dimensions V(role), V(app), V(env) and V(loc), which cannot be
        deleted.
      type: bool
      sample: false
    usage:
      description: Whether labels (C(labels)) and label groups (C(label_groups)) of the dimension exist.
      returned: with O(usage=true)
      type: dict
      sample: {labels: true, label_groups: false}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.label_dimensions import LabelDimension


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        key=dict(type="str", no_log=False),
        usage=dict(type="bool", default=False),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        dimensions = LabelDimension(client).search(key=module.params["key"], usage=module.params["usage"])
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, label_dimensions=dimensions)


if __name__ == "__main__":
    main()
