#!/usr/bin/python
# Copyright: microseg.illumio contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - Ansible boilerplate

DOCUMENTATION = r"""
module: rule_set
short_description: Manage rule sets and their rules on the Illumio PCE
version_added: "1.0.0"
author: microseg.illumio contributors (!UNKNOWN)
description:
  - Create, update, rename and delete a rule set of the Illumio Policy Compute Engine (PCE), together with its
    allow rules, as one declarative unit.
  - A rule set is identified by its O(name), matched exactly.
  - Rules have no name on the PCE. A rule of O(rules) is matched to an existing rule by its content
    (O(rules[].providers), O(rules[].consumers), O(rules[].services), O(rules[].resolve_labels_as) and
    O(rules[].unscoped_consumers), compared as sets, so order does not matter), never by its position.
    A matched rule whose O(rules[].enabled), O(rules[].description) or O(rules[].network_type) differ is
    updated in place; a rule without a match is created; with O(purge_rules=true), existing rules that match
    no entry of O(rules) are deleted. Changing the content of a rule therefore replaces it with a new rule.
  - Rule sets are draft policy. Changes take effect on workloads only once provisioned, for example with
    M(microseg.illumio.policy_provision); RV(provision_pending) says when there is something to provision.
  - Every label, label group, IP list, service and workload named in the task is looked up, and every rule
    checked, before anything is changed; an unknown name fails the task without touching the PCE.
  - Deny rules inside the rule set are shown in RV(rule_set.deny_rules) and left alone; manage them with
    M(microseg.illumio.deny_rule). Custom iptables rules (C(ip_tables_rules)) are not supported and left alone.
  - Run it on the controller with C(delegate_to) V(localhost); it talks to the PCE's REST API.
extends_documentation_fragment:
  - microseg.illumio.pce
options:
  name:
    description:
      - Name of the rule set, matched exactly and case-sensitively.
    type: str
    required: true
  new_name:
    description:
      - Rename the rule set to this name. It keeps its href and its rules.
      - If only a rule set named O(new_name) exists, it is considered renamed already.
      - If rule sets with both names exist, the module fails rather than guess.
      - If neither exists, a rule set named O(new_name) is created.
      - Only with O(state=present).
    type: str
  description:
    description:
      - Description of the rule set. Only compared when given.
    type: str
  enabled:
    description:
      - Whether the rule set is enabled. Only compared when given; a new rule set is enabled.
    type: bool
  scopes:
    description:
      - Where the rule set applies. A list of scopes; each scope is a list of labels and label groups that a
        workload must all match. The rule set applies under each of its scopes.
      - 'A label is written V({KEY: VALUE}) (for example V({app: crm})) or V({label: {KEY: VALUE}}); a label group
        as V({label_group: NAME}). A scope may also be written as one mapping of labels, V({app: crm, env: prod}).'
      - A scope holds at most one label or label group per label key.
      - An empty list (or V([[]])) means all workloads.
      - Only compared when given; a new rule set without O(scopes) applies to all workloads.
    type: list
    elements: raw
  rules:
    description:
      - The allow rules of the rule set.
      - When not given, the rules are left as they are. V([]) with O(purge_rules=true) removes every rule.
    type: list
    elements: dict
    suboptions:
      providers:
        description:
          - Who provides the services (the destination of the traffic).
          - 'Each actor is one of: V(ams) (all managed workloads); a label V({KEY: VALUE}) (shorthand) or
            V({label: {KEY: VALUE}}); V({label_group: NAME}); V({ip_list: NAME}); V({workload: HOSTNAME});
            V({virtual_service: NAME}).'
          - 'A mapping of several labels, V({role: web, env: prod}), is the same as listing each label.'
          - Label and label group actors are limited to the rule set's scope.
        type: list
        elements: raw
        required: true
      consumers:
        description:
          - Who consumes the services (the source of the traffic); actors as for O(rules[].providers).
          - Label and label group consumers are limited to the scope unless O(rules[].unscoped_consumers=true).
        type: list
        elements: raw
        required: true
      services:
        description:
          - The services the providers offer (the PCE's C(ingress_services)).
          - 'A service by name, V(SSH) or V({name: SSH}); or a port V({port: 8443, proto: tcp}), a range
            V({port: 8000, to_port: 8099, proto: tcp}), or ICMP V({proto: icmp, icmp_type: 8}).'
          - C(proto) is a name (V(tcp), V(udp), V(icmp), V(icmpv6), V(sctp), ...), an IP protocol number, or
            V(all) for every protocol.
          - May be empty only when providers are resolved as virtual services.
        type: list
        elements: raw
        required: true
        aliases: [ingress_services]
      resolve_labels_as:
        description:
          - What label actors of each side stand for.
        type: dict
        suboptions:
          providers:
            description: What provider labels resolve to.
            type: list
            elements: str
            choices: [workloads, virtual_services]
            default: [workloads]
          consumers:
            description: What consumer labels resolve to.
            type: list
            elements: str
            choices: [workloads, virtual_services]
            default: [workloads]
      unscoped_consumers:
        description:
          - V(true) makes an extra-scope rule, whose label consumers are not limited to the rule set's scope.
        type: bool
        default: false
      enabled:
        description:
          - Whether the rule is enabled. Only compared when given; a new rule is enabled.
        type: bool
      description:
        description:
          - Description of the rule. Only compared when given.
        type: str
      network_type:
        description:
          - Which networks the rule applies to. Only compared when given; the PCE's default is V(brn).
        type: str
        choices: [brn, non_brn, all]
  purge_rules:
    description:
      - With V(true), rules of the rule set that match no entry of O(rules) are deleted.
      - With V(false), the rules in O(rules) are ensured and other rules are kept, for example rules added by
        M(microseg.illumio.security_rule) or in the PCE's web console.
      - Has no effect when O(rules) is not given.
    type: bool
    default: true
  state:
    description:
      - V(present) creates the rule set or updates it to match; V(absent) deletes it with its rules.
    type: str
    choices: [present, absent]
    default: present
  external_data_set:
    description:
      - Name of the external system the rule set comes from. Only compared when given.
    type: str
  external_data_reference:
    description:
      - ID of the rule set in O(external_data_set). Only compared when given.
    type: str
notes:
  - Lists in rules (actors, services) are compared as sets, and a label group, IP list or service is compared
    by the object it names, so writing the same rule differently does not report a change.
  - A rule set deleted from the draft but not yet provisioned is ignored; a new one with the same name can be
    created.
  - Draft rule set names are unique on the PCE (C(name_must_be_unique)). A create whose answer is lost (the
    connection drops after the PCE stored it, or a gateway answers 502 or 504) is never sent again blindly; the
    module looks the rule set up first and reports it created, with its href, when it is there. When another run
    creates the same rule set at the same moment, the PCE refuses the second create; the module then reads the rule
    set and only brings it to the wanted state, so two concurrent runs both succeed and end in one run's state. See
    C(docs/retries.md).
  - Rules have no name, so a rule create whose answer is lost is settled by looking for a rule with the same
    providers, consumers and services that was not in the rule set before; only if there is none is it sent again.
    The PCE does not refuse identical rules, so two runs adding the same rule at the same moment can both add it;
    the next run with O(purge_rules=true) removes the copy.
  - When the task fails after it changed something on the PCE, the result still says so with C(changed=true),
    C(changed_hrefs) with the objects it created or changed, and the message names them.
seealso:
  - module: microseg.illumio.rule_set_info
  - module: microseg.illumio.security_rule
  - module: microseg.illumio.deny_rule
attributes:
  check_mode:
    description: Can run in check mode and return changed status prediction without modifying the PCE.
    support: full
  diff_mode:
    description:
      - 'Returns the rule set before and after under C(diff), in the form used in tasks (names and
        C(key: value) labels, no hrefs).'
    support: full
  action_group:
    description: Use C(group/microseg.illumio.pce) in C(module_defaults) to set the connection options once.
    support: full
    membership:
      - microseg.illumio.pce
"""

