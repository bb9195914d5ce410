#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: rule_set_info
short_description: Read rule sets and their rules from the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - 'List the rule sets of the Illumio Policy Compute Engine (PCE) with their scopes, allow rules and deny rules,
    in the form M(microseg.illumio.rule_set) takes them (names and C(key: value) labels).'
  - Reads the draft policy by default, or the active (provisioned) policy with O(policy_version=active).
  - Finding nothing is not an error; RV(rule_sets) is then empty. Rule sets deleted in the draft but not yet
    provisioned are not listed.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Only rule sets with this name, matched as O(name_match) says. Without it, every rule set.
    type: str
  name_match:
    description:
      - How O(name) is matched.
      - V(exact) returns only the rule set whose name equals O(name).
      - V(partial) returns rule sets whose name contains O(name), ignoring case, as the PCE's own filter does.
    type: str
    choices: [exact, partial]
    default: exact
  policy_version:
    description:
      - V(draft) reads the draft policy, which modules change; V(active) reads the provisioned policy, which
        workloads enforce.
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
  - module: microseg.illumio.rule_set
"""

EXAMPLES = r"""
- name: Read rule sets, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: The draft of one rule set
      microseg.illumio.rule_set_info:
        name: RS-CRM-PROD
      register: crm

    - name: Show its rules as they would be written in a task
      ansible.builtin.debug:
        var: crm.rule_sets[0].rules
      when: crm.rule_sets | length > 0

    - name: Every provisioned rule set whose name contains "crm"
      microseg.illumio.rule_set_info:
        name: crm
        name_match: partial
        policy_version: active
      register: active_crm

    - name: Every rule set of the draft policy
      microseg.illumio.rule_set_info: {}
      register: all_rule_sets

    - name: Rule sets with draft changes waiting to be provisioned
      ansible.builtin.debug:
        msg: "{{ all_rule_sets.rule_sets | selectattr('provision_pending') | map(attribute='name') | list }}"
"""

RETURN = r"""
rule_sets:
  description: The rule sets that match, sorted by name.
  returned: always
  type: list
  elements: dict
  contains:
    href:
      description: The rule set's href (draft or active).
      type: str
      sample: /orgs/1/sec_policy/draft/rule_sets/7
    name:
      description: Name.
      type: str
      sample: RS-CRM-PROD
    description:
      description: Description.
      type: str
      sample: CRM production
    enabled:
      description: Whether the rule set is enabled.
      type: bool
      sample: true
    scopes:
      description: 'Scopes, each a list of labels (V({KEY: VALUE})) and label groups; V([[]]) means all workloads.'
      type: list
      elements: list
      sample: [[{app: crm}, {env: prod}]]
    rules:
      description:
        - Allow rules, each with C(href), C(providers), C(consumers), C(services), C(resolve_labels_as),
          C(unscoped_consumers), C(enabled), C(description) and C(network_type), as M(microseg.illumio.rule_set)
          takes them.
      type: list
      elements: dict
      sample:
        - href: /orgs/1/sec_policy/draft/rule_sets/7/sec_rules/12
          providers: [{role: web}]
          consumers: [ams]
          services: [SSH, {port: 443, proto: tcp}]
          resolve_labels_as: {providers: [workloads], consumers: [workloads]}
          unscoped_consumers: false
          enabled: true
          description: ""
          network_type: brn
    deny_rules:
      description:
        - Deny rules, each with C(href), C(providers), C(consumers), C(services), C(unscoped_consumers),
          C(override), C(enabled), C(description) and C(network_type).
      type: list
      elements: dict
    external_data_set:
      description: External system the rule set comes from, or V(null).
      type: str
    external_data_reference:
      description: ID of the rule set in that system, or V(null).
      type: str
    provision_pending:
      description:
        - Whether the draft of this rule set has changes that are not provisioned.
        - Always V(false) with O(policy_version=active).
      type: bool
      sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.rules import RuleSets


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str"),
        name_match=dict(type="str", choices=["exact", "partial"], default="exact"),
        policy_version=dict(type="str", choices=["draft", "active"], default="draft"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = client_from_module(module)
    try:
        rule_sets = RuleSets(client, policy_version=module.params["policy_version"])
        found = rule_sets.read(module.params["name"], module.params["name_match"])
        views = [rule_sets.info_view(rule_set) for rule_set in found]
    except PceError as error:
        module.fail_json(msg=str(error))
    else:
        module.exit_json(changed=False, rule_sets=views)


if __name__ == "__main__":
    main()
