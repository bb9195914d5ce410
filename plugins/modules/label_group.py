#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: label_group
short_description: Manage label groups in the draft policy of the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update, rename and delete label groups in the draft policy of the Illumio Policy Compute Engine
    (PCE). A label group is a named set of labels of one key (for example all C(loc) labels of the European
    data centers) that rule sets and rules can use instead of single labels.
  - A label group is identified by its O(name), matched exactly.
  - Changes are made to the B(draft) policy. They take effect once provisioned, for example with
    M(microseg.illumio.policy_provision); the result says so in RV(provision_pending).
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Name of the label group, matched exactly and case-sensitively.
    type: str
    required: true
  new_name:
    description:
      - Rename the label group to this name. It keeps its href, so rule sets and other groups that use it keep
        using it.
      - If only a label group named O(new_name) exists, it is considered renamed already.
      - If label groups with both names exist, the module fails rather than guess.
      - If neither exists, a label group named O(new_name) is created.
      - Only with O(state=present).
    type: str
  key:
    description:
      - Label key of the group, for example V(loc) or V(env). Every member label and sub-group must have it.
      - Required to create a label group. The key of an existing group cannot be changed; the module fails
        when O(key) differs from it.
    type: str
  labels:
    description:
      - "The member labels, each written as C({key: value}) (for example C({loc: dc1})), as
        C({key: loc, value: dc1}), or simply as a value of the group's O(key) (V(dc1))."
      - B(The list replaces the group's members:) labels not listed are removed from the group. V([]) removes
        every label. When O(labels) is not given, the members are left as they are.
      - Every label must exist already (see M(microseg.illumio.label)).
    type: list
    elements: raw
  sub_groups:
    description:
      - Names of other label groups (with the same O(key)) that are members of this one.
      - B(The list replaces the group's sub-groups:) groups not listed are removed. V([]) removes every
        sub-group. When O(sub_groups) is not given, the sub-groups are left as they are.
      - A group cannot contain itself, directly or through its sub-groups.
    type: list
    elements: str
  description:
    description:
      - Free text description. Only compared when given.
    type: str
  external_data_set:
    description:
      - Name of the external system the label group comes from. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the label group in O(external_data_set). Only compared when given.
    type: str
  state:
    description:
      - V(present) creates the label group or updates it to match; V(absent) deletes it from the draft policy.
      - A deleted label group that was provisioned stays in the active policy until the deletion is
        provisioned. The PCE refuses to delete a label group that draft policy still uses.
    type: str
    choices: [present, absent]
    default: present
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description: Returns the label group before and after (names and labels, no hrefs) under C(diff).
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
notes:
  - Draft label group names are unique on the PCE (C(name_must_be_unique)). A create whose answer is lost (the
    connection drops after the PCE stored it, or a gateway answers 502 or 504) is never sent again blindly; the
    module looks the label group up first and reports it created, with its href, when it is there. When another run
    creates the same label group at the same moment, the PCE refuses the second create; the module then reads the
    label group and only brings it to the wanted state, so two concurrent runs both succeed and end in one run's
    state. See C(docs/retries.md).
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.label_group_info
  - module: microseg.illumio.label
  - module: microseg.illumio.policy_provision
"""

EXAMPLES = r"""
- name: Label groups as code, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: European data centers (exactly these two locations)
      microseg.illumio.label_group:
        name: LG-L-EU-Datacenters
        key: loc
        labels:
          - loc: frankfurt-1
          - amsterdam-2
        description: Every EU location

    - name: All data centers, built from other groups
      microseg.illumio.label_group:
        name: LG-L-Datacenters
        key: loc
        sub_groups:
          - LG-L-EU-Datacenters
        labels: []

    - name: Rename a group (same href, rules keep using it)
      microseg.illumio.label_group:
        name: LG-L-Datacenters
        new_name: LG-L-All-Datacenters

    - name: Make the changes active
      microseg.illumio.policy_provision:
        update_description: Data center label groups
        label_groups:
          - LG-L-EU-Datacenters
          - LG-L-All-Datacenters

    - name: Delete a group that nothing uses any more
      microseg.illumio.label_group:
        name: LG-L-Legacy
        state: absent
"""

RETURN = r"""
label_group:
  description:
    - The label group after the task; in check mode, as it would be (RV(label_group.href) is V(null) when it
      would be created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The draft label group's href.
      type: str
      sample: /orgs/1/sec_policy/draft/label_groups/22016906-613a-4f87-9f6c-70e753868be0
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
      sample: [{key: loc, value: frankfurt-1}, {key: loc, value: amsterdam-2}]
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
provision_pending:
  description:
    - Whether the draft label group differs from the active policy after the task (a change made now or
      before and not yet provisioned, including a deletion). Provision it with
      M(microseg.illumio.policy_provision).
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.policy_objects import LabelGroup


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        new_name=dict(type="str"),
        key=dict(type="str", no_log=False),
        labels=dict(type="list", elements="raw"),
        sub_groups=dict(type="list", elements="str"),
        description=dict(type="str"),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        # ensure() validates every option before it sends the first request.
        result = LabelGroup(client, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