EXAMPLES = r"""
- name: Rule sets as code, with the connection set once for the play
  hosts: localhost
  gather_facts: false
  module_defaults:
    group/microseg.illumio.pce:
      pce_host: pce.example.com
      pce_port: 8443
      api_key_username: "{{ illumio_api_key_username }}"
      api_key_secret: "{{ illumio_api_key_secret }}"
  tasks:
    - name: The CRM application in production, ring-fenced
      microseg.illumio.rule_set:
        name: RS-CRM-PROD
        description: CRM production
        scopes:
          - [{app: crm}, {env: prod}]
        rules:
          - description: web tier from anywhere in the app
            providers: [{role: web}]
            consumers: [ams]
            services: [{port: 443, proto: tcp}]
          - providers: [{role: db}]
            consumers: [{role: web}]
            services: [{port: 5432, proto: tcp}]
          - description: admins from the jump hosts
            providers: [ams]
            consumers: [{ip_list: Jump hosts}]
            services: [SSH]
          - description: monitoring from outside the app
            providers: [ams]
            consumers: [{label_group: LG-monitoring}]
            unscoped_consumers: true
            services: [{port: 9100, proto: tcp}, {proto: icmp, icmp_type: 8}]
      register: crm

    - name: Add a rule and keep every other rule as it is
      microseg.illumio.rule_set:
        name: RS-CRM-PROD
        purge_rules: false
        rules:
          - providers: [{role: web}]
            consumers: [{role: batch}]
            services: [{port: 8080, to_port: 8089, proto: tcp}]

    - name: One rule set for two environments
      microseg.illumio.rule_set:
        name: RS-CRM-NONPROD
        scopes:
          - {app: crm, env: test}
          - {app: crm, env: dev}

    - name: Rename it
      microseg.illumio.rule_set:
        name: RS-CRM-NONPROD
        new_name: RS-CRM-TEST-DEV

    - name: Activate every pending draft change (the rule set and what it uses)
      microseg.illumio.policy_provision:
        update_description: CRM production rules
      when: crm.provision_pending

    - name: Delete a rule set with all its rules
      microseg.illumio.rule_set:
        name: RS-LEGACY
        state: absent
"""

