#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: label_group_info
short_description: Read label groups from the draft or active policy of the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - List the label groups of the Illumio Policy Compute Engine (PCE), optionally filtered by name or key,
    from the draft policy (what is being edited) or the active policy (what was provisioned).
  - Member labels are shown as key and value, sub-groups by name.
  - Finding nothing is not an error; RV(label_groups) is then empty.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Only label groups with this name, matched as O(name_match) says.
    type: str
  name_match:
    description:
      - How O(name) is matched.
      - V(exact) returns only label groups whose name equals O(name).
      - V(partial) returns label groups whose name contains O(name), ignoring case, as the PCE's own filter does.
    type: str
    choices: [exact, partial]
    default: exact
  key:
    description:
      - Only label groups of this label key, for example V(loc).
    type: str
  policy_version:
    description:
      - V(draft) reads the draft policy, including changes not provisioned yet. Label groups whose deletion
        is pending provisioning are left out.
      - V(active) reads the policy the PCE enforces, as last provisioned.
    type: str
    choices: [draft, active]
    default: draft
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
  - module: microseg.illumio.label_group
"""

EXAMPLES = r"""
- name: Read label groups, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: One label group, as it is in the draft policy
      microseg.illumio.label_group_info:
        name: LG-L-EU-Datacenters
      register: eu

    - name: The same group as provisioned
      microseg.illumio.label_group_info:
        name: LG-L-EU-Datacenters
        policy_version: active
      register: eu_active

    - name: Every location group
      microseg.illumio.label_group_info:
        key: loc
      register: location_groups

    - name: Show the member values
      ansible.builtin.debug:
        msg: "{{ eu.label_groups[0].labels | map(attribute='value') | list if eu.label_groups else [] }}"
"""

RETURN = r"""
label_groups:
  description: The label groups that match, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    href:
      description: The label group's href (draft or active, as O(policy_version) says).
      type: str
      sample: /orgs/1/sec_policy/active/label_groups/22016906-613a-4f87-9f6c-70e753868be0
    name:
      description: Name of the label group.
      type: str
      sample: LG-L-EU-Datacenters
    key:
      description: Label key of the group.
      type: str
      sample: loc
    labels:
      description: The member labels.
      type: list
      elements: dict
      sample: [{key: loc, value: frankfurt-1}]
    sub_groups:
      description: Names of the member label groups.
      type: list
      elements: str
      sample: [LG-L-US-Datacenters]
    description:
      description: Description of the label group.
      type: str
      sample: Every EU location
    external_data_set:
      description: External system the label group comes from, or V(null).
      type: str
      sample: cmdb
    external_data_reference:
      description: ID of the label group in that system, or V(null).
      type: str
      sample: LG-0001
    update_type:
      description:
        - In the draft policy, the change waiting to be provisioned (V(create), V(update)), or V(null) when
          the draft equals the active policy. Always V(null) in the active policy.
      type: str
      sample: update
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import LabelGroup


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str"),
        name_match=dict(type="str", choices=["exact", "partial"], default="exact"),
        key=dict(type="str", no_log=False),
        policy_version=dict(type="str", choices=["draft", "active"], default="draft"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    params = module.params
    try:
        label_groups = LabelGroup(client, policy_version=params["policy_version"]).search(
            params["name"], params["name_match"], key=params["key"]
        )
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, label_groups=label_groups)


if __name__ == "__main__":
    main()