RETURN = r"""
rule_set:
  description:
    - The rule set after the task, in the form used in tasks; in check mode, as it would be (without hrefs for
      what would be created).
    - Empty after O(state=absent).
  returned: always
  type: dict
  contains:
    href:
      description: The rule set's draft href.
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
      description: The scopes; V([[]]) means all workloads.
      type: list
      elements: list
      sample: [[{app: crm}, {env: prod}]]
    rules:
      description: The allow rules.
      type: list
      elements: dict
      contains:
        href:
          description: The rule's href.
          type: str
          sample: /orgs/1/sec_policy/draft/rule_sets/7/sec_rules/12
        providers:
          description: Providers, as written in tasks.
          type: list
          elements: raw
          sample: [{role: web}]
        consumers:
          description: Consumers, as written in tasks.
          type: list
          elements: raw
          sample: [ams]
        services:
          description: Services by name, and ports.
          type: list
          elements: raw
          sample: [SSH, {port: 443, proto: tcp}]
        resolve_labels_as:
          description: What labels of each side stand for.
          type: dict
          sample: {providers: [workloads], consumers: [workloads]}
        unscoped_consumers:
          description: Whether consumers are outside the scope (extra-scope rule).
          type: bool
          sample: false
        enabled:
          description: Whether the rule is enabled.
          type: bool
          sample: true
        description:
          description: Description.
          type: str
          sample: web tier
        network_type:
          description: Networks the rule applies to.
          type: str
          sample: brn
    deny_rules:
      description:
        - The deny rules of the rule set (managed with M(microseg.illumio.deny_rule)), like RV(rule_set.rules)
          with C(override) instead of C(resolve_labels_as).
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
    - Whether the draft policy now has changes to this rule set that are not provisioned yet.
  returned: always
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.microseg.illumio.plugins.module_utils.pce.args import client_from_module, pce_argument_spec
from ansible_collections.microseg.illumio.plugins.module_utils.pce.errors import PceError
from ansible_collections.microseg.illumio.plugins.module_utils.pce.objects import failure_result
from ansible_collections.microseg.illumio.plugins.module_utils.pce.rules import RuleSets

RESOLVE_AS = ["workloads", "virtual_services"]


def rule_options():
    return dict(
        providers=dict(type="list", elements="raw", required=True),
        consumers=dict(type="list", elements="raw", required=True),
        services=dict(type="list", elements="raw", required=True, aliases=["ingress_services"]),
        resolve_labels_as=dict(
            type="dict",
            options=dict(
                providers=dict(type="list", elements="str", choices=RESOLVE_AS, default=["workloads"]),
                consumers=dict(type="list", elements="str", choices=RESOLVE_AS, default=["workloads"]),
            ),
        ),
        unscoped_consumers=dict(type="bool", default=False),
        enabled=dict(type="bool"),
        description=dict(type="str"),
        network_type=dict(type="str", choices=["brn", "non_brn", "all"]),
    )


def main():
    argument_spec = pce_argument_spec()
    argument_spec.update(
        name=dict(type="str", required=True),
        new_name=dict(type="str"),
        description=dict(type="str"),
        enabled=dict(type="bool"),
        scopes=dict(type="list", elements="raw"),
        rules=dict(type="list", elements="dict", options=rule_options()),
        purge_rules=dict(type="bool", default=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        external_data_set=dict(type="str"),
        external_data_reference=dict(type="str"),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if module.params["state"] == "absent" and module.params["new_name"] is not None:
        module.fail_json(msg="new_name renames a rule set and only goes with state=present")
    client = client_from_module(module)
    try:
        result = RuleSets(client, check_mode=module.check_mode).ensure(module.params)
    except PceError as error:
        module.fail_json(msg=str(error), **failure_result(error))
    else:
        module.exit_json(**result)


if __name__ == "__main__":
    main()
